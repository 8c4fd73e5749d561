"""The autograder graded: the reference earns every point through Gradescope's run_autograder, broken and
hostile submissions lose exactly the tests they break, and results.json is always complete and valid."""
from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import rubric
from mutants import MUTANTS

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SCRIPTS = sorted({mutant.script for mutant in MUTANTS.values()} | {key for key in ("hw5_vae",)})
VISIBILITIES = {"visible", "hidden", "after_due_date", "after_published"}


def test_every_rubric_row_names_an_existing_test_with_sane_settings():
    for key, row in rubric.RUBRIC.items():
        file, function = key.split("::")
        assert callable(getattr(importlib.import_module(file[:-3]), function, None)), f"{key} does not exist"
        assert row.points > 0 and row.timeout > 0 and row.visibility in VISIBILITIES, key


def grade(submission: Path, results: Path, *pytest_args: str, env: dict | None = None) -> dict:
    """Run `tests/autograder.py run` on a submission folder; return results.json."""
    subprocess.run([sys.executable, str(TESTS / "autograder.py"), "run", "--submission", str(submission),
                    "--results", str(results), *pytest_args], check=True, capture_output=True,
                   env={**os.environ, **(env or {})}, timeout=900)
    return json.loads(results.read_text())


def by_key(results: dict) -> dict:
    """results.json's tests, keyed like the rubric."""
    names = {f"{row.number} {row.title}": key for key, row in rubric.RUBRIC.items()}
    return {names[test["name"]]: test for test in results["tests"]}


def assert_valid_results(results: dict) -> None:
    """The fields Gradescope reads, with consistent totals."""
    assert {"score", "execution_time", "output", "stdout_visibility", "tests"} <= results.keys()
    assert len(results["tests"]) == len(rubric.RUBRIC)
    for test in results["tests"]:
        assert {"name", "number", "score", "max_score", "status", "output", "visibility"} <= test.keys()
        assert 0 <= test["score"] <= test["max_score"] and test["status"] in ("passed", "failed")
        assert len(test["output"]) <= 5000
    assert results["score"] == pytest.approx(sum(test["score"] for test in results["tests"]))


def reference_submission(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for script in SCRIPTS:
        shutil.copy(ROOT / f"{script}.py", folder / f"{script}.py")
    return folder


def test_reference_earns_every_point_through_run_autograder(tmp_path):
    """Build the zip, unpack it as Gradescope does into a fake /autograder, and run run_autograder."""
    zip_path = tmp_path / "autograder.zip"
    subprocess.run([sys.executable, str(TESTS / "autograder.py"), "build", "--out", str(zip_path)], check=True)
    root = tmp_path / "autograder"
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        archive.extractall(root / "source")
        assert {"setup.sh", "run_autograder"} <= set(names)
        assert not any(name.startswith(("hw5_vae", "hw5_diffusion", "hw5_gan")) for name in names), "solutions leak"
        assert (archive.getinfo("run_autograder").external_attr >> 16) & 0o111, "run_autograder not executable"
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    reference_submission(root / "submission")
    env = {"AUTOGRADER_ROOT": str(root), "HW5_PYTHON": sys.executable}
    env.update({key: "" for key in ("HW5_SUBMISSION", "HW5_RESULTS", "HW5_MNIST")})
    subprocess.run(["bash", str(root / "run_autograder")], check=True, capture_output=True, cwd=root, timeout=900,
                   env={**os.environ, **env})
    results = json.loads((root / "results" / "results.json").read_text())
    assert_valid_results(results)
    lost = {test["name"]: test["output"][:300] for test in results["tests"] if test["score"] < test["max_score"]}
    assert not lost, lost
    assert results["score"] == sum(row.points for row in rubric.RUBRIC.values())


@pytest.mark.parametrize("name", MUTANTS)
def test_each_mutant_loses_points(name, tmp_path):
    mutant = MUTANTS[name]
    reference = (ROOT / f"{mutant.script}.py").read_text()
    assert reference.count(mutant.old) == 1, f"the mutant's text is not (once) in {mutant.script}.py"
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / f"{mutant.script}.py").write_text(reference.replace(mutant.old, mutant.new))
    results = by_key(grade(submission, tmp_path / "results.json", *[f"tests/{key}" for key in mutant.caught_by]))
    for key in mutant.caught_by:
        assert results[key]["score"] < results[key]["max_score"], f"{name} kept the points of {key}"


