"""The autograder graded: the reference earns every point through Gradescope's run_autograder, broken and
hostile submissions lose exactly the tests they break, equivalent correct answers keep every point, and
results.json is always complete and valid.

Each graded run costs a Python start and one forked process per test, so the runs are few: the mutants are
graded in rounds, one mutant of each script per submission, each round only on the rows its mutants name, and
the slow runs go two at a time (each grades on one core).
"""
from __future__ import annotations

import ast
import importlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import rubric
from mutants import EQUIVALENTS, MUTANTS, Edit, apply

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SCRIPTS = ("hw5_vae", "hw5_diffusion", "hw5_gan")
GRADED_FILES = {"hw5_vae": "test_vae.py", "hw5_diffusion": "test_diffusion.py", "hw5_gan": "test_gan.py"}
VISIBILITIES = {"visible", "hidden", "after_due_date", "after_published"}


def test_every_rubric_row_names_an_existing_test_with_sane_settings():
    for key, row in rubric.RUBRIC.items():
        file, function = key.split("::")
        assert callable(getattr(importlib.import_module(file[:-3]), function, None)), f"{key} does not exist"
        assert row.points > 0 and row.timeout > 0 and row.visibility in VISIBILITIES, key
    names = [f"{row.number} {row.title}" for row in rubric.RUBRIC.values()]
    assert len(set(names)) == len(names), "results.json names its tests by number and title: keep them unique"
    assert {key.split("::")[0] for key in rubric.RUBRIC} == set(GRADED_FILES.values())


@pytest.mark.parametrize("file", sorted(set(GRADED_FILES.values())))
def test_graded_files_import_no_script_at_module_level(file):
    """The scripts are imported inside each forked test (through the fixtures), never when a file is collected:
    a student's import-time crash must cost only that script's tests."""
    tree = ast.parse((TESTS / file).read_text())
    imported = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & set(SCRIPTS), f"{file} imports {imported & set(SCRIPTS)} at module level"


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


def node_ids(keys) -> list[str]:
    return [f"tests/{key}" for key in sorted(set(keys))]


def assert_valid_results(results: dict) -> None:
    """The fields Gradescope reads, with consistent totals."""
    assert {"score", "execution_time", "output", "stdout_visibility", "tests"} <= results.keys()
    assert len(results["tests"]) == len(rubric.RUBRIC)
    for test in results["tests"]:
        assert {"name", "number", "score", "max_score", "status", "output", "visibility"} <= test.keys()
        assert 0 <= test["score"] <= test["max_score"] and test["status"] in ("passed", "failed")
        assert len(test["output"]) <= 5000
    assert results["score"] == pytest.approx(sum(test["score"] for test in results["tests"]))


def submission(folder: Path, scripts: dict[str, str | None]) -> Path:
    """A submission folder holding the given scripts' texts (None: the script is left out)."""
    folder.mkdir(parents=True)
    for script, text in scripts.items():
        if text is not None:
            (folder / f"{script}.py").write_text(text)
    return folder


def reference(script: str) -> str:
    return (ROOT / f"{script}.py").read_text()


def edited(edits) -> dict[str, str]:
    """The reference scripts with the edits made, by script (only the scripts edited)."""
    return {script: apply(reference(script), [edit for edit in edits if edit.script == script])
            for script in {edit.script for edit in edits}}


