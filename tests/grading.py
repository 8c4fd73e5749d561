"""The autograder as a pytest plugin: points from tests/rubric.py, probes and verdicts, results.json.

A graded test is split in two. Its probes (`probe(function, *args)`) call the student's code and return plain data;
the test itself, the verdict, computes every check, point and message from that data. Grading, each probe runs in a
worker process of its own (tests/sandbox.py: its own session, as root an unprivileged user, resource limits, every
process it started killed afterwards), and the grading process, where the verdicts run, never imports the
student's file: no object the student's code made is ever compared, called or formatted there.

Developers run `python -m pytest` as usual: every test runs, in process, and a test that would take rubric
points off (`deduct`) fails, because the reference must earn every point. With `--results PATH` (or
$HW5_RESULTS) and `--assignment NAME` (or $HW5_ASSIGNMENT) the run grades one assignment: only its rubric's tests
run, their probes in workers with the test's timeout, so a submission that raises, loops, exits, crashes the
interpreter, prints megabytes, forks, or changes global state loses only that test; `PATH` then receives
Gradescope's results.json, whatever happens, totalled over that assignment's rows alone, written after every
process the submission started is gone.

$HW5_SUBMISSION names the folder with the student's file (Gradescope's /autograder/submission); without it the
tests grade the project's own scripts. A student's file is imported with its top-level statements other than
imports, definitions and simple assignments skipped (`load_script`), with `sys.argv` holding the script alone, and
always with the project's hw5_utils.py.
"""
from __future__ import annotations

import __future__
import ast
import importlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import pytest

import rubric
import sandbox

SUBMISSION_ENV, RESULTS_ENV, ASSIGNMENT_ENV = "HW5_SUBMISSION", "HW5_RESULTS", "HW5_ASSIGNMENT"
MNIST_ENV = "HW5_MNIST"  # hw5_utils.MNIST_ENV: the grader copies the file where its workers can read it
OUTPUT_LIMIT = 4000  # characters of a test's output kept in results.json

# ----------------------------------------------------------------------------------------------------
# The scripts under test


class MissingScript(Exception):
    """The submission has no such script."""


def submitted_file(name: str, folder: str | Path | None = None) -> Path | None:
    """The student's `name`.py in `folder` (default $HW5_SUBMISSION), anywhere below it (students upload folders too;
    the shallowest first); None outside grading. MissingScript if the submission has none."""
    folder = folder or os.environ.get(SUBMISSION_ENV)
    if not folder:
        return None
    found = sorted((path for path in Path(folder).rglob(f"{name}.py")
                    if path.is_file() and not path.is_symlink()),  # a link could point at the grader's files
                   key=lambda path: (len(path.parts), str(path)))
    if not found:
        raise MissingScript(f"{name}.py is not in the submission (as a file, not a link or a folder); submit it "
                            f"under exactly that name")
    return found[0]


def load_script(name: str) -> ModuleType:
    """Import hw5_vae / hw5_diffusion / hw5_gan: the student's file under $HW5_SUBMISSION, else the project's.

    A student's file runs only its imports, definitions and simple assignments (`top_level_plan`): training or a
    `main()` call left at the top level is skipped, and a kept assignment that fails is skipped too. A module
    already imported from the same file is reused.
    """
    path = submitted_file(name)
    if path is None:
        return importlib.import_module(name)
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded
    sys.argv = [str(path)]  # argparse in the student's code sees the script alone, never the grader's options
    tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
    module = ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # registered first, as a normal import does (dataclasses, pickling need it)
    flags = 0
    try:
        for node in top_level_plan(tree)[0]:
            code = compile(ast.Module([node], type_ignores=[]), str(path), "exec", flags=flags, dont_inherit=True)
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                flags |= sum(getattr(__future__, alias.name).compiler_flag for alias in node.names)
            try:
                exec(code, module.__dict__)
            except Exception:
                if isinstance(node, DEFINITIONS):
                    raise
                print(f"note: line {node.lineno} of {path.name} failed when imported and was skipped", file=sys.stderr)
    except BaseException:
        del sys.modules[name]
        raise
    return module


DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# Calls that make an assignment at the top level more than a simple one: training, argument parsing, files
SKIPPED_CALLS = {"main", "parse_args", "parse_known_args", "train", "fit", "load", "save", "show", "savefig",
                 "input", "exit", "sleep", "system"}


def top_level_plan(tree: ast.Module) -> tuple[list[ast.stmt], list[ast.stmt]]:
    """A student's file's top-level statements -> (those the grader runs, those it skips).

    Run: imports, definitions, docstrings, and simple assignments (no call of a class the file defines, nor of
    main, parse_args, train, load, ...), also inside `if` and `try` blocks made only of such statements. Skipped:
    everything else (calls, loops, `with` blocks, `args = parse_args()`, `vae = VAE(args)`). The
    `if __name__ == "__main__":` block is neither: it never runs on import.
    """
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}

    def calls_too_much(expression: ast.AST) -> bool:
        for call in (node for node in ast.walk(expression) if isinstance(node, ast.Call)):
            callee = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
            if callee in classes or callee in SKIPPED_CALLS:
                return True
        return False

    def kept(node: ast.stmt) -> bool:
        if isinstance(node, DEFINITIONS + (ast.Pass,)):
            return True
        if isinstance(node, ast.Expr):
            return isinstance(node.value, ast.Constant)  # a docstring
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            return node.value is None or not calls_too_much(node.value)
        if isinstance(node, ast.Try):
            return all(kept(child) for child in node.body + node.orelse + node.finalbody
                       + [statement for handler in node.handlers for statement in handler.body])
        if isinstance(node, ast.If):
            return all(kept(child) for child in node.body + node.orelse)
        return False

    run, skipped = [], []
    for node in tree.body:
        if not main_guard(node):
            (run if kept(node) else skipped).append(node)
    return run, skipped


def main_guard(node: ast.stmt) -> bool:
    """Whether node is `if __name__ == "__main__":`."""
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def skipped_note(name: str) -> str:
    """What the grader skips at the top level of the student's name.py, and how to guard it ('' if nothing)."""
    try:
        path = submitted_file(name)
        source = path.read_text(encoding="utf-8", errors="replace") if path else ""
        skipped = top_level_plan(ast.parse(source))[1]
    except Exception:  # noqa: BLE001 - a note at best: no file, a syntax error, a tree too deep to parse
        return ""
    if not skipped:
        return ""
    lines = source.splitlines()
    shown = ", ".join(f"line {node.lineno} `{lines[node.lineno - 1].strip()[:60]}`" for node in skipped[:5])
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return (f"{name}.py runs code at its top level, which runs whenever the file is imported: the grader skipped "
            f"{shown}{more}. Put such code under `if __name__ == \"__main__\":`.")


def manual_seed(seed: int) -> None:
    """Seed torch's, numpy's and Python's generators with seed + $HW5_SEED_OFFSET (students draw with any of them):
    every graded test seeds through this, so that a grading is repeatable and tests/benchmarks/seed_sweep.py can
    rerun the stochastic tests under other seeds to measure their pass rate."""
    import random

    import numpy as np
    import torch

    seed += int(os.environ.get("HW5_SEED_OFFSET", "0"))
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


# ----------------------------------------------------------------------------------------------------
# Probes: the student's part of a graded test, run where the student's code runs