HOSTILE_EDITS = {  # reference text -> hostile replacement, each in a different graded function
    "        tiny = torch.finfo(p.dtype).tiny\n": "        while True:\n            pass\n",  # loops forever
    "        return torch.bernoulli(p).to(torch.float32)": "        import os; os._exit(0)",  # exits silently
    "        eps = torch.randn(": "        import ctypes; ctypes.string_at(0)\n        eps = torch.randn(",  # segfault
    "        log_q = self.logpdf_diagonal_gaussian(": "        print('x' * 10_000_000)\n"  # floods stdout
                                                    "        log_q = self.logpdf_diagonal_gaussian(",
    "        hidden = torch.tanh(self.fc1(x))": "        torch.set_default_dtype(torch.float64)\n"  # global state
                                                 "        torch.set_grad_enabled(False)\n"
                                                 "        hidden = torch.tanh(self.fc1(x))",
}
HOSTILE_LOSES = ["test_2b_ii_logpdf_bernoulli_matches_torch_distributions", "test_2b_iv_sample_bernoulli_values_dtype_and_mean",
                 "test_2b_iii_sample_diagonal_gaussian_statistics", "test_2c_elbo_loss_matches_torch_distributions"]
HOSTILE_KEEPS = ["test_2a_decoder_architecture_and_forward", "test_2b_i_logpdf_diagonal_gaussian_matches_torch_distributions",
                 "test_2b_i_logpdf_diagonal_gaussian_broadcasts_a_prior_of_shape_latent"]


def test_hostile_code_loses_only_the_tests_it_breaks(tmp_path):
    source = (ROOT / "hw5_vae.py").read_text()
    for old, new in HOSTILE_EDITS.items():
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "hw5_vae.py").write_text(source)
    run = ["tests/test_vae.py::test_2a_encoder_outputs_mean_and_positive_variance",
           *[f"tests/test_vae.py::{name}" for name in HOSTILE_LOSES + HOSTILE_KEEPS]]
    results = grade(submission, tmp_path / "results.json", *run, env={"HW5_TIMEOUT_SCALE": "0.25"})
    assert_valid_results(results)
    tests = by_key(results)
    for name in HOSTILE_LOSES:
        assert tests["test_vae.py::" + name]["score"] == 0, name
    for name in HOSTILE_KEEPS:  # run after the hostile ones, in fresh processes: unaffected
        assert tests["test_vae.py::" + name]["status"] == "passed", tests["test_vae.py::" + name]["output"]
    assert "timed out" in tests["test_vae.py::" + HOSTILE_LOSES[0]]["output"]
    assert "crashed" in tests["test_vae.py::" + HOSTILE_LOSES[1]]["output"]


@pytest.mark.parametrize("problem", ["missing", "syntax error"])
def test_missing_or_broken_file_scores_zero_on_its_own_tests(problem, tmp_path):
    submission = tmp_path / "submission"
    submission.mkdir()
    if problem == "syntax error":
        (submission / "hw5_vae.py").write_text("def broken(:\n")
    run = ["tests/test_vae.py::test_2a_decoder_architecture_and_forward", "tests/test_vae.py::test_2c_sample_z_draws_from_q"]
    tests = by_key(grade(submission, tmp_path / "results.json", *run))
    for key in run:
        test = tests[key.split("/", 1)[1]]
        assert test["score"] == 0
        assert ("SyntaxError" if problem == "syntax error" else "hw5_vae.py is not in the submission") in test["output"]


def test_results_are_written_even_when_pytest_itself_fails(tmp_path):
    results = grade(reference_submission(tmp_path / "submission"), tmp_path / "results.json", "--no-such-option")
    assert_valid_results(results)
    assert results["score"] == 0 and "could not run" in results["output"]