def reference_through_run_autograder(root: Path) -> tuple[dict, list[str], Path]:
    """Build the zip, unpack it as Gradescope does into a fake /autograder at `root` with the reference as the
    submission, and run run_autograder: its results.json, the zip's file names and the judge the zip ships."""
    zip_path = root / "autograder.zip"
    subprocess.run([sys.executable, str(TESTS / "autograder.py"), "build", "--out", str(zip_path)], check=True,
                   capture_output=True)
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        archive.extractall(root / "source")
        assert (archive.getinfo("run_autograder").external_attr >> 16) & 0o111, "run_autograder not executable"
    (judge,) = (root / "source" / "cache").glob("mnist_judge_*.pt")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    submission(root / "submission", {script: reference(script) for script in SCRIPTS})
    env = {"AUTOGRADER_ROOT": str(root), "HW5_PYTHON": sys.executable}
    env.update({key: "" for key in ("HW5_SUBMISSION", "HW5_RESULTS", "HW5_MNIST", "HW5_CACHE")})
    subprocess.run(["bash", str(root / "run_autograder")], check=True, capture_output=True, cwd=root, timeout=900,
                   env={**os.environ, **env})
    return json.loads((root / "results" / "results.json").read_text()), names, judge


def mutant_rounds() -> list[tuple[str, ...]]:
    """The mutants in rounds of at most one per script: round k holds each script's k-th mutant."""
    by_script = [[name for name, mutant in MUTANTS.items() if mutant.script == script] for script in SCRIPTS]
    return [tuple(name for name in names if name) for names in itertools.zip_longest(*by_script)]


def graded_edits(folder: Path, edits: list[Edit]) -> dict:
    """The reference with `edits` made, graded on the rows they name: results by rubric key."""
    return by_key(grade(submission(folder / "submission", edited(edits)), folder / "results.json",
                        *node_ids(key for edit in edits for key in edit.rows)))


def grading_read_by(item: pytest.Item):
    """The key of `gradings` that a test reads (None: it reads none)."""
    if item.originalname == "test_each_mutant_loses_points_on_its_rows":
        return item.callspec.params["names"]  # its round of mutants
    return {"test_reference_earns_every_point": "reference",
            "test_equivalent_correct_answers_keep_every_point": "equivalents"}.get(item.originalname)


@pytest.fixture(scope="module")
def gradings(request, tmp_path_factory):
    """The slow gradings that this session's tests read, started together and run two at a time (each runs its
    tests one by one, on one core, with its own cache): {"reference", "equivalents" or a round of mutant names:
    the future of its results}. A test waits only for its own; a stopped session cancels those not started."""

    def grading(name, folder: Path):
        if name == "reference":
            return reference_through_run_autograder(folder)
        edits = list(EQUIVALENTS.values()) if name == "equivalents" else [MUTANTS[mutant] for mutant in name]
        return graded_edits(folder, edits)

    read = {grading_read_by(item) for item in request.session.items if item.module is request.module}
    names = [name for name in ["reference", "equivalents", *mutant_rounds()] if name in read]  # the longest first
    folders = [tmp_path_factory.mktemp("grading") for _ in names]  # here: mktemp is not thread-safe
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        yield {name: pool.submit(grading, name, folder) for name, folder in zip(names, folders)}
    finally:
        pool.shutdown(cancel_futures=True)


def test_reference_earns_every_point(gradings):
    """Through Gradescope's run_autograder, from the zip; the judge shipped in the zip is used as it is, never
    trained again."""
    results, names, judge = gradings["reference"].result()
    assert {"setup.sh", "run_autograder"} <= set(names)
    assert not any(name.startswith(SCRIPTS) for name in names), "solutions leak"
    assert_valid_results(results)
    lost = {test["name"]: test["output"][:300] for test in results["tests"] if test["score"] < test["max_score"]}
    assert not lost, lost
    assert results["score"] == sum(row.points for row in rubric.RUBRIC.values())
    assert [path.name for path in judge.parent.iterdir()] == [judge.name], "the judge was trained again"


@pytest.mark.parametrize("names", mutant_rounds(), ids=" + ".join)
def test_each_mutant_loses_points_on_its_rows(names, gradings):
    mutants, results = [MUTANTS[name] for name in names], gradings[names].result()
    kept = [f"{name}: {key}" for name, mutant in zip(names, mutants) for key in mutant.rows
            if results[key]["score"] == results[key]["max_score"]]
    assert not kept, f"mutants kept the points of {kept}"
    for mutant in mutants:  # the rubric's partial credit, each deduction made once
        assert mutant.keeps is None or all(results[key]["score"] == mutant.keeps for key in mutant.rows)


