"""Build, run and inspect the Gradescope autograders: one per assignment (tests/rubric.py).

    python tests/autograder.py build --assignment vae [--out dist/hw5-vae-autograder.zip]   # the zip to upload
    python tests/autograder.py build --all                                                  # every assignment's
    python tests/autograder.py run --submission FOLDER [--assignment NAME] [--results results.json]
    python tests/autograder.py grade-all --submissions CLASS --assignment NAME --out OUT [--jobs 2] [--force]
    python tests/autograder.py starter --assignment vae --out release/vae     # the students' starter file
    python tests/autograder.py starter --all --out release                   # every assignment's, in subfolders
    python tests/autograder.py table [--assignment NAME] [--markdown]                       # the points tables
    python tests/autograder.py table --update README.md          # write them into the README, after a rubric edit

`run` and `grade-all` pass other arguments on to pytest: node ids (tests/test_grade_vae.py::test_2a_decoder ...)
grade those rows alone, the others scoring 0 as not run.

Assignments: vae (Fall 2022, question 2), diffusion-fa22 (ScoreMatching, question 4), diffusion-sp24 (ScoreNet,
question 5), gan (Spring 2024, question 4). Without --assignment, `run` tells it from the submitted file: which
script it is, and for hw5_diffusion.py which edition's API it defines.

A zip holds, at its root, Gradescope's `setup.sh` (installs CPU-only torch and the other dependencies when
Gradescope builds the image) and `run_autograder` (grades /autograder/submission into
/autograder/results/results.json), plus the assignment's graded tests and their support, hw5_utils.py, and for
the MNIST assignments the MNIST file the tests train on and the trained MNIST judge (so that Gradescope never
trains it). It never contains the reference solutions. Every path run_autograder uses can be overridden by
environment variables (AUTOGRADER_ROOT, HW5_SUBMISSION, HW5_RESULTS, HW5_PYTHON, HW5_CACHE), so tests run it in a
temporary tree.
"""
from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path[:0] = [str(ROOT), str(TESTS)]

import grading  # noqa: E402
import rubric  # noqa: E402
import sandbox  # noqa: E402

# What every zip holds besides the assignment's graded test file.
SUPPORT = ["pyproject.toml", "hw5_utils.py", "tests/conftest.py", "tests/grading.py", "tests/sandbox.py",
           "tests/rubric.py", "tests/autograder.py", "tests/drawn.py", "tests/scores.py"]

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, with internet, when it builds the autograder image (Ubuntu).
set -euo pipefail
apt-get update -qq
apt-get install -y -qq python3 python3-pip python3-venv > /dev/null
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -q --index-url https://download.pytorch.org/whl/cpu torch torchvision
/autograder/venv/bin/pip install -q {requirements}
# The unprivileged user the students' code runs as (tests/sandbox.py; the grader also creates it when it is missing)
useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin {user} || true
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this from /autograder for every submission. Each path can be overridden to grade locally.
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
export HW5_SUBMISSION="${{HW5_SUBMISSION:-$ROOT/submission}}"
export HW5_MNIST="${{HW5_MNIST:-$ROOT/source/data/mnist10k.npz}}"
export HW5_CACHE="${{HW5_CACHE:-$ROOT/source/cache}}"
export MPLBACKEND=Agg
RESULTS="${{HW5_RESULTS:-$ROOT/results/results.json}}"
PYTHON="${{HW5_PYTHON:-$ROOT/venv/bin/python}}"
if [ "$(id -u)" = 0 ]; then
  # The students' code runs as an unprivileged user (created when missing): it may read nothing of the grader's
  # files (the tests, the cache, the MNIST file: the grader hands its workers what they need) and write no result.
  chmod -R go-rwx "$ROOT/source"
  mkdir -p "$(dirname "$RESULTS")" && chmod go-w "$(dirname "$RESULTS")"
