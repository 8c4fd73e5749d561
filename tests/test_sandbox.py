"""The worker a student's code runs in (tests/sandbox.py): the data channel carries data only, and nothing the code
does reaches past its worker.

Each scenario runs in a fresh Python that plays the grader (a subreaper calling sandbox.run), since a sweep kills
every child of the process it runs in. As root (CI) the worker drops to the student user; the scenarios that need
that are skipped, with the reason, when the suite does not run as root.
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch

import sandbox

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the user drop and its limits need root (CI runs as root)")


# ----------------------------------------------------------------------------------------------------
# The data channel


class AlwaysEqual(float):
    def __eq__(self, other):
        return True

    __hash__ = float.__hash__


def test_plain_data_and_arrays_make_the_round_trip():
    Pair = namedtuple("Pair", "left right")
    value = {"n": 3, "x": 2.5, "s": "ok", "flag": True, "none": None, "list": [1, (2, 3)],
             "pair": Pair(np.float32(1.5), torch.arange(3)), "floats": torch.ones(2, 3), "half": torch.ones(2).bfloat16(),
             "zero-d": np.array(7.0), "bools": np.array([True, False])}
    back = sandbox.decode(sandbox.encode(value))
    assert back["n"] == 3 and back["x"] == 2.5 and back["s"] == "ok"
    assert back["flag"] is True and back["none"] is None and back["list"] == [1, [2, 3]]
    assert back["pair"]["left"] == 1.5 and back["pair"]["right"].tolist() == [0, 1, 2]
    assert back["floats"].dtype == np.float32 and back["floats"].shape == (2, 3)
    assert back["half"].dtype == np.float32 and back["zero-d"].shape == () and back["bools"].dtype == bool


def test_what_comes_back_is_built_by_the_grader_not_by_the_student():
    """A float subclass whose == is always true arrives as a plain float, which compares honestly."""
    back = sandbox.decode(sandbox.encode({"loss": AlwaysEqual(0.5), "loss_tensor": torch.tensor(0.5)}))
    assert type(back["loss"]) is float and back["loss"] != 1.49 and back["loss"] == 0.5
    assert type(back["loss_tensor"]) is np.ndarray


def test_objects_that_are_not_data_are_not_sent():
    for value in (object(), {"f": len}, np.array([object()]), {sandbox.ARRAY: 0}):
        with pytest.raises(TypeError):
            sandbox.encode(value)


@pytest.mark.parametrize("value", [math.nan, -math.inf, [1.0, {"x": math.inf}], np.array([0.0, math.nan]),
                                   torch.tensor([math.inf])], ids=["nan", "-inf", "nested", "array", "tensor"])
def test_nan_and_infinity_fail_the_test(value):
    """A NaN passes every check written as "fail if the error exceeds the tolerance": none is let in."""
    with pytest.raises(sandbox.WorkerFailed, match="NaN or infinity"):
        sandbox.decode(sandbox.encode({"value": value}))
    with pytest.raises(sandbox.WorkerFailed, match="NaN or infinity"):
        sandbox.decode(framed(b'{"x": 1e999}'))


def framed(*parts: bytes) -> bytes:
    return b"".join(struct.pack("<Q", len(part)) + part for part in parts)


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


@pytest.mark.parametrize("payload", [
    b"", b"\x05", framed(b"{not json"), framed(b'{"a": {"__ndarray__": 0}}'),          # no such array
    framed(b'{"a": {"__ndarray__": 0}}', npy(np.array([object()]), allow_pickle=True)),  # a pickle: refused
    framed(b'{"a": {"__ndarray__": 0}}', npy(np.zeros(2, dtype=[("x", "f4")]))),       # not a plain number array
    framed(b'{"a": {"__ndarray__": 0}}', npy(np.array(["text"]))),
    framed(b'{"a": {"__ndarray__": "0"}}', npy(np.zeros(2))),
    framed(b"[]")[:-1], framed(b"[]") + b"\x00", framed(b"[" * 100000 + b"]" * 100000),
], ids=["empty", "short", "not json", "no array", "pickle", "structured", "strings", "bad index", "cut short",
        "bytes left over", "deep"])
def test_malformed_replies_fail(payload):
    with pytest.raises(sandbox.WorkerFailed, match="malformed reply"):
        sandbox.decode(payload)


# ----------------------------------------------------------------------------------------------------
# Scenarios, run by `grader` in a fresh Python that plays the grading process


def grader(scenario: str, *args, same_user: bool = False) -> dict:
    """Run scenario(*args) of this module in a fresh Python that calls sandbox.run as the grader does (a subreaper;
    `same_user`: as if it were not root, the worker keeping its user); return the JSON it prints."""
    code = (f"import sys; sys.path[:0] = [{str(TESTS)!r}, {str(ROOT)!r}]\n"
            f"import json, sandbox, test_sandbox\n"
            f"if {same_user!r}: sandbox.is_root = lambda: False\n"
            f"sandbox.guard_grader()\n"
            f"print(json.dumps(test_sandbox.{scenario}(*{args!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HW5_STUDENT_USER": f"{sandbox.STUDENT_USER}-sandbox"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def outcome(call, timeout: float = 20) -> dict:
    """In the grader: sandbox.run(call) -> what happened, as data."""
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o711)
    try:
        reply = sandbox.run(call, timeout, folder / "work")
        found = {"value": reply.value, "output": reply.output}
    except sandbox.StudentError as error:
        found = {"student": error.summary, "details": error.details}
    except sandbox.WorkerFailed as error:
        found = {"failed": str(error)}
    return {**found, "seconds": time.monotonic() - started}


def replies_and_failures() -> dict:
    def flood():
        for _ in range(50):
            print("x" * 1_000_000)
        return 1

    def garbage():
        os.write(3, struct.pack("<Q", 10) + b"V" + b"\xff" * 9)
        os._exit(0)

    def crash():
        import ctypes
        ctypes.string_at(0)

    def hang():
        while True:
            pass

    cases = {"value": lambda: {"x": torch.ones(2)}, "raises": lambda: 1 / 0, "exits": lambda: os._exit(3),
             "crashes": crash, "flood": flood, "garbage": garbage, "system exit": lambda: sys.exit(0),
             "unsendable": lambda: object()}
    found = {name: outcome(call) for name, call in cases.items()}
    found["hangs"] = outcome(hang, timeout=2)
    for case in found.values():
        if isinstance(case.get("value"), dict):
            case["value"] = {key: value.tolist() for key, value in case["value"].items()}
    return found


def test_a_worker_returns_data_or_says_why_not():
    found = grader("replies_and_failures")
    assert found["value"]["value"] == {"x": [1.0, 1.0]}
    assert found["raises"]["student"] == "ZeroDivisionError: division by zero"
    assert "Traceback" in found["raises"]["details"] and "1 / 0" in found["raises"]["details"]
    assert found["system exit"]["student"].startswith("SystemExit")
    assert found["unsendable"]["student"] == "TypeError: cannot send a object"
    assert "exited with code 3" in found["exits"]["failed"]
    assert "killed by signal SIGSEGV" in found["crashes"]["failed"] and "Segmentation fault" in found["crashes"]["failed"]
    assert found["hangs"]["failed"].startswith("timed out after 2 s") and found["hangs"]["seconds"] < 4
    assert "malformed reply" in found["garbage"]["failed"]
    flood = found["flood"]
    assert flood["value"] == 1 and "bytes cut" in flood["output"] and len(flood["output"]) < 3 * sandbox.OUTPUT_KEPT


def detached(marker: str) -> dict:
    """A worker that starts processes meant to outlive it (a new session, a double fork), each writing `marker` 3 s
    later; returns whether any process of the worker's user or under this grader is left, and the marker."""
    def leave_processes():
        script = f"sleep 3; echo late > {marker}"
        import subprocess as sp
        sp.Popen(["/bin/sh", "-c", script], start_new_session=True)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(3)
                Path(marker).write_text("late")
            os._exit(0)
        return os.getuid()

    uid = outcome(leave_processes)["value"]
    left = sandbox._processes_of(uid) if uid != os.getuid() else []
    children = [pid for pid in sandbox._children()]
    time.sleep(4)
    return {"uid": uid, "left": left, "children": children, "marker": os.path.exists(marker)}


