"""The attack corpus (tests/attacks/) against the grader as Gradescope runs it: as root, through run_autograder
from the assignment's zip. Each cheat is an honest wrong file plus generic cheating (forged results, a detached
process, patched checks, a forged report, a killed grader, a fork bomb, a full disk, ...): graded, it must score no
more than the honest file on every row, results.json must not change after the run returns, and a later grading of
the honest file by the same installed grader must score what it did at first.

Root only: the student's code then runs as an unprivileged user (tests/sandbox.py). Without root the attacks are
skipped, with the reason: not root, the grader cannot keep the student's code from writing what its own user can.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import rubric
from test_autograder import CORPUS, by_function, edited, node_ids, student_user

TESTS = Path(__file__).resolve().parent
ATTACKS = TESTS / "attacks"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the attacks are graded as Gradescope grades them, as root "
                                                            "(CI runs as root)")
ASSIGNMENTS = sorted(path.name for path in ATTACKS.iterdir() if (path / "cheats.py").exists())


def attacks_of(name: str):
    """The assignment's cheats.py, loaded."""
    spec = importlib.util.spec_from_file_location(f"cheats_{name.replace('-', '_')}", ATTACKS / name / "cheats.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cheats_of(name: str) -> list[dict]:
    return attacks_of(name).CHEATS


def wrong_text(name: str) -> str:
    """The honest wrong file: its corpus file with the one mistake of cheats.py's WRONG."""
    wrong = attacks_of(name).WRONG
    return edited((CORPUS / name / wrong["base"]).read_text(), wrong, "WRONG")


def cheated_text(name: str, cheat: dict) -> str:
    return edited(wrong_text(name), cheat, cheat["name"])


def install(name: str, root: Path) -> Path:
    """The assignment's zip, unpacked as Gradescope does: root/source, root/run_autograder."""
    subprocess.run([sys.executable, str(TESTS / "autograder.py"), "build", "--assignment", name, "--out",
                    str(root / "autograder.zip")], check=True, capture_output=True, timeout=600)
    with zipfile.ZipFile(root / "autograder.zip") as archive:
        archive.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    return root


def graded(root: Path, name: str, tag: str, text: str, rows: list[str]) -> dict:
    """Grade `text` as the assignment's submission through root/run_autograder, on `rows`: {"results": results.json
    as the run left it, "path": where it is, "returned": when the run returned}."""
    script = rubric.ASSIGNMENTS[name].script
    (root / tag / "submission").mkdir(parents=True)
    (root / tag / "submission" / f"{script}.py").write_text(text)
    results = root / tag / "results" / "results.json"
    env = {"AUTOGRADER_ROOT": str(root), "HW5_PYTHON": sys.executable, "HW5_SUBMISSION": str(root / tag / "submission"),
           "HW5_RESULTS": str(results), "HW5_MNIST": "", "HW5_CACHE": ""}
    with student_user() as user:
        subprocess.run(["bash", str(root / "run_autograder"), *node_ids(name, rows)], check=True, capture_output=True,
                       cwd=root, timeout=1200, env={**os.environ, **env, **user})
    return {"results": json.loads(results.read_text()), "path": results, "returned": time.monotonic()}


CASES = [(name, cheat["name"]) for name in ASSIGNMENTS for cheat in cheats_of(name)]


def quick_rows(name: str) -> list[str]:
    return [function for function, row in rubric.ASSIGNMENTS[name].rows.items() if row.timeout <= 60]


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """Every assignment's honest wrong file, then each of its cheats, then the honest file again, graded two at a time
    by one installed autograder per assignment: {(assignment, case): grading}. Read back 5 s after the last run."""
    roots = {name: install(name, tmp_path_factory.mktemp(name)) for name in ASSIGNMENTS}
    rows = {name: quick_rows(name) + sorted({row for cheat in cheats_of(name) for row in cheat.get("rows", ())})
            for name in ASSIGNMENTS}
    found = {(name, "honest"): graded(roots[name], name, "honest", wrong_text(name), rows[name])
             for name in ASSIGNMENTS}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {(name, cheat["name"]): pool.submit(graded, roots[name], name, cheat["name"],
                                                      cheated_text(name, cheat), quick_rows(name)
                                                      + list(cheat.get("rows", ())))
                   for name in ASSIGNMENTS for cheat in cheats_of(name)}
        found.update({key: future.result() for key, future in futures.items()})
    for name in ASSIGNMENTS:  # after every cheat: the installed grader must be as it was
        found[name, "honest again"] = graded(roots[name], name, "honest-again", wrong_text(name), rows[name])
    time.sleep(max(0.0, 5 - (time.monotonic() - max(grading["returned"] for grading in found.values()))))
    for grading in found.values():
        grading["later"] = json.loads(grading["path"].read_text())
    return found


def scores(results: dict, name: str) -> dict:
    return {function: test["score"] for function, test in by_function(results, name).items()}


@pytest.mark.parametrize("case", CASES, ids="/".join)
def test_a_cheat_never_raises_the_grade(case, attacked):
    name, cheat = case
    honest, cheated = attacked[name, "honest"], attacked[case]
    honest_scores = scores(honest["results"], name)
    raised = {row: score for row, score in scores(cheated["results"], name).items() if score > honest_scores[row]}
    assert not raised, (f"{cheat} raised {raised} above the honest file's {honest_scores}: "
                        f"{ {row: by_function(cheated['results'], name)[row]['output'][:300] for row in raised} }")
    assert cheated["results"]["score"] <= honest["results"]["score"]
    assert cheated["later"] == cheated["results"], f"{cheat}: results.json changed after the run returned"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_honest_file_scores_what_it_says_before_and_after_the_cheats(name, attacked):
    """The wrong file loses its mistake's rows, and a grading after every cheat (some write into the grader's files,
    some plant files beside them) scores the same."""
    before, after = attacked[name, "honest"], attacked[name, "honest again"]
    assert 0 < before["results"]["score"] < sum(row.points for row in rubric.ASSIGNMENTS[name].rows.values())
    assert scores(after["results"], name) == scores(before["results"], name)


def test_the_graded_tests_do_not_leak_into_results(attacked):
    """read_the_tests prints whatever it can read of the graded test file: nothing of it reaches results.json."""
    leaked = json.dumps(attacked["gan", "read_the_tests"]["results"])
    assert "REAL_LOGITS = [" not in leaked and "LEAKED from" not in leaked, leaked[:2000]
