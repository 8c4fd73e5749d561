"""Tests of hw5_gan.py's trainer around the course's API (not graded: the course's networks and losses are graded
by test_grade_gan.py and checked end to end by test_course_api.py): the DCGAN pair, the minimax option, the fast
training step, checkpoints, the command line.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from test_grade_gan import FAKE_LOGITS, FirstNoiseToPixel, TopLeftPixel, noise_with_logits, sigmoid

pytestmark = pytest.mark.usefixtures("one_thread")

# ----------------------------------------------------------------------------------------------------
# The noise and the DCGAN pair


def test_gan_noise_is_uniform_on_minus_one_one(hw5_gan):
    z = hw5_gan.ConfiguredGAN(zdim=16).sample_z(20000)
    assert z.shape == (20000, 16)
    assert z.min() >= -1 and z.max() <= 1
    assert z.mean().item() == pytest.approx(0, abs=0.01)
    assert z.var().item() == pytest.approx(1 / 3, abs=0.01)  # U[-1, 1]: variance 1/3


def test_gan_dcgan_pair_shapes_and_batchnorm(hw5_gan):
    gan = hw5_gan.ConfiguredGAN(zdim=16, arch="dcgan", device="cpu")
    images = gan.gen(gan.sample_z(6))
    assert images.shape == (6, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    assert gan.disc(images).shape == (6, 1)
    for net in (gan.gen, gan.disc):
        assert any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in net.modules())
    assert any(isinstance(m, nn.ConvTranspose2d) for m in gan.gen.modules())


# ----------------------------------------------------------------------------------------------------
# The minimax generator loss, against binary cross-entropy computed by hand on fixed logits


def stub_gan(hw5_gan, loss: str):
    """A GAN with the given generator loss and the graded tests' stand-in networks."""
    gan = hw5_gan.ConfiguredGAN(loss=loss)
    gan.disc, gan.gen = TopLeftPixel(False).to(gan._dev), FirstNoiseToPixel().to(gan._dev)
    return gan


def test_gan_minimax_generator_loss_matches_hand_computed_value(hw5_gan):
    gan = stub_gan(hw5_gan, "minimax")
    loss = gan._get_loss_g(3, noise_with_logits(FAKE_LOGITS, gan._dev))
    assert loss.item() == pytest.approx(sum(math.log(1 - sigmoid(f)) for f in FAKE_LOGITS) / 3, rel=1e-5)


def test_gan_nonsaturating_gradient_survives_where_minimax_vanishes(hw5_gan):
    """Where D rejects the fakes, -log D(G(z)) still pushes G (gradient about -1 per logit) while
    log(1 - D(G(z))) barely does (-D(G(z)) per logit)."""
    logits = [-8.0, -7.0, -9.0]
    grads = {}
    for kind in ("nonsaturating", "minimax"):
        gan = stub_gan(hw5_gan, loss=kind)
        gan._get_loss_g(3, noise_with_logits(logits, gan._dev)).backward()
        grads[kind] = gan.gen.shift.grad.item()
    assert grads["minimax"] == pytest.approx(-sum(sigmoid(x) for x in logits) / 3, rel=1e-4)
    assert abs(grads["nonsaturating"]) > 1000 * abs(grads["minimax"])


# ----------------------------------------------------------------------------------------------------
# Training (the reference's fast loop, checkpoints)


def test_gan_fast_training_step_matches_the_course_loop(hw5_gan, mnist_grey):
    """train_epoch (one G(z) per batch, D frozen in the G step) updates the networks exactly as the course's
    loop over _get_loss_d / _get_loss_g does, with several D and G steps per batch."""
    images = mnist_grey.train_images[:200].view(-1, 1, 28, 28)
    cfg = hw5_gan.Config(batch_size=64, iter_d=2, iter_g=2)
    fast, course = hw5_gan.ConfiguredGAN(device="cpu"), hw5_gan.ConfiguredGAN(device="cpu")
    sgd = lambda net: torch.optim.SGD(net.parameters(), lr=0.05)  # noqa: E731 - plain steps: exact comparison
    torch.manual_seed(7)
    losses = hw5_gan.train_epoch(fast, sgd(fast.gen), sgd(fast.disc), images, cfg)

    torch.manual_seed(7)
    gopt, dopt = sgd(course.gen), sgd(course.disc)
    expected = []
    for batch in torch.randperm(len(images))[:3 * 64].view(3, 64):  # 3 full batches; the last 8 images dropped
        data, z = images[batch], 2 * torch.rand(64, 64) - 1
        for _ in range(cfg.iter_d):
            dopt.zero_grad()
            loss_d = course._get_loss_d(64, data, z)
            loss_d.backward()
            dopt.step()
        for _ in range(cfg.iter_g):
            gopt.zero_grad()
            loss_g = course._get_loss_g(64, z)
            loss_g.backward()
            gopt.step()
        expected.append([loss_d.item(), loss_g.item()])
    torch.testing.assert_close(losses, torch.tensor(expected), rtol=1e-4, atol=1e-5)
    for name, net in (("gen", fast.gen), ("disc", fast.disc)):
        for (key, value), reference in zip(net.state_dict().items(), getattr(course, name).state_dict().values()):
            torch.testing.assert_close(value, reference, rtol=1e-4, atol=1e-5, msg=f"{name}.{key}")


