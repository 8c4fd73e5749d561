"""Tests of the shared helpers in hw5_utils.py."""
from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch
import typer

import hw5_utils
from hw5_utils import UserError

# ----------------------------------------------------------------------------------------------------
# The course's minibatches and images (concat_images: tests/test_course_api.py)


def test_batch_indices_and_array_to_image():
    assert hw5_utils.batch_indices(0, 100, 100) == slice(0, 100)
    assert hw5_utils.batch_indices(250, 100, 100) == slice(5000, 5100)  # wraps around every num_batches
    x = torch.arange(784.0)
    image = hw5_utils.array_to_image(x)
    assert image.shape == (28, 28) and image[1, 0] == 28.0


def test_plot_image_grid_writes_a_png(tmp_path):
    path = hw5_utils.plot_image_grid(torch.rand(2, 3, 784), tmp_path / "grid.png", "title", ["a", "b", "c"], ["r1", "r2"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------------------------------
# MNIST loading


def test_read_mnist_shapes_ranges_and_binarizations(mnist_path):
    grey = hw5_utils.read_mnist(mnist_path, train_size=0, binarize="none")
    with np.load(mnist_path) as raw:
        expected_train = torch.as_tensor(raw["x_train"].reshape(-1, 784) / 255.0, dtype=torch.float32)
        expected_labels = torch.as_tensor(raw["y_test"].astype(np.int64))
    torch.testing.assert_close(grey.train_images, expected_train)
    assert torch.equal(grey.test_labels, expected_labels)
    assert grey.train_images.dtype == torch.float32 and grey.train_labels.dtype == torch.int64
    assert grey.train_images.shape == (8000, 784) and grey.test_images.shape == (2000, 784)

    rounded = hw5_utils.read_mnist(mnist_path, train_size=0, binarize="round")
    assert torch.equal(rounded.train_images, expected_train.round())
    dynamic = hw5_utils.read_mnist(mnist_path, train_size=0, binarize="dynamic")
    assert torch.equal(dynamic.train_images, expected_train)  # grey: the trainer draws each epoch
    assert torch.equal(dynamic.test_images, rounded.test_images)  # test images always rounded
    assert set(rounded.test_images.unique().tolist()) == {0.0, 1.0}


def test_read_mnist_train_size_takes_the_first_images_and_says_when_short(mnist_path, capsys):
    small = hw5_utils.read_mnist(mnist_path, train_size=123)
    full = hw5_utils.read_mnist(mnist_path, train_size=0)
    assert torch.equal(small.train_images, full.train_images[:123])
    assert "fewer than --train-size" not in capsys.readouterr().err
    hw5_utils.read_mnist(mnist_path, train_size=10000)
    assert "8000 training images, fewer than --train-size 10000" in capsys.readouterr().err


def test_read_mnist_records_an_absolute_source(mnist_path, monkeypatch):
    """A run saves its data path: given relative, it must still lead to the file from another folder."""
    monkeypatch.chdir(mnist_path.parent)
    source = hw5_utils.read_mnist(mnist_path.name, train_size=10).source
    assert Path(source).is_absolute() and Path(source).samefile(mnist_path)


def test_read_mnist_rejects_bad_arguments(mnist_path, tmp_path):
    with pytest.raises(UserError, match="unknown binarization"):
        hw5_utils.read_mnist(mnist_path, binarize="halftone")
    with pytest.raises(UserError, match="no data file"):
        hw5_utils.read_mnist(tmp_path / "absent.npz")
    np.savez(tmp_path / "floats.npz", x_train=np.full((2, 28, 28), 3.0), y_train=np.zeros(2),
             x_test=np.zeros((2, 28, 28)), y_test=np.zeros(2))
    with pytest.raises(UserError, match="uint8 or floats in \\[0, 1\\]"):
        hw5_utils.read_mnist(tmp_path / "floats.npz")


def test_offline_torchvision_root_gives_one_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    def no_network(self):
        Path(self.raw_folder).mkdir(parents=True, exist_ok=True)  # as torchvision's download does first
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://example.org/mnist/, got:\n"
                           "<urlopen error [Errno -2] Name or service not known>\n")  # torchvision's layout

    monkeypatch.setattr(MNIST, "download", no_network)
    root = tmp_path / "data"
    with pytest.raises(UserError, match="could not be downloaded.*--data") as error:
        hw5_utils.read_mnist(root)
    assert "\n" not in str(error.value) and "got: <urlopen error [Errno -2]" in str(error.value)  # the cause
    assert not root.exists()
    mine = tmp_path / "mine"  # a folder the user already had: left as it was, with no MNIST/raw inside
    mine.mkdir()
    with pytest.raises(UserError, match="could not be downloaded"):
        hw5_utils.read_mnist(mine)
    assert list(mine.iterdir()) == []


def test_default_source_follows_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(hw5_utils.MNIST_ENV, str(tmp_path / "mine.npz"))
    assert hw5_utils.default_mnist_source() == tmp_path / "mine.npz"
    with pytest.raises(UserError, match=r"no data file .*mine\.npz \(from \$HW5_MNIST\)"):  # says where it came from
        hw5_utils.read_mnist()
    monkeypatch.delenv(hw5_utils.MNIST_ENV)
    expected = hw5_utils.SHARED_MNIST if hw5_utils.SHARED_MNIST.exists() else hw5_utils.Path("data")
    assert hw5_utils.default_mnist_source() == expected


# ----------------------------------------------------------------------------------------------------
# Seeds, RNG state, devices


def draws():
    return random.random(), float(np.random.rand()), torch.rand(3)


def test_seed_everything_makes_all_three_generators_repeat():
    hw5_utils.seed_everything(5)
    first = draws()
    hw5_utils.seed_everything(5)
    second = draws()
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])
    hw5_utils.seed_everything(2**64 - 1)  # torch's largest
    for bad in (-1, 2**64):
        with pytest.raises(UserError, match="--seed must be between 0 and 2"):
            hw5_utils.seed_everything(bad)