class Probe:
    """probe(function, *args) -> function(the student's module, *args), as plain data (tests/sandbox.py: numbers,
    strings, lists, dicts, numpy arrays).

    A graded test is a verdict on data: what to call goes into a probe function, which receives the module under
    test (the student's hw5_*.py when grading, else the project's) and returns data; the test computes every check
    from what the probe returns. Grading, each call runs in a worker process of its own (sandbox.run), under the
    current test's deadline; the student's code raises sandbox.StudentError, a crash, a hang or a malformed reply
    sandbox.WorkerFailed, and what the worker printed is printed here. Outside grading, the call runs here, and
    its result makes the same round trip through the data channel.
    """

    def __init__(self, script: str, grader: "Grader | None") -> None:
        self.script, self.grader = script, grader

    def __call__(self, function, *args, **kwargs):
        if self.grader is None:
            return sandbox.decode(sandbox.encode(function(load_script(self.script), *args, **kwargs)))

        def call() -> dict:
            NOTES.clear()
            try:
                return {"value": function(load_script(self.script), *args, **kwargs), "notes": NOTES}
            except BaseException as error:  # noqa: BLE001 - sent to the grader, with the notes taken so far
                return {"error": sandbox.describe(error), "notes": NOTES}

        reply = self.grader.run_worker(call)
        if reply.output.strip():
            sys.stdout.write(reply.output)
        if not isinstance(reply.value, dict) or not isinstance(reply.value.get("notes"), dict):
            raise sandbox.WorkerFailed("the test's process sent a malformed reply")
        self.grader.notes.update(filter(None, map(note_text, reply.value["notes"].items())))
        if "error" in reply.value:
            sandbox.raise_student_error(reply.value["error"])
        return reply.value.get("value")


def as_number(value) -> float:
    """In a probe: a student's scalar (a number, or a tensor or array of one element) -> float."""
    array = as_array(value)
    if array.size != 1:
        raise ValueError(f"one number expected, got an array of shape {array.shape}")
    return float(array.reshape(()))


def as_array(value):
    """In a probe: a student's tensor (on any device, with or without a gradient), array or list -> a float64 numpy
    array."""
    import numpy as np
    import torch

    if value is None:
        raise TypeError("got None: a number or a tensor expected (is a `return` missing?)")
    return np.asarray(value.detach().cpu().double() if torch.is_tensor(value) else value, dtype=np.float64)


# The notes probes may tell the student, by name: a graded test file adds its own. A worker sends only a name and
# the short texts that fill it in; the grader writes the sentence.
NOTE_TEXTS: dict[str, str] = {}
NOTES: dict[str, dict] = {}  # in a worker: the notes a probe told, name -> fields


def tell(name: str, **fields: str) -> None:
    """From a probe: the note NOTE_TEXTS[name], filled in with fields, for the student, shown once at the top of
    results.json (e.g. what the grader did about a constructor that needs files Gradescope does not have)."""
    NOTES[name] = {key: str(value) for key, value in fields.items()}


def note_text(told: tuple) -> str | None:
    """In the grader: the sentence of a note a worker told, (name, fields), each field cut to 120 characters; None
    for a name no test file knows, or fields that do not fill it."""
    name, fields = told
    try:
        return NOTE_TEXTS[name].format(**{key: str(value)[:120] for key, value in fields.items()})
    except (KeyError, IndexError, ValueError, AttributeError, TypeError):
        return None


@pytest.fixture(scope="module")
def probe(request: pytest.FixtureRequest) -> Probe:
    """The probe runner of the script the test file grades (module-scoped: module fixtures probe too)."""
    return Probe(rubric.by_test_file(request.path.name).script, request.config.pluginmanager.get_plugin("hw5-grader"))


def shared_folder(request: pytest.FixtureRequest, name: str) -> Path:
    """A folder the grader fills for the workers to read (not write): in the run's folder when grading, else one of
    pytest's temporary folders."""
    grader = request.config.pluginmanager.get_plugin("hw5-grader")
    if grader is None:
        return request.getfixturevalue("tmp_path_factory").mktemp(name)
    folder = grader.folder / name
    folder.mkdir(mode=0o755, exist_ok=True)
    return folder


