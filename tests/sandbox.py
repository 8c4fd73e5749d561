"""Running a student's code where it cannot touch the grade: a process of its own that sends back data only.

The grader never runs a student's code itself. `run(call, timeout, folder)` forks a worker from the grading process (which
has imported torch and the grader's helpers already, so a worker starts in milliseconds), and the worker:
  - starts a session of its own, closes every file descriptor it inherited but its two pipes, and works in a
    folder of its own;
  - as root (Gradescope), drops to the unprivileged STUDENT_USER (created when missing), under RLIMIT_NPROC,
    RLIMIT_AS and RLIMIT_FSIZE, before it runs call() (which imports the student's file and calls it);
  - sends back what call() returned as data only: JSON for numbers, strings, lists and dicts, and numpy's .npy
    format (read with allow_pickle=False, numeric dtypes only) for arrays; or the type, message and traceback of
    the exception it raised. Nothing executable crosses, and nothing the student's code made reaches the grader
    but these bytes, which the grader parses itself (`decode`).
After the reply, or at the timeout, `sweep` kills every process the worker started: its session, every process
re-parented to the grader (a child subreaper on Linux), and as root every process of STUDENT_USER; then its folder
and, as root, the student user's files in the shared temporary folders are removed.

Not root, the same split, limits and cleanup apply, but the student's code runs as the grader's own user: it can
still signal the grader or write what that user can write (README, "Isolation").
"""
from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import fcntl
import io
import json
import math
import os
import pwd
import queue
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

# The unprivileged user students' code runs as, when the grader runs as root. Gradings that run at the same time
# need one each ($HW5_STUDENT_USER), since each ends by killing every process of its user.
STUDENT_USER = os.environ.get("HW5_STUDENT_USER") or "hw5-student"
PROCESSES = 128                # RLIMIT_NPROC: processes and threads of the student's code at once
MEMORY = 4 << 30               # RLIMIT_AS: bytes of address space a worker may add to the grader's own
FILE_SIZE = 64 << 20           # RLIMIT_FSIZE: the largest file a worker may write
REPLY_LIMIT = 256 << 20        # bytes of a reply; more fails the test
OUTPUT_KEPT = 32 << 10         # characters kept from each end of what a worker prints
SHARED_TEMP = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/dev/mqueue")  # world-writable: swept of its files
ARRAY = "__ndarray__"          # the key that marks an array in a reply's JSON: {ARRAY: its index}
NUMERIC = "biuf"               # the dtype kinds a reply's arrays may have


class StudentUsers:
    """Student users for gradings that run at the same time, as root: each grading ends by killing every process of
    its user, so each needs one of its own. `with users.one() as env:` lends one, as the environment variable a
    grading reads ({"HW5_STUDENT_USER": name})."""

    def __init__(self, count: int, prefix: str = STUDENT_USER) -> None:
        self.free: queue.SimpleQueue = queue.SimpleQueue()
        for k in range(count):
            self.free.put(f"{prefix}-{k + 1}")

    @contextlib.contextmanager
    def one(self):
        name = self.free.get()
        try:
            yield {"HW5_STUDENT_USER": name}
        finally:
            if is_root():  # whatever a grading that was cut short left running ends before the next one
                with contextlib.suppress(KeyError):
                    entry = pwd.getpwnam(name)
                    if entry.pw_uid != 0:  # kill -1 as root would end every process of the machine
                        _kill_user((entry.pw_uid, entry.pw_gid))
            self.free.put(name)


class StudentError(Exception):
    """The student's code raised: `summary` is its exception's type and message, `details` the traceback."""

    def __init__(self, summary: str, details: str) -> None:
        super().__init__(summary)
        self.summary, self.details = summary, details


class WorkerFailed(Exception):
    """The worker sent no valid reply in time: it crashed, exited, hung, or sent something malformed."""


class Reply(NamedTuple):
    value: Any      # what call() returned, as plain data (dict, list, str, int, float, bool, None, numpy arrays)
    output: str     # what the worker printed (stdout and stderr), both ends kept when long


# ----------------------------------------------------------------------------------------------------
# The data channel: plain data as JSON and .npy arrays, nothing else