def test_equivalent_correct_answers_keep_every_point(gradings):
    results = gradings["equivalents"].result()
    lost = {key: results[key]["output"][:400] for edit in EQUIVALENTS.values() for key in edit.rows
            if results[key]["score"] < results[key]["max_score"]}
    assert not lost, lost


# Hostile code, one kind per graded function: reference text -> replacement; HOSTILE_LOSES: the rows it costs.
HOSTILE_EDITS = {
    "hw5_vae": {
        "        tiny = torch.finfo(p.dtype).tiny\n": "        while True:\n            pass\n",  # loops forever
        "        return torch.bernoulli(p).to(torch.float32)": "        import os; os._exit(0)",  # exits silently
        "        eps = torch.randn(":  # segfault
            "        import ctypes; ctypes.string_at(0)\n        eps = torch.randn(",
        "        log_q = self.logpdf_diagonal_gaussian(": "        print('x' * 10_000_000)\n"  # floods stdout
                                                        "        log_q = self.logpdf_diagonal_gaussian(",
        "        hidden = torch.tanh(self.fc1(x))": "        torch.set_default_dtype(torch.float64)\n"  # global state
                                                     "        torch.set_grad_enabled(False)\n"
                                                     "        hidden = torch.tanh(self.fc1(x))"},
    "hw5_diffusion": {  # kills its own process with SIGKILL
        "        levels = torch.as_tensor(noise_levels, dtype=samples.dtype, device=samples.device).flatten()":
            "        import os, signal; os.kill(os.getpid(), signal.SIGKILL)"},
    "hw5_gan": {  # a KeyboardInterrupt, which would stop pytest itself
        "        return discriminator_loss(self.disc(batch_data), self.disc(self.gen(z).detach()))":
            "        raise KeyboardInterrupt"},
}
HOSTILE_LOSES = {"test_vae.py::test_2b_ii_logpdf_bernoulli_matches_torch_distributions": "timed out",
                 "test_vae.py::test_2b_iv_sample_bernoulli_values_dtype_and_mean": "crashed",
                 "test_vae.py::test_2b_iii_sample_diagonal_gaussian_statistics": "crashed",
                 "test_vae.py::test_2c_elbo_loss_matches_torch_distributions": "",
                 "test_diffusion.py::test_4a_denoising_loss_matches_a_hand_computation": "SIGKILL",
                 "test_gan.py::test_gan_get_loss_d_matches_hand_computed_bce": "KeyboardInterrupt"}
HOSTILE_KEEPS = ["test_vae.py::test_2a_decoder_architecture_and_forward",
                 "test_vae.py::test_2b_i_logpdf_diagonal_gaussian_matches_torch_distributions",
                 "test_vae.py::test_2b_i_logpdf_diagonal_gaussian_broadcasts_a_prior_of_shape_latent",
                 "test_diffusion.py::test_4a_generate_noise_levels_is_geometric",
                 "test_gan.py::test_gan_dnet_architecture"]


def test_hostile_code_loses_only_the_tests_it_breaks(tmp_path):
    scripts = {script: apply(reference(script), [Edit(script, old, new, ()) for old, new in edits.items()])
               for script, edits in HOSTILE_EDITS.items()}
    folder = submission(tmp_path / "submission", scripts)
    run = node_ids(["test_vae.py::test_2a_encoder_outputs_mean_and_positive_variance", *HOSTILE_LOSES, *HOSTILE_KEEPS])
    results = grade(folder, tmp_path / "results.json", *run, env={"HW5_TIMEOUT_SCALE": "0.1"})
    assert_valid_results(results)
    tests = by_key(results)
    for key, reason in HOSTILE_LOSES.items():
        assert tests[key]["score"] == 0 and reason in tests[key]["output"], (key, tests[key]["output"][:300])
    for key in HOSTILE_KEEPS:  # run in fresh processes after (or besides) the hostile ones: unaffected
        assert tests[key]["status"] == "passed", (key, tests[key]["output"][:300])