def test_gan_d_outputs_are_the_mean_probabilities_on_real_and_generated_digits(hw5_gan, mnist_grey):
    gan = hw5_gan.ConfiguredGAN(device="cpu")
    real, z = mnist_grey.train_images[:50].view(-1, 1, 28, 28), gan.sample_z(40)
    d_real, d_fake = hw5_gan.mean_d_outputs(gan, real, z)
    with torch.no_grad():
        assert d_real == pytest.approx(torch.sigmoid(gan.disc(real)).mean().item(), rel=1e-6)
        assert d_fake == pytest.approx(torch.sigmoid(gan.disc(gan.gen(z))).mean().item(), rel=1e-6)
    assert gan.disc.training and gan.gen.training  # back in training mode


def test_gan_interrupt_keeps_a_resumable_checkpoint(hw5_gan, tmp_path, mnist_path, monkeypatch):
    """Ctrl-C in the second epoch leaves gan.pt after the first, and --resume carries on from it."""
    cfg = hw5_gan.Config(epochs=3, batch_size=64, train_size=128, data=str(mnist_path))
    real_epoch, calls = hw5_gan.train_epoch, []

    def interrupted_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(hw5_gan, "train_epoch", interrupted_epoch)
    with pytest.raises(KeyboardInterrupt):
        hw5_gan.run_training(cfg, tmp_path, "cpu")
    state = torch.load(tmp_path / "gan.pt", weights_only=True)
    assert state["epoch"] == 1 and len(state["history"]["loss_d"]) == 2
    assert {"gen", "disc", "opt_gen", "opt_disc", "config", "rng"} <= set(state)
    monkeypatch.setattr(hw5_gan, "train_epoch", real_epoch)
    monkeypatch.setattr(hw5_gan, "evaluate_and_save", lambda *args, **kwargs: {})  # scoring is tested elsewhere
    hw5_gan.run_training(hw5_gan.Config(epochs=3), tmp_path, "cpu", resume=True)
    assert torch.load(tmp_path / "gan.pt", weights_only=True)["epoch"] == 3


def test_gan_ctrl_c_during_the_figures_prints_a_resume_command_that_redoes_them(hw5_gan, tmp_path, mnist_path,
                                                                                monkeypatch, capsys):
    cfg = hw5_gan.Config(epochs=1, batch_size=64, train_size=128, data=str(mnist_path))
    real_figures = hw5_gan.make_figures

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(hw5_gan, "make_figures", interrupted)
    monkeypatch.setattr(hw5_gan, "evaluate_and_save", lambda *args, **kwargs: {})  # scoring is tested elsewhere
    with pytest.raises(KeyboardInterrupt):
        hw5_gan.run_training(cfg, tmp_path, "cpu")
    assert capsys.readouterr().err.strip().endswith("--resume --epochs 1")
    assert torch.load(tmp_path / "gan.pt", weights_only=True)["epoch"] == 1
    assert not (tmp_path / "losses.png").exists()
    monkeypatch.setattr(hw5_gan, "make_figures", real_figures)
    hw5_gan.run_training(hw5_gan.Config(epochs=1), tmp_path, "cpu", resume=True)
    assert (tmp_path / "losses.png").exists()


def test_gan_loss_plots_show_a_one_epoch_run_and_name_the_generator_loss(hw5_gan, tmp_path, figure_spy):
    """After one epoch each curve is a single point: it must still be drawn (a marker), and the G loss label
    says which loss it is (the minimax one is negative, not a cross-entropy)."""
    history = {"loss_d": [1.4, 1.2, 1.0, 0.9], "loss_g": [-0.6, -0.5, -0.5, -0.4], "d_real": [0.6], "d_fake": [0.4]}
    hw5_gan.plot_losses(history, 4, tmp_path / "losses.png", "minimax")
    hw5_gan.plot_d_outputs(history, tmp_path / "d_outputs.png")
    (losses,), (outputs,) = (figure.axes for figure in figure_spy)
    labels = {line.get_label(): line for line in losses.get_lines()}
    g_mean = labels["G loss log(1 - D(G(z))), epoch mean"]
    assert g_mean.get_marker() == "o" and g_mean.get_ydata().tolist() == pytest.approx([-0.5])
    assert losses.get_ylabel() == "loss"
    assert all(line.get_marker() == "o" for line in outputs.get_lines() if line.get_label().startswith("mean"))