# ----------------------------------------------------------------------------------------------------
# Options and the deduct fixture


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hw5 grading")
    group.addoption("--results", default=os.environ.get(RESULTS_ENV),
                    help="grade: run the rubric's tests, each isolated, and write Gradescope's results.json here")
    group.addoption("--assignment", default=os.environ.get(ASSIGNMENT_ENV), choices=sorted(rubric.ASSIGNMENTS),
                    help="the assignment to grade (with --results)")


def grading(config: pytest.Config) -> bool:
    return bool(config.getoption("--results"))


def pytest_configure(config: pytest.Config) -> None:
    if grading(config):
        config.pluginmanager.register(Grader(config), "hw5-grader")


@pytest.fixture
def deduct(request: pytest.FixtureRequest):
    """deduct(name, reason): take the partial credit the rubric names `name` (in the test's row's `deductions`)
    off a test that otherwise passes; each name at most once.

    When grading, the deductions are subtracted from the test's points. Outside grading, a deduction fails the
    test: the reference implementation must earn every point.
    """
    row = rubric.by_test_file(request.path.name).rows[request.node.originalname]
    records: list = []
    request.node.user_properties.append(("deductions", records))

    def take(name: str, reason: str) -> None:
        points = row.deductions[name]
        if not grading(request.config):
            pytest.fail(f"would lose {points} point(s): {reason}")
        if name not in {taken for taken, _, _ in records}:
            records.append([name, points, reason])

    return take


# ----------------------------------------------------------------------------------------------------
# The grader: selection, deadlines, workers, scores, results.json


