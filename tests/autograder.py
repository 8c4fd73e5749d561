"""Build, run and inspect the Gradescope autograder.

    python tests/autograder.py build [--out dist/hw5-autograder.zip]   # the zip to upload to Gradescope
    python tests/autograder.py run --submission FOLDER [--results results.json]   # grade a folder locally
    python tests/autograder.py table                                    # the points table with totals

The zip holds, at its root, Gradescope's `setup.sh` (installs CPU-only torch and the other dependencies when
Gradescope builds the image) and `run_autograder` (grades /autograder/submission into
/autograder/results/results.json), plus the graded tests, hw5_utils.py, the MNIST file the tests train on and
the trained MNIST judge (so that Gradescope never trains it). It never contains the reference solutions. Every
path run_autograder uses can be overridden by environment variables (AUTOGRADER_ROOT, HW5_SUBMISSION,
HW5_RESULTS, HW5_PYTHON, HW5_CACHE), so tests run it in a temporary tree.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path[:0] = [str(ROOT), str(TESTS)]

import grading  # noqa: E402
import rubric  # noqa: E402

# What the upload holds besides the generated scripts: the graded test files and their support.
SUPPORT = ["pyproject.toml", "hw5_utils.py", "tests/conftest.py", "tests/grading.py", "tests/rubric.py",
           "tests/autograder.py"]
GRADED_FILES = sorted({"tests/" + key.split("::")[0] for key in rubric.RUBRIC})

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, with internet, when it builds the autograder image (Ubuntu).
set -euo pipefail
apt-get update -qq
apt-get install -y -qq python3 python3-pip python3-venv > /dev/null
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -q --index-url https://download.pytorch.org/whl/cpu torch torchvision
/autograder/venv/bin/pip install -q {requirements}
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this from /autograder for every submission. Each path can be overridden to grade locally.
ROOT="${AUTOGRADER_ROOT:-/autograder}"
export HW5_SUBMISSION="${HW5_SUBMISSION:-$ROOT/submission}"
export HW5_MNIST="${HW5_MNIST:-$ROOT/source/data/mnist10k.npz}"
export HW5_CACHE="${HW5_CACHE:-$ROOT/source/cache}"
RESULTS="${HW5_RESULTS:-$ROOT/results/results.json}"
PYTHON="${HW5_PYTHON:-$ROOT/venv/bin/python}"
cd "$ROOT/source" && exec "$PYTHON" tests/autograder.py run --results "$RESULTS"
"""


def requirements() -> str:
    """The project's runtime dependencies but torch/torchvision (installed CPU-only first), plus pytest."""
    text = (ROOT / "pyproject.toml").read_text()
    listed = re.findall(r'"([^"]+)"', re.search(r"^dependencies = \[(.*?)\]", text, re.S | re.M).group(1))
    keep = [dep for dep in listed if not re.match(r"torch(vision)?\b", dep)] + ["pytest>=7"]
    return " ".join(f"'{dep}'" for dep in keep)


def build(out: Path, data: Path) -> Path:
    """Write the Gradescope zip: setup.sh and run_autograder at its root, the sources under it."""
    if not data.is_file():
        sys.exit(f"Error: no MNIST file at {data}: pass --data or set HW5_MNIST")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in (("setup.sh", SETUP_SH.format(requirements=requirements())),
                           ("run_autograder", RUN_AUTOGRADER)):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16  # executable, as Gradescope requires
            archive.writestr(info, text)
        for name in SUPPORT + GRADED_FILES:
            archive.write(ROOT / name, name)
        archive.write(data, "data/mnist10k.npz")
        judge = trained_judge(data)
        archive.write(judge, f"cache/{judge.name}")
    return out


def trained_judge(data: Path) -> Path:
    """The cached MNIST judge for this MNIST file (trained here first if it is not cached yet)."""
    import hw5_utils

    mnist = hw5_utils.load_mnist(data, train_size=0, binarize="none")
    hw5_utils.load_judge(mnist)
    return hw5_utils.judge_path(mnist)


def run(results: Path, extra_args: list[str]) -> int:
    """Grade the submission named by $HW5_SUBMISSION into `results`; results.json is always written."""
    budget = rubric.time_budget()
    results.unlink(missing_ok=True)  # a stale file must not pass for this run's results
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--results", str(results),
               *extra_args]
    try:
        finished = subprocess.run(command, cwd=ROOT, timeout=budget + 30, capture_output=True, text=True)
        log, failure = finished.stdout + finished.stderr, None
        if finished.returncode < 0:  # killed: what results.json holds was not written by the grader
            failure = f"the test run was killed by signal {signal.Signals(-finished.returncode).name}"
    except subprocess.TimeoutExpired as error:
        log, failure = str(error.stdout or "") + str(error.stderr or ""), "the whole run exceeded its time budget"
    sys.stdout.write(log[-20000:])
    try:
        complete = failure is None and "tests" in json.loads(results.read_text())
    except (OSError, ValueError):
        complete = False
    if not complete:  # pytest itself broke: still give Gradescope a complete result
        reason = failure or f"the test run ended without results:\n{log[-3000:]}"
        tests = grading.grade({}, {file.split("/", 1)[1]: reason for file in GRADED_FILES})
        grading.write_results(results, tests, 0.0, note="The autograder could not run the tests.")
    return 0


def table() -> None:
    width = max(len(row.number) + len(row.title) for row in rubric.RUBRIC.values()) + 1
    for row in rubric.RUBRIC.values():
        print(f"{row.number + ' ' + row.title:{width}s}  {row.points:4g}  {row.visibility:15s} {row.timeout:4.0f} s")
    print(f"{'total':{width}s}  {sum(row.points for row in rubric.RUBRIC.values()):4g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="write the Gradescope zip")
    build_parser.add_argument("--out", type=Path, default=ROOT / "dist" / "hw5-autograder.zip")
    build_parser.add_argument("--data", type=Path, default=Path(os.environ.get("HW5_MNIST") or
                                                                 ROOT.parent / "shared" / "data" / "mnist10k.npz"))
    run_parser = commands.add_parser("run", help="grade a submission folder")
    run_parser.add_argument("--submission", type=Path, help="the student's folder [default: $HW5_SUBMISSION]")
    run_parser.add_argument("--results", type=Path, default=Path("results.json"))
    commands.add_parser("table", help="print the points table")
    args, extra = parser.parse_known_args()
    if args.command == "build":
        print(f"wrote {build(args.out, args.data)}")
    elif args.command == "run":
        if args.submission:
            os.environ[grading.SUBMISSION_ENV] = str(args.submission.resolve())
        if not os.environ.get(grading.SUBMISSION_ENV):
            sys.exit("Error: pass --submission FOLDER (or set HW5_SUBMISSION) to grade a student's files")
        sys.exit(run(args.results.resolve(), extra))
    else:
        table()


if __name__ == "__main__":
    main()