def encode(value: Any) -> bytes:
    """In the worker: value -> bytes. Numbers, strings, booleans, None, lists, tuples, dicts (str keys), named tuples,
    numpy arrays and torch tensors (sent as arrays); anything else raises TypeError."""
    arrays: list[np.ndarray] = []

    def plain(x: Any) -> Any:
        if x is None or isinstance(x, bool):
            return None if x is None else bool(x)
        if isinstance(x, int):
            return int(x)
        if isinstance(x, float):
            return float(x)
        if isinstance(x, str):
            return str(x)
        if isinstance(x, np.generic):
            return plain(x.item())
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(x, torch.Tensor):
            x = x.detach().cpu()
            try:
                x = x.numpy()
            except TypeError:  # a dtype numpy lacks (bfloat16, ...)
                x = x.float().numpy()
        if isinstance(x, np.ndarray):
            if x.dtype.kind not in NUMERIC:
                raise TypeError(f"cannot send an array of dtype {x.dtype}")
            arrays.append(x)
            return {ARRAY: len(arrays) - 1}
        if isinstance(x, tuple) and hasattr(x, "_asdict"):
            return plain(x._asdict())
        if isinstance(x, dict):
            if ARRAY in x:
                raise TypeError(f"a dict sent may not have the key {ARRAY!r}")
            return {str(key): plain(item) for key, item in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(item) for item in x]
        raise TypeError(f"cannot send a {type(x).__name__}")

    tree = json.dumps(plain(value)).encode()
    parts = [tree]
    for array in arrays:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        parts.append(buffer.getvalue())
    return b"".join(struct.pack("<Q", len(part)) + part for part in parts)


class NotFinite(ValueError):
    """A reply holds NaN or an infinity."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotFinite(text)
    return value


def _no_constant(text: str) -> float:
    raise NotFinite(text)


def decode(payload: bytes) -> Any:
    """In the grader: bytes from `encode` -> the value, built here from json.loads and np.load(allow_pickle=False)
    only. WorkerFailed if anything in it is malformed (an unknown array, a non-numeric dtype, bytes left over) or
    not finite: a NaN passes every check written as "fail if the error exceeds the tolerance", so none is let in."""
    try:
        parts, offset = [], 0
        while offset < len(payload):
            (length,) = struct.unpack_from("<Q", payload, offset)
            offset += 8
            if offset + length > len(payload):
                raise ValueError("a part is cut short")
            parts.append(payload[offset:offset + length])
            offset += length
        if not parts:
            raise ValueError("empty")
        tree = json.loads(parts[0], parse_float=_finite, parse_constant=_no_constant)
        arrays = [np.load(io.BytesIO(part), allow_pickle=False) for part in parts[1:]]
        for array in arrays:
            if not isinstance(array, np.ndarray) or array.dtype.kind not in NUMERIC or array.dtype.names:
                raise ValueError(f"an array of dtype {getattr(array, 'dtype', '?')}")
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise NotFinite("an array")

        def build(x: Any) -> Any:
            if isinstance(x, list):
                return [build(item) for item in x]
            if isinstance(x, dict):
                if ARRAY in x:
                    index = x[ARRAY]
                    if len(x) != 1 or type(index) is not int or not 0 <= index < len(arrays):
                        raise ValueError("an unknown array")
                    return arrays[index]
                return {key: build(item) for key, item in x.items()}
            return x

        return build(tree)
    except NotFinite:
        raise WorkerFailed("the values returned hold NaN or infinity (a log of 0? a division by 0?)") from None
    except (ValueError, TypeError, KeyError, IndexError, RecursionError, struct.error, OSError) as error:
        raise WorkerFailed(f"the test's process sent a malformed reply ({error})") from None


# ----------------------------------------------------------------------------------------------------
# The student user, the limits, the worker


def is_root() -> bool:
    return os.geteuid() == 0


def student_ids() -> tuple[int, int]:
    """STUDENT_USER's uid and gid, the user created first if it is missing (useradd); as root only."""
    try:
        entry = pwd.getpwnam(STUDENT_USER)
    except KeyError:  # (a grading started at the same moment may be creating it too: then it exists after all)
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
                        "/usr/sbin/nologin", STUDENT_USER], capture_output=True)
        entry = pwd.getpwnam(STUDENT_USER)
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise RuntimeError(f"{STUDENT_USER} is root: delete it (userdel {STUDENT_USER})")
    return entry.pw_uid, entry.pw_gid