fi
cd "$ROOT/source" && exec "$PYTHON" tests/autograder.py run --assignment {assignment} --results "$RESULTS" "$@"
"""


PYTEST_FINISHED = (0, 1, 5)  # pytest's exit codes when it ran to the end: all passed, some failed, none collected


class Refused(Exception):
    """A one-line reason the command cannot go on (printed as `Error: ...`, exit code 2)."""


def requirements() -> str:
    """The project's runtime dependencies but torch/torchvision (installed CPU-only first), plus pytest and the
    `course` extra (OpenCV: the Spring-2024 starter imports cv2)."""
    text = (ROOT / "pyproject.toml").read_text()
    listed = re.findall(r'"([^"]+)"', re.search(r"^dependencies = \[(.*?)\]", text, re.S | re.M).group(1))
    course = re.findall(r'"([^"]+)"', re.search(r"^course = \[(.*?)\]", text, re.M).group(1))
    keep = [dep for dep in listed if not re.match(r"torch(vision)?\b", dep)] + ["pytest>=7"] + course
    return " ".join(f"'{dep}'" for dep in keep)


def build(assignment: rubric.Assignment, out: Path, data: Path) -> Path:
    """Write the assignment's Gradescope zip: setup.sh and run_autograder at its root, the sources under it."""
    if assignment.needs_mnist and not data.is_file():
        raise Refused(f"no MNIST file at {data}: pass --data or set HW5_MNIST")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in (("setup.sh", SETUP_SH.format(requirements=requirements(), user=sandbox.STUDENT_USER)),
                           ("run_autograder", RUN_AUTOGRADER.format(assignment=assignment.name))):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16  # executable, as Gradescope requires
            archive.writestr(info, text)
        for name in SUPPORT + [f"tests/{assignment.tests}"]:
            archive.write(ROOT / name, name)
        if assignment.needs_mnist:
            archive.write(data, "data/mnist10k.npz")
            judge = trained_judge(data)
            archive.write(judge, f"cache/{judge.name}")
    return out


def trained_judge(data: Path) -> Path:
    """The cached MNIST judge for this MNIST file (trained here first if it is not cached yet)."""
    import hw5_utils

    mnist = hw5_utils.read_mnist(data, train_size=0, binarize="none")
    hw5_utils.load_judge(mnist)
    return hw5_utils.judge_path(mnist)


def detect(folder: Path) -> rubric.Assignment:
    """The assignment a submission folder is for: the one script it holds, and for hw5_diffusion.py the edition
    whose API it defines (ScoreMatching: Fall 2022; ScoreNet or compute_denoising_loss: Spring 2024)."""
    scripts = sorted({path.stem for path in folder.rglob("hw5_*.py")} & {a.script for a in rubric.ASSIGNMENTS.values()})
    if len(scripts) != 1:
        found = ", ".join(f"{script}.py" for script in scripts) or "no hw5_vae.py, hw5_diffusion.py or hw5_gan.py"
        raise Refused(f"{folder} holds {found}: pass --assignment ({', '.join(rubric.ASSIGNMENTS)})")
    if scripts[0] != "hw5_diffusion":
        return next(a for a in rubric.ASSIGNMENTS.values() if a.script == scripts[0])
    try:
        tree = ast.parse(grading.submitted_file("hw5_diffusion", folder).read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:
        raise Refused("hw5_diffusion.py has a syntax error, so its edition cannot be told: pass --assignment "
                      "diffusion-fa22 or diffusion-sp24") from None
    names = {node.name for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))}
    editions = [name for name, marks in (("diffusion-fa22", {"ScoreMatching"}),
                                         ("diffusion-sp24", {"ScoreNet", "compute_denoising_loss"})) if names & marks]
    if len(editions) != 1:
        raise Refused(f"hw5_diffusion.py defines {'both editions' if editions else 'neither edition'}' APIs "
                      f"(ScoreMatching, or ScoreNet and compute_denoising_loss): pass --assignment diffusion-fa22 "
                      f"or diffusion-sp24")
    return rubric.ASSIGNMENTS[editions[0]]