# ----------------------------------------------------------------------------------------------------
# Command line, end to end

TRAIN_ARGS = ["--train-size", "512", "--batch-size", "64"]


def files_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def trained_dir(hw5_gan, tmp_path_factory, mnist_path, judge) -> Path:
    """A 2-epoch run of `hw5_gan.py train` on 512 digits (the judge fixture has cached the judge it scores with)."""
    out_dir = tmp_path_factory.mktemp("gan")
    result = CliRunner().invoke(hw5_gan.app, ["train", "--epochs", "2", *TRAIN_ARGS, "--data", str(mnist_path),
                                              "--out-dir", str(out_dir)])
    assert result.exit_code == 0, result.output
    return out_dir


def test_gan_cli_train_writes_checkpoint_figures_and_metrics(trained_dir):
    for name in ("gan.pt", "test_0.png", "test_2.png", "real.png", "losses.png", "d_outputs.png", "progress.gif",
                 "metrics.json"):
        assert (trained_dir / name).stat().st_size > 0, name
    state = torch.load(trained_dir / "gan.pt", weights_only=True)
    assert {"gen", "disc", "opt_gen", "opt_disc", "config", "epoch", "history", "rng"} <= set(state)
    assert state["config"]["zdim"] == 64 and state["config"]["arch"] == "course" and state["epoch"] == 2
    assert len(state["history"]["loss_d"]) == 2 * (512 // 64) and len(state["history"]["d_real"]) == 2
    with Image.open(trained_dir / "progress.gif") as gif:
        assert gif.n_frames == 3  # epochs 0, 1, 2
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    assert {"frechet_distance", "floor_frechet_distance", "classes_covered", "class_histogram", "mean_confidence",
            "epochs", "arch", "train_seconds"} <= set(metrics)
    assert metrics["epochs"] == 2 and metrics["arch"] == "course" and metrics["n_samples"] == 2000
    assert sum(metrics["class_histogram"]) == pytest.approx(1, abs=1e-3) and 0 <= metrics["classes_covered"] <= 10
    assert 0 < metrics["floor_frechet_distance"] < metrics["frechet_distance"]


def test_gan_cli_sample_and_evaluate(hw5_gan, trained_dir, tmp_path, cli):
    out_dir = tmp_path / "run"
    shutil.copytree(trained_dir, out_dir)
    result = cli.invoke(hw5_gan.app, ["sample", "--n", "10", "--out-dir", str(out_dir)])
    assert result.exit_code == 0, result.output
    assert (out_dir / "samples.png").stat().st_size > 0
    (out_dir / "metrics.json").unlink()
    result = cli.invoke(hw5_gan.app, ["evaluate", "--out-dir", str(out_dir)])
    assert result.exit_code == 0, result.output
    again = json.loads((out_dir / "metrics.json").read_text())
    first = json.loads((trained_dir / "metrics.json").read_text())
    assert again["frechet_distance"] == pytest.approx(first["frechet_distance"], rel=1e-6)  # same seeded samples


def test_gan_cli_resume_continues_exactly(hw5_gan, trained_dir, tmp_path, cli, mnist_path, monkeypatch):
    """1 epoch, then --resume to 2, gives the very networks of 2 epochs in one go."""
    monkeypatch.setattr(hw5_gan, "evaluate_and_save", lambda *args, **kwargs: {})  # scoring is tested above
    args = [*TRAIN_ARGS, "--data", str(mnist_path), "--out-dir", str(tmp_path)]
    assert cli.invoke(hw5_gan.app, ["train", "--epochs", "1", *args]).exit_code == 0
    result = cli.invoke(hw5_gan.app, ["train", "--resume", "--epochs", "2", "--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    resumed = torch.load(tmp_path / "gan.pt", weights_only=True)
    straight = torch.load(trained_dir / "gan.pt", weights_only=True)
    for key in ("gen", "disc"):
        for name, value in straight[key].items():
            assert torch.equal(resumed[key][name], value), f"{key}.{name}"
    assert resumed["history"] == straight["history"]


def corrupt(out_dir: Path) -> None:
    (out_dir / "gan.pt").write_bytes(b"not a checkpoint")


def foreign(out_dir: Path) -> None:
    torch.save({"encoder": {}, "decoder": {}, "config": {}}, out_dir / "gan.pt")


def older_config(out_dir: Path) -> None:
    state = torch.load(out_dir / "gan.pt", weights_only=True)
    state["config"]["an_older_setting"] = 1  # a config this version's Config cannot rebuild
    torch.save(state, out_dir / "gan.pt")


def mistyped_config(out_dir: Path) -> None:
    state = torch.load(out_dir / "gan.pt", weights_only=True)
    state["config"]["zdim"] = "64"  # edited by hand
    torch.save(state, out_dir / "gan.pt")


def other_arch(out_dir: Path) -> None:
    state = torch.load(out_dir / "gan.pt", weights_only=True)
    state["config"]["arch"] = "dcgan"
    torch.save(state, out_dir / "gan.pt")


def test_gan_train_never_replaces_a_saved_run_by_accident(hw5_gan, trained_dir, tmp_path, cli):
    """The command line stops before a folder that holds a run, touching nothing."""
    out_dir = tmp_path / "run"
    shutil.copytree(trained_dir, out_dir)
    before = files_digest(out_dir)
    result = cli.invoke(hw5_gan.app, ["train", "--epochs", "1", "--out-dir", str(out_dir)])
    assert result.exit_code == 2 and "holds an earlier run" in result.stderr, result.output
    assert files_digest(out_dir) == before


@pytest.mark.parametrize("args, prepare, message", [
    (["train", "--lr", "0"], None, "--lr must be a positive number"),
    (["train", "--lr", "inf"], None, "--lr must be a positive number"),
    (["train", "--seed", "-1"], None, "--seed must be between 0 and 2**64 - 1"),
    (["train", "--arch", "dcgan", "--batch-size", "1"], None, "--batch-size of at least 2"),
    (["train", "--out-dir", "{file}"], None, "is a file"),
    (["sample", "--out-dir", "{file}"], None, "is a file"),
    (["train", "--data", "missing.npz"], None, "no data file missing.npz"),
    (["train", "--batch-size", "4096", "--train-size", "512"], None, "larger than the 512 training images"),
    (["train", "--resume", "--out-dir", "{empty}"], None, "no checkpoint at"),
    (["sample"], corrupt, "cannot read checkpoint"),
    (["evaluate"], foreign, "is not a checkpoint of this script"),
    (["sample"], other_arch, "does not match this model's architecture"),
    (["train", "--resume"], older_config, "has an unusable config"),
    (["sample"], mistyped_config, "has an unusable config (zdim='64')"),
    (["train", "--resume"], mistyped_config, "has an unusable config (zdim='64')"),
], ids=["lr", "lr-inf", "seed", "dcgan-batch-of-1", "out-dir-file", "sample-out-dir-file", "data", "batch-size",
        "resume-nothing", "corrupt", "foreign", "arch-mismatch", "resume-older-config", "mistyped-config",
        "resume-mistyped-config"])
def test_gan_cli_bad_input_is_one_line_exit_2_nothing_overwritten(hw5_gan, trained_dir, tmp_path, cli, args, prepare,
                                                                   message):
    out_dir = tmp_path / "run"
    shutil.copytree(trained_dir, out_dir)
    if prepare:
        prepare(out_dir)
    before = files_digest(out_dir)
    (tmp_path / "notes.txt").write_text("mine")
    args = [arg.replace("{empty}", str(tmp_path / "empty")).replace("{file}", str(tmp_path / "notes.txt"))
            for arg in args]
    if "--out-dir" not in args:
        args += ["--out-dir", str(out_dir)]
    if args[0] == "train" and "--resume" not in args:
        args.append("--overwrite")  # even a run allowed to replace the saved one keeps it on bad input
    result = cli.invoke(hw5_gan.app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert files_digest(out_dir) == before
    assert not (tmp_path / "empty").exists() and (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("args", [["train", "--arch", "big"], ["train", "--loss", "wasserstein"],
                                  ["train", "--epochs", "0"], ["sample", "--n", "0"], ["train", "--zdim", "few"],
                                  ["evaluate", "--n", "2"]])
def test_gan_cli_rejects_bad_option_values(hw5_gan, cli, tmp_path, args):
    result = cli.invoke(hw5_gan.app, [*args, "--out-dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Invalid value") and len(result.stderr.strip().splitlines()) == 1, \
        result.stderr  # one line: no usage block above it
    assert not (tmp_path / "run").exists()