def _prctl(option: int, value: int) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def guard_grader() -> None:
    """Make this process adopt every orphan its descendants leave (PR_SET_CHILD_SUBREAPER: a process the student's
    code detaches, by a double fork or setsid, is re-parented here, where `sweep` finds it), and keep processes of
    its own user from reading or writing its memory (PR_SET_DUMPABLE 0: no ptrace, no /proc/PID/mem). Linux only."""
    _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
    _prctl(4, 0)   # PR_SET_DUMPABLE


def _processes_of(uid: int) -> list[tuple[str, str]]:
    """The processes whose real user is `uid`: (pid, state letter) each. Read from /proc/PID/status, which tells the
    user even of a process that is not dumpable (its /proc folder then belongs to root)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/status") as status:
                    fields = dict(line.split(":", 1) for line in status if ":" in line)
                if int(fields["Uid"].split()[0]) == uid:
                    found.append((entry.name, fields["State"].split()[0]))
            except (OSError, KeyError, ValueError, IndexError):
                pass
    return found


def _tasks_of(uid: int) -> int:
    """How many processes and threads `uid` runs now (what RLIMIT_NPROC counts)."""
    count = 0
    for pid, _ in _processes_of(uid):
        try:
            count += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return count


def _address_space() -> int:
    """This process's virtual memory size in bytes."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))


def _limit(kind: int, value: int) -> None:
    """Set a resource limit, soft and hard, to value (or to the hard limit already there, if lower)."""
    hard = resource.getrlimit(kind)[1]
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(kind, (value, value))


REPLY_FD = 3  # the reply pipe's number in a worker


def _enter_worker(folder: Path, ids: tuple[int, int] | None) -> None:
    """In the forked worker, before the student's code, its file descriptors already in place (0: /dev/null, 1 and
    2: the output pipe, REPLY_FD: the reply pipe, no other): a session of its own, the limits, the user, the
    folder."""
    os.setsid()
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM, signal.SIGCHLD):
        signal.signal(number, signal.SIG_DFL)
    sys.stdin = open(0, closefd=False)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True, errors="backslashreplace")
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True, errors="backslashreplace")
    faulthandler.enable(sys.stderr)  # a crash prints the Python stack where it happened
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_FSIZE, FILE_SIZE)
    if sys.platform.startswith("linux"):
        _limit(resource.RLIMIT_AS, _address_space() + MEMORY)
    _prctl(38, 1)  # PR_SET_NO_NEW_PRIVS: no setuid program gives it back any privilege
    if ids is not None:
        if sys.platform.startswith("linux"):  # no network where the kernel lets root cut it (not inside Docker)
            ctypes.CDLL(None, use_errno=True).unshare(0x40000000)  # CLONE_NEWNET; a refusal is ignored
        _limit(resource.RLIMIT_NPROC, PROCESSES)
        os.setgroups([])
        os.setgid(ids[1])
        os.setuid(ids[0])
    elif sys.platform.startswith("linux"):
        _limit(resource.RLIMIT_NPROC, _tasks_of(os.getuid()) + PROCESSES)
    os.chdir(folder)
    os.environ.update(HOME=str(folder), TMPDIR=str(folder), MPLCONFIGDIR=str(folder))
    tempfile.tempdir = str(folder)


def _only_pipes(reply_fd: int, output_fd: int) -> None:
    """In the forked worker, first: stdin from /dev/null, stdout and stderr to the output pipe, the reply pipe as
    REPLY_FD, and every other file descriptor inherited from the grader closed."""
    reply_fd, output_fd = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (reply_fd, output_fd))  # out of the way
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.dup2(reply_fd, REPLY_FD)
    os.closerange(REPLY_FD + 1, os.sysconf("SC_OPEN_MAX"))