@pytest.mark.parametrize("shift", range(len(SCRIPTS)), ids=lambda k: f"{SCRIPTS[k]} broken")
def test_missing_or_broken_files_score_zero_on_their_own_tests_only(shift, tmp_path):
    """A script with a syntax error, the next one missing, the third intact: in turn for each script."""
    broken, missing, intact = (SCRIPTS[(shift + k) % len(SCRIPTS)] for k in range(3))
    folder = submission(tmp_path / "submission", {broken: "def broken(:\n", missing: None,
                                                  intact: reference(intact)})
    cheap = {script: [key for key, row in rubric.RUBRIC.items() if key.startswith(GRADED_FILES[script])
                      and row.timeout <= 60][:2] for script in SCRIPTS}
    tests = by_key(grade(folder, tmp_path / "results.json", *node_ids(sum(cheap.values(), []))))
    for script, expected in ((broken, "SyntaxError"), (missing, f"{missing}.py is not in the submission")):
        for key in cheap[script]:
            assert tests[key]["score"] == 0 and expected in tests[key]["output"], (key, tests[key]["output"][:300])
    for key in cheap[intact]:
        assert tests[key]["status"] == "passed", (key, tests[key]["output"][:300])


def test_results_are_written_even_when_pytest_itself_fails(tmp_path):
    folder = submission(tmp_path / "submission", {script: reference(script) for script in SCRIPTS})
    results = grade(folder, tmp_path / "results.json", "--no-such-option")
    assert_valid_results(results)
    assert results["score"] == 0 and "could not run" in results["output"]


def test_a_script_that_hangs_on_import_costs_one_import_timeout_and_only_its_own_tests(tmp_path):
    """Training left at a file's top level: its tests fail after one import timeout (6 s at scale 0.1) with a
    message naming the import, instead of each test waiting out its own; the other scripts are graded."""
    hanging = reference("hw5_diffusion").replace("\nimport math\n", "\nimport math\nwhile True:\n    pass\n", 1)
    assert "while True" in hanging
    folder = submission(tmp_path / "submission", {"hw5_diffusion": hanging, "hw5_vae": reference("hw5_vae")})
    cheap = {script: [key for key, row in rubric.RUBRIC.items() if key.startswith(GRADED_FILES[script])
                      and row.timeout <= 60][:2] for script in ("hw5_diffusion", "hw5_vae")}
    tests = by_key(grade(folder, tmp_path / "results.json", *node_ids(sum(cheap.values(), [])),
                         env={"HW5_TIMEOUT_SCALE": "0.1"}))
    for key in cheap["hw5_diffusion"]:
        assert tests[key]["score"] == 0, key
        assert "importing hw5_diffusion.py did not finish within 6 s" in tests[key]["output"], tests[key]["output"]
    for key in cheap["hw5_vae"]:
        assert tests[key]["status"] == "passed", (key, tests[key]["output"][:300])


def test_a_submission_that_kills_the_grader_cannot_forge_its_results(tmp_path):
    """A script that writes a full-marks results.json, then kills pytest: the grader writes its own instead."""
    results = tmp_path / "results.json"
    forged = json.dumps({"score": 78, "tests": [{"name": "x", "score": 78, "max_score": 78}]})
    cheat = (f"import os, pathlib, signal\npathlib.Path({str(results)!r}).write_text({forged!r})\n"
             "os.kill(os.getppid(), signal.SIGKILL)\n")
    folder = submission(tmp_path / "submission", {"hw5_gan": cheat})
    graded = grade(folder, results, *node_ids([next(key for key in rubric.RUBRIC if key.startswith("test_gan.py"))]))
    assert_valid_results(graded)
    assert graded["score"] == 0 and "killed by signal SIGKILL" in json.dumps(graded)
