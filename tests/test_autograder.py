"""The autograder graded: for every assignment, the reference earns every point through Gradescope's
run_autograder, course-style students' files (tests/corpus/) score what they say they should, edits of the
reference lose or keep exactly the rows they name, hostile and broken submissions lose only what they break, and
results.json is always complete and valid.

Each graded run costs a Python start and a forked worker per probe, so the runs are few and packed: flaws of one
base file whose rows do not overlap are graded together, mutants in rounds of one per assignment on the rows they
name, and the slow runs go two at a time (each grades on one core).
"""
from __future__ import annotations

import ast
import csv
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import autograder
import release
import rubric
import sandbox
from mutants import EQUIVALENTS, MUTANTS, Edit, apply

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
CORPUS = TESTS / "corpus"
VISIBILITIES = {"visible", "hidden", "after_due_date", "after_published"}
ASSIGNMENTS = rubric.ASSIGNMENTS

# ----------------------------------------------------------------------------------------------------
# The rubric and the graded files


def test_every_rubric_row_names_a_graded_test_with_sane_settings():
    names = []
    for assignment in ASSIGNMENTS.values():
        tree = ast.parse((TESTS / assignment.tests).read_text())
        tests = {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
        assert tests == set(assignment.rows), f"{assignment.tests} holds exactly the graded tests of its rubric"
        for function, row in assignment.rows.items():
            assert row.points > 0 and row.timeout > 0 and row.visibility in VISIBILITIES, function
            assert all(0 < points <= row.points for points in row.deductions.values()), function
        names += [f"{assignment.name}: {row.number} {row.title}" for row in assignment.rows.values()]
    assert len(set(names)) == len(names), "results.json names its tests by number and title: keep them unique"


@pytest.mark.parametrize("name", sorted(ASSIGNMENTS))
def test_graded_files_import_no_script_at_module_level(name):
    """The scripts are imported inside each forked test (through the fixtures), never when a file is collected:
    a student's import-time crash must cost only that script's tests."""
    tree = ast.parse((TESTS / ASSIGNMENTS[name].tests).read_text())
    imported = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"hw5_vae", "hw5_diffusion", "hw5_gan"}, f"imports {imported} at module level"


SCRIPT_FIXTURES = {"hw5_vae", "hw5_diffusion", "hw5_gan"}