def run(assignment: rubric.Assignment, results: Path, extra_args: list[str]) -> int:
    """Grade the submission named by $HW5_SUBMISSION for one assignment into `results`; results.json is always
    written."""
    budget = rubric.time_budget()
    results.unlink(missing_ok=True)  # a stale file must not pass for this run's results
    sandbox.guard_grader()  # what the student's code leaves behind, should the test run die, comes here
    picked = any("::" in arg for arg in extra_args)  # node ids (FILE::TEST) choose rows; else the whole file runs
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               *([] if picked else [f"tests/{assignment.tests}"]), "--results", str(results), "--assignment",
               assignment.name, *extra_args]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    try:
        finished = subprocess.run(command, cwd=ROOT, timeout=budget + 30, capture_output=True, text=True, env=env)
        log, failure = finished.stdout + finished.stderr, None
        if finished.returncode < 0:  # killed: what results.json holds was not written by the grader
            failure = f"the test run was killed by signal {signal.Signals(-finished.returncode).name}"
        elif finished.returncode not in PYTEST_FINISHED:  # an internal error: its results.json is not trusted
            failure = f"the test run stopped with exit code {finished.returncode}:\n{log[-3000:]}"
    except subprocess.TimeoutExpired as error:
        log, failure = str(error.stdout or "") + str(error.stderr or ""), "the whole run exceeded its time budget"
    sys.stdout.write(log[-20000:])
    try:
        sandbox.sweep(None, sandbox.student_ids() if sandbox.is_root() else None)  # before results.json is read
    except Exception as error:  # noqa: BLE001 - no student user, say: what the run wrote is not trusted
        failure = failure or f"the grader could not end the student's processes: {error}"
    try:
        complete = failure is None and "tests" in json.loads(results.read_text())
    except (OSError, ValueError):
        complete = False
    if not complete:  # pytest itself broke: still give Gradescope a complete result
        reason = failure or f"the test run ended without results:\n{log[-3000:]}"
        tests = grading.grade(assignment, {}, reason)
        grading.write_results(results, tests, 0.0, note="The autograder could not run the tests.")
    return 0


def checks(assignment: rubric.Assignment) -> dict[str, str]:
    """What each graded test checks: the first paragraph of its docstring, on one line."""
    tree = ast.parse((TESTS / assignment.tests).read_text())
    return {node.name: " ".join((ast.get_docstring(node) or "").split("\n\n")[0].split())
            for node in tree.body if isinstance(node, ast.FunctionDef)}


# ----------------------------------------------------------------------------------------------------
# A whole class at once


def students_in(folder: Path) -> list[Path]:
    """The student folders of a class: every folder directly in `folder` (hidden ones aside), sorted by name."""
    return sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))