def _error_summary(error: BaseException) -> str:
    try:
        message = str(error)
    except Exception:  # noqa: BLE001 - a student's exception whose __str__ fails
        message = "(its message could not be shown)"
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def describe(error: BaseException) -> dict:
    """An exception as data: its type and message (`summary`), and its traceback (`details`)."""
    return {"summary": _error_summary(error),
            "details": "".join(traceback.format_exception(type(error), error, error.__traceback__))}


def raise_student_error(described: Any, output: str = "") -> None:
    """In the grader: raise the StudentError that `describe` data tells of (WorkerFailed if it is malformed)."""
    if not (isinstance(described, dict) and isinstance(described.get("summary"), str)
            and isinstance(described.get("details"), str)):
        raise WorkerFailed("the test's process sent a malformed reply")
    raise StudentError(described["summary"], described["details"] + output)


def _worker(call: Callable[[], Any], reply_fd: int) -> None:
    """In the worker: run call() and write the reply (its value, or the exception it raised), then exit."""
    try:
        body = b"V" + encode(call())
    except BaseException as error:  # noqa: BLE001 - the student's code may raise anything, SystemExit included
        body = b"E" + encode(describe(error))
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    _write_reply(reply_fd, body)


def _write_reply(fd: int, body: bytes) -> None:
    """A reply: its length, then its body (one kind byte: V a value, E the student's exception, G the grader's
    failure to start the worker; then the encoded data)."""
    view = memoryview(struct.pack("<Q", len(body)) + body)
    while view:
        view = view[os.write(fd, view):]


class _Output:
    """What a worker prints: the first and last OUTPUT_KEPT characters and how much was cut between them."""

    def __init__(self) -> None:
        self.head, self.tail, self.cut = bytearray(), bytearray(), 0

    def add(self, chunk: bytes) -> None:
        room = OUTPUT_KEPT - len(self.head)
        self.head += chunk[:room]
        self.tail += chunk[room:] if room < len(chunk) else b""
        if len(self.tail) > OUTPUT_KEPT:
            self.cut += len(self.tail) - OUTPUT_KEPT
            del self.tail[:len(self.tail) - OUTPUT_KEPT]

    def text(self) -> str:
        middle = f"\n... [{self.cut} bytes cut] ...\n" if self.cut else ""
        return (bytes(self.head).decode(errors="replace") + middle + bytes(self.tail).decode(errors="replace"))


def _exit_status(pid: int) -> int | None:
    """The wait status of a child that has exited, left unreaped (its pid stays its own until `sweep` reaps it, so
    that killing its process group never hits a stranger); None while it runs."""
    found = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    if found is None:
        return None
    if found.si_code == os.CLD_EXITED:
        return found.si_status << 8
    return found.si_status  # killed (or dumped) by that signal


def exit_reason(status: int) -> str:
    """A wait status, in words."""
    if os.WIFSIGNALED(status):
        return f"the process was killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"the process exited with code {os.WEXITSTATUS(status)}"


def run(call: Callable[[], Any], timeout: float, folder: Path) -> Reply:
    """Run call() in a worker (module docstring) with `folder` as its working folder (created here, removed after),
    for `timeout` seconds at most. Returns the reply; raises StudentError if call() raised, WorkerFailed if no valid
    reply came in time. Every process the worker started is killed before this returns."""
    ids = student_ids() if is_root() else None
    folder.mkdir(mode=0o700)
    if ids is not None:
        os.chown(folder, *ids)
    reply_read, reply_write = os.pipe()
    output_read, output_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            _only_pipes(reply_write, output_write)
            try:
                _enter_worker(folder, ids)
            except BaseException as error:  # noqa: BLE001 - said to the grader, which fails the test
                _write_reply(REPLY_FD, b"G" + encode(_error_summary(error)))
            else:
                _worker(call, REPLY_FD)
        finally:
            os._exit(0)
    os.close(reply_write)
    os.close(output_write)
    try:
        payload, output, status = _collect(pid, reply_read, output_read, time.monotonic() + timeout)
    finally:
        os.close(reply_read)
        os.close(output_read)
        sweep(pid, ids)
        shutil.rmtree(folder, ignore_errors=True)
    if payload is None:
        if status is None:
            raise WorkerFailed(f"timed out after {timeout:.0f} s (an endless loop, or far too slow)\n{output.text()}")
        raise WorkerFailed(f"the test crashed: {exit_reason(status)} before the test finished (exit, os._exit, a "
                           f"segfault or out of memory)\n{output.text()}")
    kind, value = payload[:1], decode(payload[1:])
    if kind == b"V":
        return Reply(value, output.text())
    if kind == b"E":
        raise_student_error(value, output.text())
    if kind == b"G":
        raise WorkerFailed(f"the grader could not start the test's process: {value}")
    raise WorkerFailed("the test's process sent a malformed reply")