def test_rng_state_round_trips_through_a_checkpoint(tmp_path):
    hw5_utils.seed_everything(6)
    hw5_utils.save_checkpoint({"rng": hw5_utils.get_rng_state()}, tmp_path / "rng.pt")
    expected = draws()
    draws()  # move every generator on
    hw5_utils.set_rng_state(hw5_utils.load_checkpoint(tmp_path / "rng.pt", ["rng"], "")["rng"])
    again = draws()
    assert expected[:2] == again[:2] and torch.equal(expected[2], again[2])


def test_pick_device():
    assert hw5_utils.pick_device("cpu") == torch.device("cpu")
    auto = hw5_utils.pick_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu")
    for bad in ("tpu", "gpu0", f"cuda:{torch.cuda.device_count() + 3}", "cpu:1", "mps:1"):
        with pytest.raises(UserError):
            hw5_utils.pick_device(bad)


def test_matmul_precision_holds_inside_the_block_and_is_restored_even_after_an_error():
    before = torch.get_float32_matmul_precision()
    for outer in ("high", "medium"):
        with hw5_utils.matmul_precision(outer):  # nested: each block restores what it found
            for precision in hw5_utils.MATMUL_PRECISIONS:
                with pytest.raises(ZeroDivisionError), hw5_utils.matmul_precision(precision):
                    assert torch.get_float32_matmul_precision() == precision
                    1 / 0
                assert torch.get_float32_matmul_precision() == outer
        assert torch.get_float32_matmul_precision() == before


# ----------------------------------------------------------------------------------------------------
# Files: atomic checkpoints and metrics


def test_checkpoint_round_trip_and_errors(tmp_path):
    path = tmp_path / "run" / "model.pt"
    hw5_utils.save_checkpoint({"weights": torch.arange(3), "config": {"zdim": 4}}, path)
    loaded = hw5_utils.load_checkpoint(path, ["weights", "config"], "python x.py train")
    assert torch.equal(loaded["weights"], torch.arange(3)) and loaded["config"] == {"zdim": 4}
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary file left
    with pytest.raises(UserError, match="missing optimizer"):
        hw5_utils.load_checkpoint(path, ["weights", "optimizer"], "python x.py train")
    with pytest.raises(UserError, match="no checkpoint at"):
        hw5_utils.load_checkpoint(tmp_path / "absent.pt", ["weights"], "python x.py train")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        hw5_utils.load_checkpoint(tmp_path / "bad.pt", ["weights"], "python x.py train")