def fingerprint(folder: Path) -> str:
    """A digest of every file below a student's folder (names and contents): a regrade is needed when it changes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def grade_student(assignment: rubric.Assignment, folder: Path, out: Path, extra_args: list[str],
                  user: dict | None = None) -> tuple[dict, str]:
    """Grade one student's folder in a process of its own (as Gradescope does), with `user` in its environment (the
    student user it runs the code as, when root: sandbox.StudentUsers): results.json written to out, and what
    happened ('graded', or why not). A run that outlives the time budget is killed and scores 0 with that reason;
    results.json is written whatever happens."""
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.json"
    command = [sys.executable, str(Path(__file__).resolve()), "run", "--submission", str(folder), "--assignment",
               assignment.name, "--results", str(results), *extra_args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", **(user or {})}
    limit = rubric.time_budget() + 90
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=limit)
            (out / "log.txt").write_text(stdout[-20000:] + stderr[-20000:])
            status = "graded" if process.returncode == 0 else f"the grader exited with code {process.returncode}"
        except subprocess.TimeoutExpired:  # the run and its pytest (as root, `users` ends the student's processes)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            status = f"grading did not finish within {limit:.0f} s"
    try:
        graded = json.loads(results.read_text())
        assert status == "graded" and "tests" in graded  # a grader that did not finish wrote none of it
    except (OSError, ValueError, AssertionError):
        grading.write_results(results, grading.grade(assignment, {}, status), 0.0, note=f"Not graded: {status}.")
        graded = json.loads(results.read_text())
    (out / "fingerprint.txt").write_text(fingerprint(folder))
    return graded, status


def grade_all(assignment: rubric.Assignment, submissions: Path, out: Path, jobs: int = 1, force: bool = False,
              extra_args: list[str] = ()) -> list[dict]:
    """Grade every student folder under `submissions`, `jobs` at a time, each isolated as on Gradescope: out/<student>/
    results.json, the gradebook out/grades.csv (one row per student: total and every row's points) and a per-row
    summary printed. A student whose files did not change since the last grading is not graded again unless
    `force`. Returns the gradebook's rows."""
    from tqdm import tqdm

    students = students_in(submissions)
    if not students:
        raise Refused(f"{submissions} holds no student folders (one folder per student, any layout inside)")
    out.mkdir(parents=True, exist_ok=True)
    rows = assignment.rows.values()
    entries: dict[str, dict] = {}
    todo = []
    for folder in students:
        previous = out / folder.name
        if not force and (previous / "results.json").is_file() and (previous / "fingerprint.txt").is_file() \
                and (previous / "fingerprint.txt").read_text() == fingerprint(folder):
            entries[folder.name] = {"results": json.loads((previous / "results.json").read_text()),
                                    "status": "unchanged"}
        else:
            todo.append(folder)
    users = sandbox.StudentUsers(max(1, jobs))

    def grade_one(folder: Path) -> tuple[dict, str]:
        with users.one() as user:
            return grade_student(assignment, folder, out / folder.name, list(extra_args), user)

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = {pool.submit(grade_one, folder): folder for folder in todo}
        for future in tqdm(as_completed(futures), total=len(futures), desc=f"grading {assignment.name}",
                           unit="student", file=sys.stderr):
            results, status = future.result()
            entries[futures[future].name] = {"results": results, "status": status}
    gradebook = []
    for name in sorted(entries):
        results, status = entries[name]["results"], entries[name]["status"]
        scores = {test["name"]: test["score"] for test in results["tests"]}
        note = status if status not in ("graded", "unchanged") else \
            "the autograder could not run the tests" if "could not run" in results.get("output", "") else ""
        gradebook.append({"student": name, "total": results["score"],
                          **{f"{row.number} {row.title}": scores.get(f"{row.number} {row.title}", 0) for row in rows},
                          "status": status, "note": note})
    with open(out / "grades.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(gradebook[0]))
        writer.writeheader()
        writer.writerows(gradebook)
    width = max(len(f"{row.number} {row.title}") for row in rows)
    print(f"{len(gradebook)} students ({len(todo)} graded now), grades in {out / 'grades.csv'}")
    print(f"{'row':{width}s}  mean / points  students who lost points")
    for row in rows:
        name = f"{row.number} {row.title}"
        points = [entry[name] for entry in gradebook]
        print(f"{name:{width}s}  {sum(points) / len(points):5.2f} / {row.points:<5g}  "
              f"{sum(p < row.points for p in points)}")
    total = sum(row.points for row in rows)
    print(f"{'total':{width}s}  {sum(e['total'] for e in gradebook) / len(gradebook):5.2f} / {total:<5g}")
    return gradebook


def table(assignments: list[rubric.Assignment], markdown: bool) -> str:
    """The points tables, with totals: plain text, or Markdown for the README (with what each test checks)."""
    out = []
    for assignment in assignments:
        rows = list(assignment.rows.values())
        total = sum(row.points for row in rows)
        heading = (f"{assignment.name}: {assignment.title}, {assignment.edition} question {assignment.question} "
                   f"({assignment.script}.py), {total:g} points")
        if markdown:
            out += [f"**{heading}**", "", "| item | title | points | partial credit | what the test checks |",
                    "|---|---|---:|---|---|"]
            described = checks(assignment)
            for function, row in assignment.rows.items():
                partial = "; ".join(f"{name}: −{points:g}" for name, points in row.deductions.items())
                cells = [row.number, row.title, f"{row.points:g}", partial, described.get(function, "")]
                out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
            out.append("")
        else:
            width = max(len(row.number) + len(row.title) for row in rows) + 1
            out.append(heading)
            out += [f"  {row.number + ' ' + row.title:{width}s}  {row.points:4g}  {row.visibility:15s} "
                    f"{row.timeout:4.0f} s" for row in rows]
            out.append(f"  {'total':{width}s}  {total:4g}\n")
    return "\n".join(out).rstrip() + "\n"


TABLES = ("<!-- points tables: python tests/autograder.py table --update README.md -->\n",
          "<!-- end of the points tables -->\n")


def update_tables(path: Path) -> None:
    """Replace what stands between the TABLES markers in `path` by every assignment's Markdown table."""
    text = path.read_text()
    start, end = text.find(TABLES[0]), text.find(TABLES[1])
    if start < 0 or end < start:
        raise Refused(f"{path} has no {TABLES[0].strip()} ... {TABLES[1].strip()} markers to write the tables between")
    generated = table(list(rubric.ASSIGNMENTS.values()), markdown=True)
    path.write_text(text[:start + len(TABLES[0])] + generated + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    choice = {"choices": sorted(rubric.ASSIGNMENTS), "metavar": "NAME"}
    build_parser = commands.add_parser("build", help="write an assignment's Gradescope zip")
    which = build_parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--assignment", **choice)
    which.add_argument("--all", action="store_true", help="every assignment's zip, into --out-dir")
    build_parser.add_argument("--out", type=Path, help="the zip [default: dist/hw5-NAME-autograder.zip]")
    build_parser.add_argument("--out-dir", type=Path, default=ROOT / "dist")
    build_parser.add_argument("--data", type=Path, default=Path(os.environ.get("HW5_MNIST") or
                                                                 ROOT.parent / "shared" / "data" / "mnist10k.npz"))
    run_parser = commands.add_parser("run", help="grade a submission folder")
    run_parser.add_argument("--submission", type=Path, help="the student's folder [default: $HW5_SUBMISSION]")
    run_parser.add_argument("--assignment", help="[default: told from the submitted file]", **choice)
    run_parser.add_argument("--results", type=Path, default=Path("results.json"))
    class_parser = commands.add_parser("grade-all", help="grade a whole class: every student folder, into a gradebook")
    class_parser.add_argument("--submissions", type=Path, required=True, help="one folder per student")
    class_parser.add_argument("--assignment", required=True, **choice)
    class_parser.add_argument("--out", type=Path, required=True, help="OUT/<student>/results.json and OUT/grades.csv")
    class_parser.add_argument("--jobs", type=int, default=1, help="students graded at a time (each on one core)")
    class_parser.add_argument("--force", action="store_true", help="grade again students whose files did not change")
    starter_parser = commands.add_parser("starter", help="write the students' starter file of an assignment")
    which = starter_parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--assignment", **choice)
    which.add_argument("--all", action="store_true", help="every assignment's, into OUT/NAME/")
    starter_parser.add_argument("--out", type=Path, required=True, help="the folder to write into")
    table_parser = commands.add_parser("table", help="print the points tables")
    table_parser.add_argument("--assignment", **choice)
    table_parser.add_argument("--markdown", action="store_true", help="as Markdown tables (the README's)")
    table_parser.add_argument("--update", type=Path, metavar="README",
                              help="write the Markdown tables into this file, between its two TABLES markers")
    args, extra = parser.parse_known_args()
    if extra and args.command not in ("run", "grade-all"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "build":
            chosen = list(rubric.ASSIGNMENTS.values()) if args.all else [rubric.ASSIGNMENTS[args.assignment]]
            for assignment in chosen:
                out = args.out if args.out and not args.all else args.out_dir / f"hw5-{assignment.name}-autograder.zip"
                print(f"wrote {build(assignment, out, args.data)}")
        elif args.command == "run":
            if args.submission:
                if not args.submission.is_dir():
                    raise Refused(f"no submission folder {args.submission}")
                os.environ[grading.SUBMISSION_ENV] = str(args.submission.resolve())
            folder = os.environ.get(grading.SUBMISSION_ENV)
            if not folder:
                raise Refused("pass --submission FOLDER (or set HW5_SUBMISSION) to grade a student's files")
            assignment = rubric.ASSIGNMENTS[args.assignment] if args.assignment else detect(Path(folder))
            sys.exit(run(assignment, args.results.resolve(), extra))
        elif args.command == "grade-all":
            if not args.submissions.is_dir():
                raise Refused(f"no submissions folder {args.submissions}")
            if args.jobs < 1:
                raise Refused(f"--jobs must be at least 1, got {args.jobs}")
            grade_all(rubric.ASSIGNMENTS[args.assignment], args.submissions, args.out, args.jobs, args.force, extra)
        elif args.command == "starter":
            import release  # the reference scripts are read from the repository: not part of a zip

            chosen = list(rubric.ASSIGNMENTS.values()) if args.all else [rubric.ASSIGNMENTS[args.assignment]]
            for assignment in chosen:
                out = args.out / assignment.name if args.all else args.out
                if (out / f"{assignment.script}.py").exists():
                    raise Refused(f"{out / assignment.script}.py exists: choose another --out or remove it first")
                for path in release.write_release(assignment, out):
                    print(f"wrote {path}")
        elif args.update:
            update_tables(args.update)
            print(f"updated the points tables in {args.update}")
        else:
            chosen = [rubric.ASSIGNMENTS[args.assignment]] if args.assignment else list(rubric.ASSIGNMENTS.values())
            sys.stdout.write(table(chosen, args.markdown))
    except Refused as refusal:
        print(f"Error: {refusal}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
