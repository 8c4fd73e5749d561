"""The autograder as a pytest plugin: points from tests/rubric.py, one forked process per test, results.json.

Developers run `python -m pytest` as usual: every test runs, in process, and a test that would take rubric
points off (`deduct`) fails, because the reference must earn every point. With `--results PATH` (or
$HW5_RESULTS) and `--assignment NAME` (or $HW5_ASSIGNMENT) the run grades one assignment: only its rubric's tests
run, each in its own forked process with a timeout, so a submission that raises, loops, exits, crashes the
interpreter, prints megabytes or changes global torch state loses only that test; `PATH` then receives
Gradescope's results.json, whatever happens, totalled over that assignment's rows alone.

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
import os
import select
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import pytest

import rubric

SUBMISSION_ENV, RESULTS_ENV, ASSIGNMENT_ENV = "HW5_SUBMISSION", "HW5_RESULTS", "HW5_ASSIGNMENT"
CACHE_ENV = "HW5_GRADING_CACHE"
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
    found = sorted(Path(folder).rglob(f"{name}.py"), key=lambda path: (len(path.parts), str(path)))
    if not found:
        raise MissingScript(f"{name}.py is not in the submission; submit it under exactly that name")
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
    except (MissingScript, SyntaxError, ValueError):
        return ""
    if not skipped:
        return ""
    lines = source.splitlines()
    shown = ", ".join(f"line {node.lineno} `{lines[node.lineno - 1].strip()[:60]}`" for node in skipped[:5])
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return (f"{name}.py runs code at its top level, which runs whenever the file is imported: the grader skipped "
            f"{shown}{more}. Put such code under `if __name__ == \"__main__\":`.")


def manual_seed(seed: int) -> None:
    """torch.manual_seed(seed + $HW5_SEED_OFFSET): every graded test seeds through this, so that
    tests/benchmarks/seed_sweep.py can rerun the stochastic tests under other seeds to measure their pass rate."""
    import torch

    torch.manual_seed(seed + int(os.environ.get("HW5_SEED_OFFSET", "0")))


def grading_cache(name: str) -> Path:
    """A folder shared by every test of one grading run (each test runs in its own process), e.g. to train a
    submission's model once and let several tests read it. Outside grading: a per-process temporary folder."""
    root = os.environ.get(CACHE_ENV) or os.environ.setdefault(CACHE_ENV, tempfile.mkdtemp(prefix="hw5-cache-"))
    path = Path(root) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def train_once(module, name: str, train) -> None:
    """Give `module` (a torch.nn.Module) the weights of one training per grading run: those an earlier test's
    process left in grading_cache(name), else run train() and leave them there (atomically, so that a test
    killed while saving leaves no half-written file)."""
    import torch

    from hw5_utils import save_checkpoint

    path = grading_cache(name) / "weights.pt"
    if path.exists():
        module.load_state_dict(torch.load(path, weights_only=True))
        return
    train()
    save_checkpoint(module.state_dict(), path)


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
        # The libraries students' files import, loaded once here: each test's forked process finds them in memory
        # instead of importing them again (torchvision alone takes about a second, as long as many tests).
        for library in ("matplotlib.pyplot", "torchvision"):
            importlib.import_module(library)


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
# Isolation: each graded test in a forked process, killed at its timeout