def test_a_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "model.pt"
    hw5_utils.save_checkpoint({"version": 1}, path)
    with pytest.raises(Exception):
        hw5_utils.save_checkpoint({"version": 2, "unpicklable": lambda: None}, path)
    assert torch.load(path, weights_only=True) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_a_write_the_disk_refuses_is_a_one_line_error_that_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    hw5_utils.save_checkpoint({"version": 1}, path)
    (tmp_path / "data.png").mkdir()  # a folder where a figure goes
    with pytest.raises(UserError, match="cannot write .*data.png: Is a directory"):
        hw5_utils.write_metrics({"a": 1}, tmp_path / "data.png")
    real_save = torch.save

    def full_disk(obj, file):  # what torch.save raises when the disk fills up mid-write
        real_save(obj, file)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(UserError, match="cannot write .*model.pt: the disk may be full"):
        hw5_utils.save_checkpoint({"version": 2}, path)
    assert torch.load(path, weights_only=True) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.png", "model.pt"]


def test_load_run_says_when_a_run_was_interrupted(tmp_path, capsys):
    @dataclasses.dataclass
    class Config:
        epochs: int = 10

    path = tmp_path / "model.pt"
    for epoch, expected in ((4, "interrupted run (epoch 4 of 10)"), (10, "")):
        hw5_utils.save_checkpoint({"config": {"epochs": 10}, "epoch": epoch}, path)
        state, config = hw5_utils.load_run(path, ["config"], "python x.py train --out-dir o", Config)
        assert state["epoch"] == epoch and config.epochs == 10
        said = capsys.readouterr().err
        assert expected in said and ("python x.py train --out-dir o --resume --epochs 10" in said) == bool(expected)


def test_load_weights_reports_architecture_mismatch(tmp_path):
    with pytest.raises(UserError, match="does not match"):
        hw5_utils.load_weights(torch.nn.Linear(3, 4), torch.nn.Linear(3, 5).state_dict(), tmp_path / "m.pt")


@dataclasses.dataclass
class RunConfig:
    epochs: int = 10
    lr: float = 1e-3
    data: Optional[str] = None
    weighted: bool = True


def test_saved_config_rebuilds_the_run_and_names_a_mistyped_value(tmp_path):
    path = tmp_path / "run.pt"
    saved = {"config": {"epochs": 5, "lr": 1, "data": "digits.npz", "weighted": False}}  # lr: an int is a float
    assert hw5_utils.saved_config(RunConfig, saved, path, epochs=0, data=None) == RunConfig(5, 1, "digits.npz", False)
    assert hw5_utils.saved_config(RunConfig, saved, path, epochs=8).epochs == 8  # given again: on top
    assert hw5_utils.saved_config(RunConfig, {"config": {}}, path) == RunConfig()  # an older run: the defaults
    for field, value in [("epochs", "abc"), ("epochs", 2.5), ("epochs", True), ("lr", "fast"), ("data", 3),
                         ("weighted", 1)]:
        with pytest.raises(UserError, match=rf"run.pt has an unusable config \({field}={value!r}\)"):
            hw5_utils.saved_config(RunConfig, {"config": {**saved["config"], field: value}}, path)
    older = {"config": {"an_older_setting": 1}}
    for given in ({}, {"epochs": None}):  # plot, evaluate, ... and --resume: a new run in its place
        with pytest.raises(UserError, match="run.pt has an unusable config: train again with --overwrite$"):
            hw5_utils.saved_config(RunConfig, older, path, **given)