@pytest.mark.parametrize("same_user", [False, True], ids=["student user", "same user"])
def test_nothing_a_worker_starts_outlives_it(same_user, tmp_path):
    if not same_user and os.geteuid() != 0:
        pytest.skip("the student user needs root (CI runs as root)")
    marker = tmp_path / "marker"
    tmp_path.chmod(0o777)  # the student user may write it: only killing its processes stops the marker
    found = grader("detached", str(marker), same_user=same_user)
    assert found["uid"] != 0 or same_user
    assert not found["left"] and not found["children"] and not found["marker"], found


def confinement(private: str) -> dict:
    """What the student's code can reach from a worker: an fd the grader holds, a file only root may read, the
    shared temporary folder's leftovers, processes, file size and memory."""
    held = os.open(private, os.O_RDONLY)

    def reach():
        listed = [int(fd) for fd in os.listdir("/proc/self/fd")]  # the listing's own fd is closed again by now
        found = {"uid": os.getuid(), "fds": sorted(fd for fd in listed if os.path.exists(f"/proc/self/fd/{fd}"))}
        for name, attempt in (("read", lambda: Path(private).read_text()),
                              ("write results", lambda: Path(private).with_name("results.json").write_text("{}")),
                              ("big file", lambda: Path("big").write_bytes(b"x" * (sandbox.FILE_SIZE + 1))),
                              ("memory", lambda: bytearray(sandbox.MEMORY + (1 << 30)))):
            try:
                attempt()
                found[name] = "done"
            except (OSError, MemoryError) as error:
                found[name] = type(error).__name__
        Path("/tmp", f"left-by-{os.getuid()}").write_text("x")
        forked = 0
        try:
            for _ in range(2 * sandbox.PROCESSES):
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                forked += 1
        except OSError:
            pass
        found["forked"] = forked
        return found

    found = outcome(reach)["value"]
    os.close(held)
    found["left in /tmp"] = os.path.exists(f"/tmp/left-by-{found['uid']}")
    return found


@as_root
def test_as_root_the_student_user_is_confined(tmp_path):
    private = tmp_path / "private.txt"
    private.write_text("the tests")
    private.chmod(0o600)
    found = grader("confinement", str(private))
    assert found["uid"] != 0
    assert found["fds"] == [0, 1, 2, 3], "only its own stdin, output, and reply pipe"
    assert found["read"] == "PermissionError" and found["write results"] == "PermissionError"
    assert found["big file"] == "OSError" and found["memory"] == "MemoryError"
    assert found["forked"] < sandbox.PROCESSES
    assert not found["left in /tmp"]