def truncate(text: str, limit: int = OUTPUT_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit // 2]}\n... [{len(text) - limit} characters cut] ...\n{text[-limit // 2:]}"


def failure_summary(text: str) -> str:
    """The failure's own message, from pytest's `E` lines (the test's sentence for a failed check), to put in one
    line before the traceback."""
    block = []
    for line in text.splitlines():
        if line.startswith("E "):
            block.append(line[1:].strip())
        elif block:
            break
    sentence = " ".join(line for line in block if line and not line.startswith(("assert ", "+", "where ")))
    return sentence.removeprefix("AssertionError: ")[:600]


class Grader:
    """Active with --results: grades one assignment's rubric and writes results.json at the end of the session.

    The tests run here, in the grading process, which never imports the student's file: their probes run in
    workers (sandbox.run), one at a time, under the test's deadline (its row's timeout, within the run's budget).
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config, self.start = config, time.time()
        self.results = Path(config.getoption("--results"))
        name = config.getoption("--assignment")
        if name is None:
            raise pytest.UsageError("grading needs --assignment NAME (or $HW5_ASSIGNMENT): "
                                    f"one of {', '.join(rubric.ASSIGNMENTS)}")
        self.assignment = rubric.ASSIGNMENTS[name]
        self.outcomes: dict[str, dict] = {}
        self.notes: set[str] = set()
        self.collect_error: str | None = None
        self.import_failure: str | None = None  # why importing the script never finished
        self.import_checked = False
        self.deadline = math.inf  # time.monotonic() at which the current test's workers are stopped
        self.workers = 0
        config.option.tbstyle = "short"  # students read the failing line and its message, not our fixtures
        self.folder = self.prepare_folder()
        self.ids = sandbox.student_ids() if sandbox.is_root() else None
        sandbox.guard_grader()
        # The libraries students' files import, loaded once here: each worker finds them in memory instead of
        # importing them again (torchvision alone takes about a second, as long as many tests). One thread: the
        # workers are forked from this process, and Gradescope gives about one core anyway.
        for library in ("matplotlib", "matplotlib.pyplot", "torchvision", "torch", "hw5_utils"):
            importlib.import_module(library)
        sys.modules["matplotlib"].use("Agg")  # plt.show() never waits for a window
        sys.modules["torch"].set_num_threads(1)

    def prepare_folder(self) -> Path:
        """The run's folder: what the workers may read (a copy of the student's script, of the MNIST file) and their
        working folders, each the student user's own. Traversable by the student user, not listable."""
        folder = Path(tempfile.mkdtemp(prefix="hw5-grading-"))
        folder.chmod(0o711)
        if os.environ.get(SUBMISSION_ENV):  # else the project's own scripts are graded, imported as modules
            submission = folder / "submission"
            submission.mkdir(mode=0o755)
            try:
                source = submitted_file(self.assignment.script)
            except MissingScript:
                source = None
            if source is not None:
                shutil.copyfile(source, submission / source.name)
                (submission / source.name).chmod(0o644)
            os.environ[SUBMISSION_ENV] = str(submission)
        mnist = os.environ.get(MNIST_ENV)
        if mnist and Path(mnist).is_file():
            shutil.copyfile(mnist, folder / "mnist.npz")
            (folder / "mnist.npz").chmod(0o644)
            os.environ[MNIST_ENV] = str(folder / "mnist.npz")
        return folder

    def run_worker(self, call, timeout: float | None = None) -> sandbox.Reply:
        """call() in a worker, until the current test's deadline (or for `timeout` seconds)."""
        self.workers += 1
        seconds = timeout if timeout is not None else self.deadline - time.monotonic()
        if seconds <= 0:
            raise sandbox.WorkerFailed("not run: the test's time was used up by its earlier steps")
        return sandbox.run(call, seconds, self.folder / f"worker-{self.workers}")

    def check_import(self) -> str | None:
        """Import the script once in a worker: why the import never finished (a hang, a crash), else None.

        Without this check, code that hangs at import time (training left at a file's top level) would make every
        test of the script wait out its own timeout and use up the whole run's time budget. An exception raised on
        import is left to each test to report, with its traceback.
        """
        name, timeout = self.assignment.script, min(rubric.IMPORT_TIMEOUT * rubric.timeout_scale(), self.remaining())
        try:
            self.run_worker(lambda: load_script(name) and None, timeout)
        except sandbox.StudentError:
            return None
        except sandbox.WorkerFailed as failure:
            if str(failure).startswith("timed out"):
                return (f"not run: importing {name}.py did not finish within {timeout:.0f} s. Code at the top level of "
                        f"a file runs when it is imported: put training and other long work under "
                        f"`if __name__ == \"__main__\":`")
            crash = "the test crashed: "
            if str(failure).startswith(crash):
                return f"not run: importing {name}.py ended the interpreter: {str(failure).removeprefix(crash)}"
            return f"not run: importing {name}.py failed: {failure}"
        return None

    def remaining(self) -> float:
        """Seconds left of the run's time budget."""
        return rubric.time_budget() - (time.time() - self.start)

    def graded_function(self, nodeid: str) -> str | None:
        """The rubric row's test function that nodeid names, if it is one of this assignment's."""
        file, _, function = nodeid.rpartition("/")[2].partition("::")
        return function if file == self.assignment.tests and function in self.assignment.rows else None

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and report.nodeid.endswith(self.assignment.tests):
            self.collect_error = report.longreprtext

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        keep = [item for item in items if self.graded_function(item.nodeid)]
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        """Run the test here, its workers under its deadline; or fail it at once when the budget is used up or
        the script cannot be imported."""
        if self.remaining() >= 5 and not self.import_checked:
            self.import_checked = True
            self.import_failure = self.check_import()
        remaining = self.remaining()
        reason = ("not run: the autograder's time budget was used up by earlier tests" if remaining < 5 else
                  self.import_failure)
        if reason is None:
            self.start_clock(item)  # for its fixtures' probes (a training shared by several tests, say)
            return None  # pytest's own protocol runs the test
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        item.ihook.pytest_runtest_logreport(report=pytest.TestReport(
            nodeid=item.nodeid, location=item.location, keywords={}, outcome="failed", longrepr=reason, when="call"))
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def start_clock(self, item: pytest.Item) -> None:
        """The test's probes may run until its row's timeout from now, within the run's budget."""
        row = self.assignment.rows[self.graded_function(item.nodeid)]
        self.deadline = time.monotonic() + min(row.timeout * rubric.timeout_scale(), self.remaining())

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        self.start_clock(item)  # again for the test's own probes, after what its fixtures took

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        """A failure in the student's code or its worker reads as that failure's own message, then its traceback."""
        report = (yield).get_result()
        error = call.excinfo.value if call.excinfo is not None else None
        if isinstance(error, sandbox.StudentError):
            report.longrepr, report.summary = f"{error.summary}\n\n{error.details}", error.summary
        elif isinstance(error, sandbox.WorkerFailed):
            report.longrepr, report.summary = str(error), str(error).split("\n", 1)[0]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        function = self.graded_function(report.nodeid)
        if function is None:
            return
        outcome = self.outcomes.setdefault(function, {"failed": False, "ran": False, "text": [], "deductions": []})
        outcome["ran"] |= report.when == "call" and report.passed
        if report.failed or report.skipped:
            outcome["failed"] = True
            what = "skipped" if report.skipped else f"failed in {report.when}"
            summary = getattr(report, "summary", None) or failure_summary(report.longreprtext)
            outcome["text"].append(f"{what}: {summary}\n\n{report.longreprtext}" if summary else
                                   f"{what}:\n{report.longreprtext}")
        # a report carries what every phase so far captured: keep only its own phase's sections
        outcome["text"].extend(f"{title}:\n{text}" for title, text in report.sections
                               if text.strip() and title.split()[-1] == report.when)
        if report.when == "call":  # every phase's report carries the same list: take it once
            for key, value in report.user_properties:
                if key == "deductions":
                    outcome["deductions"].extend(value)

    def pytest_sessionfinish(self) -> None:
        sandbox.sweep(None, self.ids)  # nothing the student's code started is left to touch results.json
        note = " ".join([skipped_note(self.assignment.script), *sorted(self.notes)]).strip()
        shutil.rmtree(self.folder, ignore_errors=True)
        tests = grade(self.assignment, self.outcomes, self.collect_error)
        write_results(self.results, tests, time.time() - self.start, note=note)
        width = max(len(test["name"]) for test in tests)
        lines = [f"{test['name']:{width}s}  {test['score']:5g} / {test['max_score']:g}" for test in tests]
        sys.stdout.write("\n" + "\n".join(lines) + f"\nresults written to {self.results}\n")


