"""Shared fixtures: the scripts under test (the student's in grading mode), real MNIST, a CLI runner."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hw5_utils

pytest_plugins = ["grading"]  # tests/grading.py: rubric points, isolation and results.json

MNIST_PATH = Path(os.environ.get(hw5_utils.MNIST_ENV) or hw5_utils.SHARED_MNIST)


@pytest.fixture(scope="session")
def hw5_vae():
    """The hw5_vae module under test: the submission's with $HW5_SUBMISSION set, else the project's."""
    from grading import load_script

    return load_script("hw5_vae")


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