def truncate(text: str, limit: int = OUTPUT_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit // 2]}\n... [{len(text) - limit} characters cut] ...\n{text[-limit // 2:]}"


def failure_summary(text: str) -> str:
    """The failure's own message, from pytest's `E` lines (the test's sentence for a failed check, the exception and
    its message for code that raised: "NotImplementedError: 2.a Decoder.__init__: not implemented yet"), to put in
    one line before the traceback."""
    block = []
    for line in text.splitlines():
        if line.startswith("E "):
            block.append(line[1:].strip())
        elif block:
            break
    sentence = " ".join(line for line in block if line and not line.startswith(("assert ", "+", "where ")))
    return sentence.removeprefix("AssertionError: ")[:600]


def failed_report(item: pytest.Item, message: str, when: str = "call") -> pytest.TestReport:
    return pytest.TestReport(nodeid=item.nodeid, location=item.location, keywords={}, outcome="failed",
                             longrepr=message, when=when)


def run_in_child(item: pytest.Item, write_fd: int) -> None:
    """In the forked child: run the test's setup/call/teardown and send the reports to the parent."""
    from _pytest.runner import runtestprotocol

    os.setpgid(0, 0)  # its own process group: the parent can kill everything the test started
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.chdir(tempfile.mkdtemp(prefix="hw5-test-"))  # what the student's code saves lands in a folder of its own
    config = item.config
    try:
        import matplotlib
        import torch

        matplotlib.use("Agg")  # plt.show() never waits for a window
        torch.set_num_threads(1)  # Gradescope gives about half a core: extra threads only thrash
        reports = runtestprotocol(item, log=False, nextitem=None)
    except BaseException as error:  # pytest.exit, KeyboardInterrupt, ... raised by the code under test
        reports = [failed_report(item, f"the test stopped the run: {type(error).__name__}: {error}")]
    payload = []
    for report in reports:
        report.sections = [(title, truncate(text)) for title, text in report.sections]
        if report.longrepr is not None:
            report.longrepr = truncate(str(report.longrepr))
        payload.append(config.hook.pytest_report_to_serializable(config=config, report=report))
    with os.fdopen(write_fd, "w") as pipe:
        json.dump(payload, pipe)
    os._exit(0)


def run_forked(item: pytest.Item, timeout: float) -> list[pytest.TestReport]:
    """Run one test in a child process; a timeout, a crash or an exit becomes a failed report."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            run_in_child(item, write_fd)
        finally:
            os._exit(1)
    os.close(write_fd)
    chunks, status, deadline = [], None, time.monotonic() + timeout
    try:
        while status is None and time.monotonic() < deadline:
            ready, _, _ = select.select([read_fd], [], [], 0.2)
            if ready:
                chunk = os.read(read_fd, 1 << 16)
                if chunk:
                    chunks.append(chunk)
                    continue
            done, code = os.waitpid(pid, os.WNOHANG)
            status = code if done else None
    finally:
        kill_group(pid)
        if status is None:
            status = os.waitpid(pid, 0)[1]
        os.close(read_fd)
    if not chunks and time.monotonic() >= deadline:
        return [failed_report(item, f"timed out after {timeout:.0f} s (an endless loop, or far too slow)")]
    try:
        config = item.config
        return [config.hook.pytest_report_from_serializable(config=config, data=data)
                for data in json.loads(b"".join(chunks))]
    except ValueError:
        return [failed_report(item, f"the test crashed: {exit_reason(status)} before the test finished (exit, "
                                    f"os._exit, a segfault or out of memory)")]


def check_import(name: str, timeout: float) -> str | None:
    """Import script `name` once in a child process: why the import never finished (a hang, a crash), else None.

    Without this check, code that hangs at import time (training left at a file's top level) would make every
    test of the script wait out its own timeout and use up the whole run's time budget. An exception raised on
    import is left to each test to report, with its traceback.
    """
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            quiet = os.open(os.devnull, os.O_WRONLY)
            os.dup2(quiet, 1), os.dup2(quiet, 2)
            load_script(name)
        finally:
            os._exit(0)
    done, status, deadline = 0, 0, time.monotonic() + timeout
    while not done and time.monotonic() < deadline:
        time.sleep(0.05)
        done, status = os.waitpid(pid, os.WNOHANG)
    kill_group(pid)
    if not done:
        os.waitpid(pid, 0)
        return (f"not run: importing {name}.py did not finish within {timeout:.0f} s. Code at the top level of a "
                f"file runs when it is imported: put training and other long work under "
                f"`if __name__ == \"__main__\":`")
    if os.WIFSIGNALED(status) or os.WEXITSTATUS(status):
        return f"not run: importing {name}.py ended the interpreter: {exit_reason(status)}"
    return None


def exit_reason(status: int) -> str:
    """A child's wait status, in words."""
    if os.WIFSIGNALED(status):
        return f"the process was killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"the process exited with code {os.WEXITSTATUS(status)}"


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ----------------------------------------------------------------------------------------------------
# The grader: selection, isolated runs, scores, results.json


class Grader:
    """Active with --results: grades one assignment's rubric and writes results.json at the end of the session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config, self.start = config, time.time()
        self.results = Path(config.getoption("--results"))
        name = config.getoption("--assignment")
        if name is None:
            raise pytest.UsageError("grading needs --assignment NAME (or $HW5_ASSIGNMENT): "
                                    f"one of {', '.join(rubric.ASSIGNMENTS)}")
        self.assignment = rubric.ASSIGNMENTS[name]
        self.outcomes: dict[str, dict] = {}
        self.collect_error: str | None = None
        self.import_failure: str | None = None  # why importing the script never finished
        self.import_checked = False
        config.option.tbstyle = "short"  # students read the failing line and its message, not our fixtures
        os.environ[CACHE_ENV] = tempfile.mkdtemp(prefix="hw5-grading-")

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
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool:
        row = self.assignment.rows[self.graded_function(item.nodeid)]
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        if self.remaining() >= 5 and not self.import_checked:
            self.import_checked = True
            self.import_failure = check_import(self.assignment.script, min(rubric.IMPORT_TIMEOUT
                                                                           * rubric.timeout_scale(), self.remaining()))
        remaining = self.remaining()
        if remaining < 5:
            reports = [failed_report(item, "not run: the autograder's time budget was used up by earlier tests")]
        elif self.import_failure:
            reports = [failed_report(item, self.import_failure)]
        else:
            reports = run_forked(item, min(row.timeout * rubric.timeout_scale(), remaining))
        for report in reports:
            item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        function = self.graded_function(report.nodeid)
        if function is None:
            return
        outcome = self.outcomes.setdefault(function, {"failed": False, "ran": False, "text": [], "deductions": []})
        outcome["ran"] |= report.when == "call" and report.passed
        if report.failed or report.skipped:
            outcome["failed"] = True
            what = "skipped" if report.skipped else f"failed in {report.when}"
            summary = failure_summary(report.longreprtext)
            outcome["text"].append(f"{what}: {summary}\n\n{report.longreprtext}" if summary else
                                   f"{what}:\n{report.longreprtext}")
        outcome["text"].extend(f"{title}:\n{text}" for title, text in report.sections
                               if report.when == "call" and text.strip())
        if report.when == "call":  # every phase's report carries the same list: take it once
            for key, value in report.user_properties:
                if key == "deductions":
                    outcome["deductions"].extend(value)

    def pytest_sessionfinish(self) -> None:
        tests = grade(self.assignment, self.outcomes, self.collect_error)
        write_results(self.results, tests, time.time() - self.start, note=skipped_note(self.assignment.script))
        width = max(len(test["name"]) for test in tests)
        lines = [f"{test['name']:{width}s}  {test['score']:5g} / {test['max_score']:g}" for test in tests]
        sys.stdout.write("\n" + "\n".join(lines) + f"\nresults written to {self.results}\n")


def grade(assignment: rubric.Assignment, outcomes: dict, collect_error: str | None) -> list[dict]:
    """One results.json test entry per row of the assignment's rubric, in the rubric's order."""
    tests = []
    for function, row in assignment.rows.items():
        outcome = outcomes.get(function)
        if outcome is None:
            score, text = 0.0, f"not run: {collect_error or 'the test was not collected (its file failed to load?)'}"
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
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2))
    os.replace(tmp, path)