def grade(assignment: rubric.Assignment, outcomes: dict, collect_error: str | None) -> list[dict]:
    """One results.json test entry per row of the assignment's rubric, in the rubric's order."""
    tests = []
    for function, row in assignment.rows.items():
        outcome = outcomes.get(function)
        if outcome is None:
            score, text = 0.0, f"not run: {collect_error or 'not among the rows this run grades'}"
        elif outcome["failed"] or not outcome["ran"]:
            score, text = 0.0, "\n".join(outcome["text"])
        else:
            lost = sum(points for _, points, _ in outcome["deductions"])
            score = max(0.0, row.points - lost)
            notes = [f"-{points:g}: {reason}" for _, points, reason in outcome["deductions"]]
            text = "\n".join(["passed with deductions:" if notes else "passed", *notes, *outcome["text"]])
        tests.append({"name": f"{row.number} {row.title}", "number": row.number, "score": score,
                      "max_score": row.points, "status": "passed" if score == row.points else "failed",
                      "output": truncate(text), "visibility": row.visibility})
    return tests


def write_results(path: Path, tests: list[dict], execution_time: float, note: str = "") -> None:
    """Gradescope's results.json (atomically): the total, the time, and one entry per test."""
    score, total = sum(test["score"] for test in tests), sum(test["max_score"] for test in tests)
    results = {"score": score, "execution_time": round(execution_time, 1),
               "output": f"{score:g} / {total:g} points. {note}".strip(), "stdout_visibility": "hidden",
               "tests": tests}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # a fresh name nothing can be in the way of
    with os.fdopen(handle, "w") as file:
        json.dump(results, file, indent=2)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