@pytest.mark.parametrize("name", sorted(ASSIGNMENTS))
def test_graded_tests_reach_the_student_file_only_through_probes(name):
    """No verdict receives the student's module: no graded test, nor fixture of the graded file, asks for a script's
    fixture (grading refuses them too), so every check the grading process computes is on probe data."""
    tree = ast.parse((TESTS / ASSIGNMENTS[name].tests).read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and (node.name.startswith("test_") or any(
                "fixture" in ast.unparse(decorator) for decorator in node.decorator_list)):
            asked = {argument.arg for argument in node.args.args}
            assert not asked & SCRIPT_FIXTURES, f"{node.name} takes {asked & SCRIPT_FIXTURES}: use the probe fixture"


def test_the_readme_points_tables_are_generated_from_the_rubric(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    autograder.update_tables(readme)
    assert readme.read_text() == (ROOT / "README.md").read_text(), (
        "run: python tests/autograder.py table --update README.md")


# ----------------------------------------------------------------------------------------------------
# Grading submissions


# A student user for each grading that runs at the same time: two from `gradings`' pool and one from a test beside it
STUDENT_USERS = sandbox.StudentUsers(4, f"{sandbox.STUDENT_USER}-test")
student_user = STUDENT_USERS.one


def grade(submission: Path, results: Path, *pytest_args: str, assignment: str | None = None,
          env: dict | None = None) -> dict:
    """Run `tests/autograder.py run` on a submission folder (the assignment told from it unless given); return
    results.json."""
    chosen = ["--assignment", assignment] if assignment else []
    with student_user() as user:
        subprocess.run([sys.executable, str(TESTS / "autograder.py"), "run", "--submission", str(submission),
                        "--results", str(results), *chosen, *pytest_args], check=True, capture_output=True,
                       env={**os.environ, **user, **(env or {})}, timeout=1200)
    return json.loads(results.read_text())


def by_function(results: dict, assignment: str) -> dict:
    """results.json's tests, keyed by their rubric rows' test functions."""
    names = {f"{row.number} {row.title}": function for function, row in ASSIGNMENTS[assignment].rows.items()}
    return {names[test["name"]]: test for test in results["tests"]}


def node_ids(assignment: str, functions) -> list[str]:
    return [f"tests/{ASSIGNMENTS[assignment].tests}::{function}" for function in sorted(set(functions))]


def assert_valid_results(results: dict, assignment: str) -> None:
    """The fields Gradescope reads, with consistent totals, for that assignment's rubric alone."""
    assert {"score", "execution_time", "output", "stdout_visibility", "tests"} <= results.keys()
    assert len(results["tests"]) == len(ASSIGNMENTS[assignment].rows)
    for test in results["tests"]:
        assert {"name", "number", "score", "max_score", "status", "output", "visibility"} <= test.keys()
        assert 0 <= test["score"] <= test["max_score"] and test["status"] in ("passed", "failed")
        assert len(test["output"]) <= 5000
    assert results["score"] == pytest.approx(sum(test["score"] for test in results["tests"]))


def submission(folder: Path, files: dict[str, str | None]) -> Path:
    """A submission folder holding the given scripts' texts (None: the script is left out)."""
    folder.mkdir(parents=True)
    for script, text in files.items():
        if text is not None:
            (folder / f"{script}.py").write_text(text)
    return folder


def reference(script: str) -> str:
    return (ROOT / f"{script}.py").read_text()


def lost(results: dict, assignment: str) -> dict:
    """The rows that lost points: test function -> the start of their output."""
    return {function: test["output"][:300] for function, test in by_function(results, assignment).items()
            if test["score"] < test["max_score"]}


# ----------------------------------------------------------------------------------------------------
# The corpus of course-style submissions


def corpus_files(name: str) -> list[Path]:
    return sorted(path for path in (CORPUS / name).glob("*.py") if path.name != "flaws.py")


def expected_of(path: Path) -> str:
    """'full' or 'zero', from the file's `Expected:` line."""
    found = re.search(r"^\s*Expected:\s*(full marks|zero)", path.read_text(), re.M)
    assert found, f"{path} says neither 'Expected: full marks' nor 'Expected: zero'"
    return "full" if found.group(1) == "full marks" else "zero"


def flaws_of(name: str) -> list[dict]:
    spec = importlib.util.spec_from_file_location(f"flaws_{name.replace('-', '_')}", CORPUS / name / "flaws.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FLAWS


def packed(edits: list, base, rows, old, text) -> list[list]:
    """Edits packed into rounds, greedily: one base each, no two edits in a round naming the same row or made in the
    same function of text(base) (one could undo the other), so that each round grades every edit in it at once."""
    def function_of(edit) -> int:
        source = text(base(edit))
        return source.rfind("def ", 0, source.find(old(edit)))

    def apart(a, b) -> bool:
        return not set(rows(a)) & set(rows(b)) and function_of(a) != function_of(b)

    rounds: list[list] = []
    for edit in edits:
        home = next((r for r in rounds if base(r[0]) == base(edit) and all(apart(edit, other) for other in r)), None)
        if home is None:
            rounds.append([edit])
        else:
            home.append(edit)
    return rounds


def flaw_rounds(name: str) -> list[tuple[str, ...]]:
    """The flaws of an assignment in rounds: each flaw's rows lose and every other row keeps, for each at once."""
    rounds = packed(flaws_of(name), lambda flaw: flaw["base"], lambda flaw: flaw["loses"], lambda flaw: flaw["old"],
                    lambda base: (CORPUS / name / base).read_text())
    return [tuple(flaw["name"] for flaw in r) for r in rounds]


def edited(text: str, edit: dict, what: str) -> str:
    """text with an edit {"old", "new"} (the format of flaws, mutants and cheats) made: its old text must occur once."""
    assert text.count(edit["old"]) == 1, f"{what}: its text is not (once) in the file it edits"
    return text.replace(edit["old"], edit["new"])


def flawed_text(name: str, names: tuple[str, ...]) -> str:
    flaws = [flaw for flaw in flaws_of(name) if flaw["name"] in names]
    text = (CORPUS / name / flaws[0]["base"]).read_text()
    for flaw in flaws:
        text = edited(text, flaw, f"{name} flaw {flaw['name']!r} of {flaw['base']}")
    return text


CORPUS_CASES = [(name, path.name) for name in sorted(ASSIGNMENTS) for path in corpus_files(name)]
FLAW_ROUNDS = [(name, names) for name in sorted(ASSIGNMENTS) if (CORPUS / name / "flaws.py").exists()
               for names in flaw_rounds(name)]


# ----------------------------------------------------------------------------------------------------
# The slow gradings, started together and run two at a time


def reference_through_run_autograder(root: Path, name: str) -> tuple[dict, list[str]]:
    """Build the assignment's zip, unpack it as Gradescope does into a fake /autograder at `root` with the reference
    as the submission, and run run_autograder: its results.json and the zip's file names."""
    assignment = ASSIGNMENTS[name]
    zip_path = root / "autograder.zip"
    subprocess.run([sys.executable, str(TESTS / "autograder.py"), "build", "--assignment", name, "--out",
                    str(zip_path)], check=True, capture_output=True)
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        archive.extractall(root / "source")
        assert (archive.getinfo("run_autograder").external_attr >> 16) & 0o111, "run_autograder not executable"
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    submission(root / "submission", {assignment.script: reference(assignment.script)})
    env = {"AUTOGRADER_ROOT": str(root), "HW5_PYTHON": sys.executable}
    env.update({key: "" for key in ("HW5_SUBMISSION", "HW5_RESULTS", "HW5_MNIST", "HW5_CACHE")})
    with student_user() as user:
        subprocess.run(["bash", str(root / "run_autograder")], check=True, capture_output=True, cwd=root,
                       timeout=1200, env={**os.environ, **env, **user})
    return json.loads((root / "results" / "results.json").read_text()), names


def mutant_rounds() -> list[tuple[str, ...]]:
    """The mutants in rounds: several of one assignment per round (`packed`), one round per assignment where they fit,
    each graded on the rows its mutants name."""
    rounds = packed(list(MUTANTS), lambda name: MUTANTS[name].assignment, lambda name: MUTANTS[name].rows,
                    lambda name: MUTANTS[name].old, lambda assignment: reference(ASSIGNMENTS[assignment].script))
    return [tuple(r) for r in rounds]


def edited_gradings(folder: Path, edits: list[Edit]) -> dict:
    """The reference with `edits` made, graded per assignment on the rows they name: {assignment: results}."""
    graded = {}
    for name in sorted({edit.assignment for edit in edits}):
        mine = [edit for edit in edits if edit.assignment == name]
        script = ASSIGNMENTS[name].script
        folder_of = submission(folder / name / "submission", {script: apply(reference(script), mine)})
        rows = node_ids(name, (row for edit in mine for row in edit.rows))
        graded[name] = grade(folder_of, folder / name / "results.json", *rows, assignment=name)
    return graded


def grading_read_by(item: pytest.Item):
    """The key of `gradings` that a test reads (None: it reads none)."""
    params = getattr(item, "callspec", None) and item.callspec.params
    return {"test_reference_earns_every_point": lambda: ("reference", params["name"]),
            "test_corpus_file_scores_what_it_says": lambda: ("corpus", *params["case"]),
            "test_the_starter_release_scores_zero_and_says_what_is_not_implemented": lambda: (
                "release", params["name"], "starter"),
            "test_the_starter_filled_with_the_reference_bodies_earns_every_point": lambda: (
                "release", params["name"], "filled"),
            "test_flaws_lose_exactly_their_rows": lambda: ("flaws", *params["case"]),
            "test_each_mutant_loses_points_on_its_rows": lambda: ("mutants", params["names"]),
            "test_equivalent_correct_answers_keep_every_point": lambda: ("equivalents",),
            }.get(item.originalname, lambda: None)()


@pytest.fixture(scope="module")
def gradings(request, tmp_path_factory):
    """The slow gradings this session's tests read, started together and run two at a time (each runs its tests
    one by one, on one core, with its own cache): {key: the future of its results}. A test waits only for its own;
    a stopped session cancels those not started."""

    def run(key, folder: Path):
        kind, *rest = key
        if kind == "reference":
            return reference_through_run_autograder(folder, rest[0])
        if kind == "corpus":
            name, file = rest
            text = (CORPUS / name / file).read_text()
            return grade(submission(folder / "submission", {ASSIGNMENTS[name].script: text}), folder / "results.json",
                         assignment=name)
        if kind == "release":
            name, form = rest
            text = release.release(ASSIGNMENTS[name], stubs=form == "starter")
            return grade(submission(folder / "submission", {ASSIGNMENTS[name].script: text}), folder / "results.json",
                         assignment=name)
        if kind == "flaws":
            name, names = rest
            files = {ASSIGNMENTS[name].script: flawed_text(name, names)}
            return grade(submission(folder / "submission", files), folder / "results.json", assignment=name)
        edits = list(EQUIVALENTS.values()) if kind == "equivalents" else [MUTANTS[mutant] for mutant in rest[0]]
        return edited_gradings(folder, edits)

    read = {grading_read_by(item) for item in request.session.items if item.module is request.module} - {None}
    order = ("reference", "release", "corpus", "flaws", "equivalents", "mutants")
    keys = sorted(read, key=lambda key: order.index(key[0]))
    folders = [tmp_path_factory.mktemp("grading") for _ in keys]  # here: mktemp is not thread-safe
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        yield {key: pool.submit(run, key, folder) for key, folder in zip(keys, folders)}
    finally:
        pool.shutdown(cancel_futures=True)


@pytest.mark.parametrize("name", sorted(ASSIGNMENTS))
def test_reference_earns_every_point(name, gradings):
    """Through Gradescope's run_autograder, from the assignment's zip; the judge shipped in the zip is used as it is,
    never trained again; the total is that assignment's points alone."""
    results, names = gradings["reference", name].result()
    assignment = ASSIGNMENTS[name]
    assert {"setup.sh", "run_autograder", f"tests/{assignment.tests}"} <= set(names)
    assert not any(n.startswith(("hw5_vae", "hw5_diffusion", "hw5_gan")) for n in names), "solutions leak"
    assert not any(n.startswith("tests/test_grade_") and n != f"tests/{assignment.tests}" for n in names)
    assert any(n.startswith("cache/mnist_judge_") for n in names) == assignment.needs_mnist
    assert_valid_results(results, name)
    assert not lost(results, name)
    assert results["score"] == sum(row.points for row in assignment.rows.values())


# ----------------------------------------------------------------------------------------------------
# The starter release: generated from the reference, graded both ways


@pytest.mark.parametrize("name", sorted(ASSIGNMENTS))
def test_the_starter_release_scores_zero_and_says_what_is_not_implemented(name, gradings):
    """Graded as handed out, the generated starter scores 0 on every row, and every row's output opens with the
    stub's own message: the item and the function not implemented yet."""
    results = gradings["release", name, "starter"].result()
    assert_valid_results(results, name)
    for test in results["tests"]:
        assert test["score"] == 0, test["name"]
        assert re.match(r"failed in \w+: NotImplementedError: [\d.a-z]+ [\w.]+: not implemented yet", test["output"]), (
            test["name"], test["output"][:300])


@pytest.mark.parametrize("name", sorted(ASSIGNMENTS))
def test_the_starter_filled_with_the_reference_bodies_earns_every_point(name, gradings):
    results = gradings["release", name, "filled"].result()
    assert_valid_results(results, name)
    assert not lost(results, name)
    assert results["score"] == sum(row.points for row in ASSIGNMENTS[name].rows.values())


def stub_message(function: ast.FunctionDef) -> str | None:
    """The message of a stub's NotImplementedError, if the function is a stub (a docstring, then only a raise)."""
    body = function.body[1:] if isinstance(function.body[0], ast.Expr) else function.body
    if len(body) == 1 and isinstance(body[0], ast.Raise) and isinstance(body[0].exc, ast.Call) \
            and getattr(body[0].exc.func, "id", "") == "NotImplementedError":
        return body[0].exc.args[0].value
    return None


def test_the_starter_release_is_readable_runs_and_stops_at_the_first_todo(tmp_path):
    """`autograder.py starter --all` writes each assignment's file (and cs446.npy for Fall 2022): every function
    students write is a stub naming its item, every other function of the course is the reference's own; no project
    plumbing; `--help` works; main() stops at the first TODO with its message; a second run refuses to overwrite."""
    command = [sys.executable, str(TESTS / "autograder.py"), "starter", "--all", "--out", str(tmp_path)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and again.stderr.startswith("Error: ") and "exists" in again.stderr
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    for name, assignment in ASSIGNMENTS.items():
        folder = tmp_path / name
        assert sorted(p.name for p in folder.iterdir()) == sorted([f"{assignment.script}.py",
                                                                   *assignment.starter.files])
        text = (folder / f"{assignment.script}.py").read_text()
        for plumbing in ("typer", "Checkpointer", "def fit(", "def run_training(", "app = "):
            assert plumbing not in text, f"{name}: the starter carries {plumbing!r}"
        functions = {}
        for node in ast.parse(text).body:
            if isinstance(node, ast.ClassDef):
                functions.update({f"{node.name}.{f.name}": f for f in node.body if isinstance(f, ast.FunctionDef)})
            elif isinstance(node, ast.FunctionDef):
                functions[node.name] = node
        todo = rubric.todo(assignment)
        for qualified, function in functions.items():
            expected = f"{todo[qualified]} {qualified}: not implemented yet" if qualified in todo else None
            assert stub_message(function) == expected, (name, qualified)
        assert set(todo) <= set(functions) | {"GNet._weight_init"}  # GNet shares DNet's, as in the reference
        script = [sys.executable, f"{assignment.script}.py"]
        helped = subprocess.run(script + ["--help"], cwd=folder, env=env, capture_output=True, text=True, timeout=120)
        assert helped.returncode == 0 and helped.stdout.startswith("usage:"), (name, helped.stderr[-500:])
        ran = subprocess.run(script, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
        assert ran.returncode == 1 and re.search(r"NotImplementedError: [\d.a-z]+ [\w.]+: not implemented yet\n$",
                                                 ran.stderr), (name, ran.stderr[-500:])


@pytest.mark.parametrize("case", CORPUS_CASES, ids=lambda case: "/".join(case))
def test_corpus_file_scores_what_it_says(case, gradings):
    """A correct course-style file earns every point; the starter left unfilled scores 0 on every row, and the
    grader says its functions are not implemented yet rather than crash."""
    name, file = case
    results = gradings["corpus", name, file].result()
    assert_valid_results(results, name)
    if expected_of(CORPUS / name / file) == "full":
        assert not lost(results, name)
    else:
        assert all(test["score"] == 0 for test in results["tests"]), [t["name"] for t in results["tests"] if t["score"]]


@pytest.mark.parametrize("case", FLAW_ROUNDS, ids=lambda case: f"{case[0]}: " + " + ".join(case[1]))
def test_flaws_lose_exactly_their_rows(case, gradings):
    name, names = case
    results = gradings["flaws", name, names].result()
    assert_valid_results(results, name)
    expected = {row for flaw in flaws_of(name) if flaw["name"] in names for row in flaw["loses"]}
    assert set(lost(results, name)) == expected, (
        f"lost {sorted(lost(results, name))}, expected {sorted(expected)}: {lost(results, name)}")


@pytest.mark.parametrize("names", mutant_rounds(), ids=" + ".join)
def test_each_mutant_loses_points_on_its_rows(names, gradings):
    graded = gradings["mutants", names].result()
    for name in names:
        mutant = MUTANTS[name]
        tests = by_function(graded[mutant.assignment], mutant.assignment)
        kept = [row for row in mutant.rows if tests[row]["score"] == tests[row]["max_score"]]
        assert not kept, f"{name} kept the points of {kept}"
        assert mutant.keeps is None or all(tests[row]["score"] == mutant.keeps for row in mutant.rows), (
            name, {row: tests[row]["score"] for row in mutant.rows})


def test_equivalent_correct_answers_keep_every_point(gradings):
    graded = gradings["equivalents",].result()
    dropped = {(name, row): by_function(graded[edit.assignment], edit.assignment)[row]["output"][:400]
               for name, edit in EQUIVALENTS.items() for row in edit.rows
               if by_function(graded[edit.assignment], edit.assignment)[row]["status"] != "passed"}
    assert not dropped, dropped


# ----------------------------------------------------------------------------------------------------
# Telling the assignment, top-level code, hostile and broken files


def test_the_assignment_is_told_from_the_submitted_file(tmp_path):
    for name in ASSIGNMENTS:
        for path in corpus_files(name):
            folder = submission(tmp_path / name / path.stem, {ASSIGNMENTS[name].script: path.read_text()})
            assert autograder.detect(folder).name == name, path
    both = submission(tmp_path / "both", {"hw5_vae": "", "hw5_gan": ""})
    with pytest.raises(autograder.Refused, match="pass --assignment"):
        autograder.detect(both)
    with pytest.raises(autograder.Refused, match="both editions"):
        autograder.detect(submission(tmp_path / "reference", {"hw5_diffusion": reference("hw5_diffusion")}))


TOP_LEVEL = '''
args = parse_args()
vae = VAE(args)
vae.train()
for epoch in range(3):
    print(epoch)
main()
'''


def test_top_level_training_is_skipped_and_the_student_told(tmp_path):
    """A file that parses arguments and trains at its top level is graded as if guarded: parse_args() sees no
    pytest options, nothing trains on import, and results.json says which lines were skipped."""
    text = reference("hw5_vae").replace('\nif __name__ == "__main__":\n    app()\n', TOP_LEVEL)
    assert "vae.train()" in text
    folder = submission(tmp_path / "submission", {"hw5_vae": text})
    rows = ["test_2a_decoder", "test_2c_elbo_loss"]
    results = grade(folder, tmp_path / "results.json", *node_ids("vae", rows), assignment="vae")
    tests = by_function(results, "vae")
    assert all(tests[row]["status"] == "passed" for row in rows), {row: tests[row]["output"] for row in rows}
    assert all(test["output"].startswith("not run") for row, test in tests.items() if row not in rows)  # only those
    for fragment in ("`args = parse_args()`", "`vae.train()`", "`main()`", "`for epoch in range(3):`",
                     'if __name__ == \\"__main__\\":'):
        assert fragment in json.dumps(results["output"]), results["output"]


# Hostile code, one kind per graded function: reference text -> replacement; HOSTILE_LOSES: the rows it costs.
HOSTILE_EDITS = {
    "        tiny = torch.finfo(p.dtype).tiny\n": "        while True:\n            pass\n",  # loops forever
    "        return torch.bernoulli(p).to(torch.float32)": "        import os; os._exit(0)",  # exits silently
    "        eps = torch.randn(": "        import ctypes; ctypes.string_at(0)\n        eps = torch.randn(",  # segfault
    "        log_q = self.logpdf_diagonal_gaussian(": "        print('x' * 10_000_000)\n"  # floods stdout
                                                    "        log_q = self.logpdf_diagonal_gaussian(",
    "        hidden = torch.tanh(self.fc1(x))": "        torch.set_default_dtype(torch.float64)\n"  # global state
                                                 "        torch.set_grad_enabled(False)\n"
                                                 "        hidden = torch.tanh(self.fc1(x))",
    "        return -0.5 * (torch.log(2 * math.pi": "        import os, signal; os.kill(os.getpid(), signal.SIGKILL)\n"
                                                "        return -0.5 * (torch.log(2 * math.pi",  # kills itself
    "        return self.sample_diagonal_gaussian(mu, sigma_square)": "        raise KeyboardInterrupt",  # stops pytest
}
HOSTILE_LOSES = {"test_2b_ii_logpdf_bernoulli": "timed out",
                 "test_2b_iv_sample_bernoulli": "crashed",
                 "test_2b_iii_sample_diagonal_gaussian_statistics": "SIGSEGV",
                 "test_2b_i_logpdf_diagonal_gaussian": "SIGKILL",
                 "test_2c_sample_z": "KeyboardInterrupt"}
HOSTILE_KEEPS = ["test_2a_decoder", "test_2c_elbo_loss"]  # 2.c.ii prints 10 MB: results.json keeps 4000 characters


def test_hostile_code_loses_only_the_tests_it_breaks(tmp_path):
    """Each graded test runs in its own process: a function that loops, exits, crashes, kills itself, floods the
    output, stops pytest or changes torch's global state costs its own tests, never the others."""
    text = apply(reference("hw5_vae"), [Edit("vae", old, new, ()) for old, new in HOSTILE_EDITS.items()])
    folder = submission(tmp_path / "submission", {"hw5_vae": text})
    run = node_ids("vae", [*HOSTILE_LOSES, *HOSTILE_KEEPS])
    results = grade(folder, tmp_path / "results.json", *run, env={"HW5_TIMEOUT_SCALE": "0.1"})
    assert_valid_results(results, "vae")
    tests = by_function(results, "vae")
    for row, reason in HOSTILE_LOSES.items():
        assert tests[row]["score"] == 0 and reason in tests[row]["output"], (row, tests[row]["output"][:300])
    for row in HOSTILE_KEEPS:  # run in fresh processes after (or besides) the hostile ones: unaffected
        assert tests[row]["status"] == "passed", (row, tests[row]["output"][:300])


@pytest.mark.parametrize("name", ["vae", "diffusion-sp24"])
def test_a_broken_or_missing_file_scores_zero_and_says_why(name, tmp_path):
    cheap = [function for function, row in ASSIGNMENTS[name].rows.items() if row.timeout <= 60][:2]
    script = ASSIGNMENTS[name].script
    for case, files, expected in (("broken", {script: "def broken(:\n"}, "SyntaxError"),
                                  ("missing", {"notes": "x = 1\n"}, f"{script}.py is not in the submission")):
        results = grade(submission(tmp_path / case, files), tmp_path / f"{case}.json", *node_ids(name, cheap),
                        assignment=name)
        assert_valid_results(results, name)
        tests = by_function(results, name)
        for row in cheap:
            assert tests[row]["score"] == 0 and expected in tests[row]["output"], (row, tests[row]["output"][:300])


def test_results_are_written_even_when_pytest_itself_fails(tmp_path):
    folder = submission(tmp_path / "submission", {"hw5_gan": reference("hw5_gan")})
    results = grade(folder, tmp_path / "results.json", "--no-such-option")
    assert_valid_results(results, "gan")
    assert results["score"] == 0 and "could not run" in results["output"]


def test_a_file_that_hangs_on_import_costs_one_import_timeout(tmp_path):
    """A hang the grader cannot skip (inside a class body): each test fails after one import timeout (6 s at scale
    0.1) with a message naming the import, instead of each test waiting out its own."""
    hanging = reference("hw5_diffusion").replace("\nclass ScoreNet(nn.Module):\n",
                                                 "\nclass ScoreNet(nn.Module):\n    while True:\n        pass\n", 1)
    assert "while True" in hanging
    folder = submission(tmp_path / "submission", {"hw5_diffusion": hanging})
    cheap = [function for function, row in ASSIGNMENTS["diffusion-sp24"].rows.items() if row.timeout <= 60][:2]
    tests = by_function(grade(folder, tmp_path / "results.json", *node_ids("diffusion-sp24", cheap),
                              assignment="diffusion-sp24", env={"HW5_TIMEOUT_SCALE": "0.1"}), "diffusion-sp24")
    for row in cheap:
        assert tests[row]["score"] == 0, row
        assert "importing hw5_diffusion.py did not finish within 6 s" in tests[row]["output"], tests[row]["output"]


def test_a_submission_that_kills_the_grader_cannot_forge_its_results(tmp_path):
    """A script that writes a full-marks results.json, then kills pytest: as root, its code runs as the student user,
    which may do neither; not root, the grader writes its own results instead. (tests/test_attacks.py: more.)"""
    results = tmp_path / "results.json"
    forged = json.dumps({"score": 12, "tests": [{"name": "x", "score": 12, "max_score": 12}]})
    cheat = (f"import os, pathlib, signal\n\nclass Cheat:  # a class body runs on import\n"
             f"    pathlib.Path({str(results)!r}).write_text({forged!r})\n"
             f"    os.kill(os.getppid(), signal.SIGKILL)\n")
    folder = submission(tmp_path / "submission", {"hw5_gan": cheat})
    graded = grade(folder, results, *node_ids("gan", ["test_4a_dnet"]))
    assert_valid_results(graded, "gan")
    expected = "PermissionError" if os.geteuid() == 0 else "killed by signal SIGKILL"
    assert graded["score"] == 0 and expected in json.dumps(graded)


# ----------------------------------------------------------------------------------------------------
# A whole class


def test_grade_all_writes_a_complete_gradebook_and_regrades_only_what_changed(tmp_path):
    """20 course-style submissions of the GAN, one folder each in any layout (correct files, flawed ones, the starter,
    one that hangs, one that kills its grader, one without the file): every student gets a row of grades.csv, with
    the reason where grading could not run; a second run grades only the student whose files changed."""
    name, rows = "gan", ["test_4a_dnet", "test_4d_loss_d"]
    class_ = tmp_path / "class"
    students = {path.stem: path.read_text() for path in corpus_files(name)}
    students.update({f"flaw-{k}": flawed_text(name, (flaw["name"],)) for k, flaw in enumerate(flaws_of(name))})
    students["hangs"] = reference("hw5_gan").replace("    def _get_loss_d(", "    def _get_loss_d(self, *args):\n"
                                                      "        while True:\n            pass\n\n    def _unused(", 1)
    students["kills-the-grader"] = "import os, signal\n\nclass Cheat:\n    os.kill(os.getppid(), signal.SIGKILL)\n"
    students.update({f"{style}-resubmitted": students[style] for style in ("plain", "functional", "sequential")})
    for k, (student, text) in enumerate(students.items()):
        folder = class_ / student / ("nested/deeper" if k % 3 == 0 else "")
        folder.mkdir(parents=True)
        (folder / "hw5_gan.py").write_text(text)
    for student, (file, text) in {"no-file": ("notes.txt", "forgot to upload"),
                                  "wrong-assignment": ("hw5_vae.py", reference("hw5_vae"))}.items():
        (class_ / student).mkdir()
        (class_ / student / file).write_text(text)
    students_in = autograder.students_in(class_)
    assert len(students_in) >= 20
    out = tmp_path / "out"
    command = [sys.executable, str(TESTS / "autograder.py"), "grade-all", "--submissions", str(class_), "--assignment",
               name, "--out", str(out), "--jobs", "2", *node_ids(name, rows)]
    env = {**os.environ, "HW5_TIMEOUT_SCALE": "0.1", "HW5_SUBMISSION": ""}
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200)
    assert first.returncode == 0, first.stderr[-2000:]
    with open(out / "grades.csv") as file:
        book = {row["student"]: row for row in csv.DictReader(file)}
    assert set(book) == {folder.name for folder in students_in}
    dnet, loss_d = (f"{ASSIGNMENTS[name].rows[row].number} {ASSIGNMENTS[name].rows[row].title}" for row in rows)
    for student in ("plain", "functional", "sequential", "plain-resubmitted"):
        assert float(book[student][dnet]) == 2 and float(book[student][loss_d]) == 2, book[student]
    assert all(float(book[student]["total"]) == 0 for student in ("starter", "no-file", "wrong-assignment"))
    assert float(book["hangs"][dnet]) == 2 and float(book["hangs"][loss_d]) == 0  # its own test timed out
    if os.geteuid() == 0:  # its code runs as the student user, which may not signal the grader
        assert float(book["kills-the-grader"]["total"]) == 0 and book["kills-the-grader"]["status"] == "graded"
    else:
        assert "could not run" in book["kills-the-grader"]["note"]
    for k, flaw in enumerate(flaws_of(name)):
        lost = {row for row in rows if float(book[f"flaw-{k}"][f"{ASSIGNMENTS[name].rows[row].number} "
                                                             f"{ASSIGNMENTS[name].rows[row].title}"]) < 2}
        assert lost == set(flaw["loses"]) & set(rows), (flaw["name"], lost)
    assert "mean" in first.stdout and "students who lost points" in first.stdout
    (class_ / "plain" / "hw5_gan.py").write_text(students["plain"] + "\n# resubmitted\n")
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0 and "(1 graded now)" in second.stdout, second.stdout