def _collect(pid: int, reply_fd: int, output_fd: int, deadline: float):
    """Read the worker's reply and output until the reply is complete, the worker has exited and its output is
    drained, or the deadline. Returns (the reply's body or None, the output, the worker's wait status or None)."""
    reply, output, status, expected = bytearray(), _Output(), None, None
    open_fds = {reply_fd, output_fd}
    while time.monotonic() < deadline:
        ready = select.select(list(open_fds), [], [], 0.05)[0] if open_fds else time.sleep(0.05) or []
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                open_fds.discard(fd)
            elif fd == output_fd:
                output.add(chunk)
            else:
                reply += chunk
                if len(reply) > REPLY_LIMIT + 8:
                    raise WorkerFailed(f"the test's process sent more than {REPLY_LIMIT >> 20} MB")
        if expected is None and len(reply) >= 8:
            (expected,) = struct.unpack_from("<Q", reply)
            if expected > REPLY_LIMIT:
                raise WorkerFailed(f"the test's process announced a reply of more than {REPLY_LIMIT >> 20} MB")
        if expected is not None and len(reply) >= 8 + expected:
            return bytes(reply[8:8 + expected]), output, status
        if status is None:
            status = _exit_status(pid)
        if status is not None and not ready:
            return None, output, status  # exited without a whole reply, and nothing more is coming
    return None, output, status  # the deadline: a worker that exited (its output still held open) crashed


# ----------------------------------------------------------------------------------------------------
# Nothing outlives its test


def _children() -> list[int]:
    """The processes whose parent is this one (the orphans adopted as a subreaper among them)."""
    me, found = os.getpid(), []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
                if int(fields[1]) == me:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def _live_processes_of(uid: int) -> bool:
    """Whether `uid` runs a process that is not a zombie."""
    return any(state != "Z" for _, state in _processes_of(uid))


def _kill_user(ids: tuple[int, int]) -> None:
    """Signal every process of the student user: a helper becomes that user and sends SIGKILL to all it may (kill
    -1), a few times over, for the processes forked meanwhile."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(ids[1])
            os.setuid(ids[0])
            for _ in range(5):
                os.kill(-1, signal.SIGKILL)  # every process of this user but this one; ESRCH once there is none
                time.sleep(0.001)
        finally:
            os._exit(0)
    for _ in range(200):  # a student's process may have stopped it (SIGSTOP): 2 s, then it is killed
        if os.waitpid(pid, os.WNOHANG)[0]:
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def sweep(pid: int | None = None, ids: tuple[int, int] | None = None) -> None:
    """Kill a worker's session, as root every process of the student user, and every process re-parented to this
    one (repeatedly, until none is left); reap them all; as root, remove the student user's files in SHARED_TEMP."""
    if pid is not None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for _ in range(1000):
        if ids is not None:
            _kill_user(ids)
        children = _children() if sys.platform.startswith("linux") else ([pid] if pid else [])
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for child in children:
            try:
                os.waitpid(child, 0)
            except ChildProcessError:
                pass
        if not children and (ids is None or not _live_processes_of(ids[0])):
            break
    if ids is not None:
        for shared in SHARED_TEMP:
            try:
                entries = list(os.scandir(shared))
            except OSError:
                continue
            for entry in entries:
                try:
                    if entry.stat(follow_symlinks=False).st_uid != ids[0]:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
                except OSError:
                    pass