def test_check_out_dir_rejects_files_before_any_work(tmp_path, monkeypatch):
    assert hw5_utils.check_out_dir(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert not (tmp_path / "new").exists()  # checked, not created
    (tmp_path / "notes.txt").write_text("mine")
    for out_dir in (tmp_path / "notes.txt", tmp_path / "notes.txt" / "run"):
        with pytest.raises(UserError, match="notes.txt is a file"):
            hw5_utils.check_out_dir(out_dir)
    monkeypatch.setattr(hw5_utils.os, "access", lambda path, mode: False)  # a read-only folder (root writes anyway)
    with pytest.raises(UserError, match="cannot write in"):
        hw5_utils.check_out_dir(tmp_path / "new")


def test_app_reports_usage_errors_in_one_line_and_shows_help_without_arguments(cli):
    app = hw5_utils.App(help="A test app.")

    @app.command()
    def train(epochs: int = typer.Option(1, min=1)) -> None:
        raise UserError("a problem the user can fix")

    @app.command()
    def plot() -> None:
        pass

    for args, message in ((["train", "--epochs", "0"], "Error: Invalid value for '--epochs'"),
                          (["train", "--epochs"], "Error: Option '--epochs' requires an argument"),
                          (["trian"], "Error: No such command 'trian'"), (["--foo"], "Error: No such option: --foo"),
                          (["train"], "Error: a problem the user can fix")):
        result = cli.invoke(app, args)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith(message), result.output
        assert args == ["train"] or lines[0].endswith(" --help')"), lines[0]  # says where to look
    no_arguments = cli.invoke(app, [])
    assert "A test app." in no_arguments.output and "Error" not in no_arguments.output
    assert cli.invoke(app, ["train", "--help"]).exit_code == 0


def test_app_ctrl_c_exits_130_with_one_line_said_once(cli, tmp_path):
    """Ctrl-C outside a training loop: 'Interrupted.' and exit 130, no traceback; inside one, the Checkpointer's
    own message (what it saved, the resume command) is the only one."""
    app = hw5_utils.App(help="A test app.")

    @app.command()
    def load() -> None:
        raise KeyboardInterrupt  # e.g. while reading the data

    @app.command()
    def train() -> None:
        checkpointer = hw5_utils.Checkpointer(tmp_path / "ck.pt", "python x.py train --resume")
        with checkpointer.guard():
            checkpointer.snapshot({"epoch": 1})
            raise KeyboardInterrupt

    result = cli.invoke(app, ["load"])
    assert result.exit_code == 130 and result.stderr.strip() == "Interrupted." and "Traceback" not in result.output
    result = cli.invoke(app, ["train"])
    assert result.exit_code == 130 and "python x.py train --resume" in result.stderr
    assert "Interrupted." not in result.stderr.replace("Interrupted. Saved", "")  # said once, by the Checkpointer


def test_write_metrics_is_json(tmp_path):
    hw5_utils.write_metrics({"a": 1.5, "b": [1, 2]}, tmp_path / "metrics.json")
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"a": 1.5, "b": [1, 2]}


# ----------------------------------------------------------------------------------------------------
# The training guard


def test_checkpointer_saves_snapshots_not_live_state(tmp_path):
    weights = torch.zeros(2)
    checkpointer = hw5_utils.Checkpointer(tmp_path / "ck.pt", "resume", every_seconds=0.0)
    checkpointer.snapshot({"epoch": 1, "w": weights})  # every_seconds=0: written at once
    weights += 5  # the live tensor moves on; the snapshot must not
    assert torch.equal(torch.load(tmp_path / "ck.pt", weights_only=True)["w"], torch.zeros(2))
    resumed = hw5_utils.Checkpointer(tmp_path / "ck.pt", "resume", state={"epoch": 1, "w": weights})
    weights += 5  # a resumed run's optimizer updates the tensors it loaded: the starting checkpoint must not move
    resumed.save()
    assert torch.equal(torch.load(tmp_path / "ck.pt", weights_only=True)["w"], torch.full((2,), 5.0))


def test_checkpointer_guard_saves_on_ctrl_c_and_check_finite_on_nan(tmp_path, capsys):
    checkpointer = hw5_utils.Checkpointer(tmp_path / "ck.pt", "python x.py train --resume", every_seconds=1e9)
    with pytest.raises(KeyboardInterrupt):
        with checkpointer.guard():
            checkpointer.snapshot({"epoch": 3})
            assert not (tmp_path / "ck.pt").exists()
            raise KeyboardInterrupt
    assert torch.load(tmp_path / "ck.pt", weights_only=True) == {"epoch": 3}
    assert "python x.py train --resume" in capsys.readouterr().err
    with pytest.raises(KeyboardInterrupt):
        with hw5_utils.Checkpointer(tmp_path / "ck.pt", "resume").guard():
            raise KeyboardInterrupt  # before the first snapshot
    assert "nothing was saved (" in capsys.readouterr().err  # ... and ck.pt is an earlier run's
    checkpointer.check_finite(1.0, epoch=3)
    with pytest.raises(UserError, match="became nan in epoch 5.*epoch 3"):
        checkpointer.check_finite(float("nan"), epoch=4)
