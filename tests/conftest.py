"""Shared fixtures: the project's scripts (for the tests of the reference; graded tests use `probe`), real MNIST, a
CLI runner."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")  # before matplotlib is imported: figures go to files, never to windows

import pytest  # noqa: E402
import torch  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import hw5_utils  # noqa: E402

pytest_plugins = ["grading"]  # tests/grading.py: rubric points, isolation and results.json

MNIST_PATH = Path(os.environ.get(hw5_utils.MNIST_ENV) or hw5_utils.SHARED_MNIST).absolute()
os.environ[hw5_utils.MNIST_ENV] = str(MNIST_PATH)  # the course's load_mnist() reads it offline, never downloading


def script_under_test(name: str):
    """A fixture giving the project's module `name`, for the tests of the reference. The graded tests never take
    it: they reach the student's file only through `probe` (tests/grading.py), whose calls run in a worker."""

    @pytest.fixture(scope="session", name=name)
    def module(request):
        if request.config.pluginmanager.get_plugin("hw5-grader"):
            pytest.fail(f"the grading process never imports {name}.py: reach it through the probe fixture")
        from grading import load_script

        return load_script(name)

    return module


hw5_vae = script_under_test("hw5_vae")
hw5_diffusion = script_under_test("hw5_diffusion")
hw5_gan = script_under_test("hw5_gan")


@pytest.fixture(autouse=True)
def graded_tests_run_in_a_folder_of_their_own(request, tmp_path_factory, monkeypatch):
    """The code under test saves its figures in the working folder: the graded tests run in an empty one (when
    grading, each probe's worker is already in its own)."""
    if request.path.name.startswith("test_grade_"):
        monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    """The Keras-layout MNIST .npz ($HW5_MNIST, default ../shared/data/mnist10k.npz)."""
    if not MNIST_PATH.is_file():
        pytest.skip(f"real MNIST not found at {MNIST_PATH}: set {hw5_utils.MNIST_ENV} to a Keras-layout .npz")
    return MNIST_PATH


@pytest.fixture
def cli() -> CliRunner:
    """typer's CliRunner; `result.stderr` holds what the command printed to stderr."""
    return CliRunner()


@pytest.fixture
def figure_spy(monkeypatch):
    """Records every matplotlib figure as it is saved, so tests can read what a figure shows."""
    from matplotlib.figure import Figure

    saved: list = []
    original = Figure.savefig

    def recording_savefig(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording_savefig)
    return saved


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module of many small tensor operations (`pytestmark = usefixtures(...)`).

    Small operations gain little from a second thread, and where other jobs share the CPU two OpenMP threads
    spin-wait for each other: on a busy 2-core machine the GAN tests took 111 s with two threads, 9 s with one.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mnist_grey(mnist_path: Path) -> hw5_utils.MNIST:
    """All of the real MNIST file, grey (what the GAN trains on and the judge scores against)."""
    return hw5_utils.read_mnist(mnist_path, train_size=0, binarize="none")


@pytest.fixture(scope="session")
def judge(mnist_grey: hw5_utils.MNIST) -> hw5_utils.MNISTJudge:
    """The MNIST judge: trained on the first use (well under a minute), then cached ($HW5_CACHE, else
    ~/.cache/hw5), where the trainers' `evaluate` finds it too."""
    return hw5_utils.load_judge(mnist_grey)
