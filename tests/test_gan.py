"""Tests of hw5_gan.py: the course's networks and losses against the handout, real training, the command line.

The graded tests (GAN.a-f in tests/rubric.py) reach the script only through the `hw5_gan` fixture and only
through the course's public names (DNet, GNet, _weight_init, GAN(zdim), gen, disc, _get_loss_d, _get_loss_g,
_dev; the noise z ~ U[-1, 1]^zdim is drawn by the tests, as the course's training loop does), so the
autograder can run them against students' files. The rest (DCGAN, the minimax option, the fast training step,
checkpoints, the command line) tests this reference implementation.
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

import hw5_utils
from grading import manual_seed

pytestmark = pytest.mark.usefixtures("one_thread")

# ----------------------------------------------------------------------------------------------------
# GAN.a-c: the networks, against the handout's table


def layer_spec(layer: nn.Module) -> tuple:
    """What the handout specifies of a layer."""
    if isinstance(layer, nn.Conv2d):
        return ("Conv2d", layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, nn.Linear):
        return ("Linear", layer.in_features, layer.out_features)
    if isinstance(layer, nn.MaxPool2d):
        return ("MaxPool2d", nn.modules.utils._pair(layer.kernel_size), nn.modules.utils._pair(layer.stride))
    if isinstance(layer, nn.LeakyReLU):
        return ("LeakyReLU", layer.negative_slope)
    if isinstance(layer, nn.Upsample):
        return ("Upsample", float(layer.scale_factor))
    return (type(layer).__name__,)


def conv(c_in: int, c_out: int, padding: int) -> tuple:
    return ("Conv2d", c_in, c_out, (3, 3), (1, 1), (padding, padding))


DNET_SPEC = [conv(1, 2, 1), ("ReLU",), ("MaxPool2d", (2, 2), (2, 2)), conv(2, 4, 1), ("ReLU",),
             ("MaxPool2d", (2, 2), (2, 2)), conv(4, 8, 0), ("ReLU",), ("Linear", 200, 1)]


def gnet_spec(zdim: int) -> list[tuple]:
    return [("Linear", zdim, 1568), ("LeakyReLU", 0.2), ("Upsample", 2.0), conv(32, 16, 1), ("LeakyReLU", 0.2),
            ("Upsample", 2.0), conv(16, 8, 1), ("LeakyReLU", 0.2), conv(8, 1, 1), ("Sigmoid",)]


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def uniform_noise(n: int, zdim: int, device="cpu") -> torch.Tensor:
    """The course's noise z ~ U[-1, 1]^zdim, (n, zdim), from torch's global generator."""
    return (2 * torch.rand(n, zdim) - 1).to(device)


def test_gan_dnet_architecture(hw5_gan):
    manual_seed(0)
    dnet = hw5_gan.DNet()
    layers = list(dnet.children())
    assert [layer_spec(layer) for layer in layers] == DNET_SPEC, "the layers defined in __init__, in order"
    # weights + biases of conv(1->2), conv(2->4), conv(4->8) (3x3 kernels), linear(8*5*5 -> 1)
    assert n_params(dnet) == (2 * 1 * 9 + 2) + (4 * 2 * 9 + 4) + (8 * 4 * 9 + 8) + (200 + 1) == 593
    x = torch.rand(5, 1, 28, 28)
    logits = dnet(x)
    assert logits.shape == (5, 1)
    # forward applies the layers in the table's order (flattening the (8, 5, 5) maps before the linear layer)
    h = x
    for layer in layers[:-1]:
        h = layer(h)
    assert h.shape == (5, 8, 5, 5)
    torch.testing.assert_close(logits, layers[-1](h.flatten(1)))


def test_gan_gnet_architecture(hw5_gan):
    manual_seed(0)
    for zdim in (64, 10):
        gnet = hw5_gan.GNet(zdim)
        layers = list(gnet.children())
        assert [layer_spec(layer) for layer in layers] == gnet_spec(zdim), "the layers defined in __init__, in order"
        assert n_params(gnet) == (zdim * 1568 + 1568) + (16 * 32 * 9 + 16) + (8 * 16 * 9 + 8) + (1 * 8 * 9 + 1)
        z = uniform_noise(5, zdim)
        images = gnet(z)
        assert images.shape == (5, 1, 28, 28)
        assert images.min() >= 0 and images.max() <= 1
        # forward: Linear, LeakyReLU, view (32, 7, 7), then the remaining layers in order
        h = layers[1](layers[0](z)).view(-1, 32, 7, 7)
        for layer in layers[2:]:
            h = layer(h)
        torch.testing.assert_close(images, h)


def test_gan_weight_init(hw5_gan):
    """_weight_init: kaiming-uniform weights (U(-b, b), b = sqrt(6 / fan_in)) and zero biases, every layer of
    both networks."""
    manual_seed(0)
    for net in (hw5_gan.DNet(), hw5_gan.GNet(64)):
        weighted = [layer for layer in net.children() if isinstance(layer, (nn.Conv2d, nn.Linear))]
        assert len(weighted) == 4
        with torch.no_grad():  # spoil them: _weight_init must set every one again
            for layer in weighted:
                layer.weight.fill_(3.0)
                layer.bias.fill_(1.0)
        net._weight_init()
        for layer in weighted:
            bound = math.sqrt(6 / layer.weight[0].numel())
            weight = layer.weight.detach()
            assert torch.all(layer.bias == 0), f"{type(net).__name__}: biases not zero"
            assert weight.abs().max() <= bound
            # PyTorch's default init has bound b / sqrt(6); these samples reach near b itself
            assert weight.abs().max() > 0.7 * bound, f"{type(net).__name__}: not kaiming-uniform"
            if weight.numel() >= 1000:  # the uniform's standard deviation b / sqrt(3), within 10%
                assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)


def test_gan_noise_is_uniform_on_minus_one_one(hw5_gan):
    z = hw5_gan.GAN(zdim=16).sample_z(20000)
    assert z.shape == (20000, 16)
    assert z.min() >= -1 and z.max() <= 1
    assert z.mean().item() == pytest.approx(0, abs=0.01)
    assert z.var().item() == pytest.approx(1 / 3, abs=0.01)  # U[-1, 1]: variance 1/3


def test_gan_dcgan_pair_shapes_and_batchnorm(hw5_gan):
    gan = hw5_gan.GAN(zdim=16, arch="dcgan", device="cpu")
    images = gan.gen(gan.sample_z(6))
    assert images.shape == (6, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    assert gan.disc(images).shape == (6, 1)
    for net in (gan.gen, gan.disc):
        assert any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in net.modules())
    assert any(isinstance(m, nn.ConvTranspose2d) for m in gan.gen.modules())


# ----------------------------------------------------------------------------------------------------
# GAN.d-e: the losses, against binary cross-entropy computed by hand on fixed logits

REAL_LOGITS = [2.0, -1.0, 0.5]
FAKE_LOGITS = [-3.0, 0.25, 1.5]


class TopLeftPixel(nn.Module):
    """A stand-in discriminator whose logit is the image's top-left pixel: (N, 1, 28, 28) -> (N, 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 0, 0]


class FirstNoiseToPixel(nn.Module):
    """A stand-in generator: z (N, zdim) -> black images whose top-left pixel is z[:, 0] + shift."""

    def __init__(self) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        pixel = (z[:, 0] + self.shift).view(-1, 1, 1, 1)
        return nn.functional.pad(pixel, (0, 27, 0, 27))


def stub_gan(hw5_gan, **kwargs):
    """The GAN under test with the stand-in networks (on its device `_dev`, the course's attribute)."""
    gan = hw5_gan.GAN(**kwargs)
    gan.disc, gan.gen = TopLeftPixel().to(gan._dev), FirstNoiseToPixel().to(gan._dev)
    return gan


def images_with_logits(logits: list[float], device) -> torch.Tensor:
    images = torch.zeros(len(logits), 1, 28, 28)
    images[:, 0, 0, 0] = torch.tensor(logits)
    return images.to(device)


def noise_with_logits(logits: list[float], device, zdim: int = 64) -> torch.Tensor:
    z = torch.zeros(len(logits), zdim)
    z[:, 0] = torch.tensor(logits)
    return z.to(device)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_gan_get_loss_d_matches_hand_computed_bce(hw5_gan):
    """BCE with real -> 1 plus BCE with fake -> 0, each averaged over the batch."""
    gan = stub_gan(hw5_gan)
    loss = gan._get_loss_d(3, images_with_logits(REAL_LOGITS, gan._dev), noise_with_logits(FAKE_LOGITS, gan._dev))
    expected = (sum(-math.log(sigmoid(r)) for r in REAL_LOGITS) / 3
                + sum(-math.log(1 - sigmoid(f)) for f in FAKE_LOGITS) / 3)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # a perfect discriminator has (almost) no loss; one that says 1/2 everywhere has 2 log 2
    perfect = gan._get_loss_d(3, images_with_logits([20.0] * 3, gan._dev), noise_with_logits([-20.0] * 3, gan._dev))
    fooled = gan._get_loss_d(3, images_with_logits([0.0] * 3, gan._dev), noise_with_logits([0.0] * 3, gan._dev))
    assert perfect.item() == pytest.approx(0, abs=1e-6)
    assert fooled.item() == pytest.approx(2 * math.log(2), rel=1e-5)


def test_gan_get_loss_g_is_the_nonsaturating_loss(hw5_gan):
    """The non-saturating generator loss, mean -log D(G(z)): its value, and its gradient where D rejects the
    fakes (logit -8, D(G(z)) = 3e-4): about -1 per logit, where log(1 - D(G(z))) would give only -D(G(z))."""
    gan = stub_gan(hw5_gan)
    loss = gan._get_loss_g(3, noise_with_logits(FAKE_LOGITS, gan._dev))
    assert loss.item() == pytest.approx(sum(-math.log(sigmoid(f)) for f in FAKE_LOGITS) / 3, rel=1e-5)
    rejected = [-8.0, -7.0, -9.0]
    gan._get_loss_g(3, noise_with_logits(rejected, gan._dev)).backward()
    assert gan.gen.shift.grad.item() == pytest.approx(-sum(1 - sigmoid(x) for x in rejected) / 3, rel=1e-4)


def test_gan_minimax_generator_loss_matches_hand_computed_value(hw5_gan):
    gan = stub_gan(hw5_gan, loss="minimax")
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
# GAN.f: a short training on real MNIST, judged by the MNIST classifier

GAN_STEPS = 300        # the course's D and G updates, on batches of 64 (calibrated in the README)


def judged_frechet(gen: nn.Module, z: torch.Tensor, judge, mnist_grey) -> float:
    """The judge's Fréchet distance between G(z) and real test digits (generated 250 at a time: little memory)."""
    with torch.no_grad():
        samples = torch.cat([gen(part).cpu() for part in z.split(250)])
    return hw5_utils.judge_digits(judge, samples, mnist_grey)["frechet_distance"]


def test_gan_short_training_produces_digit_like_samples(hw5_gan, mnist_grey, judge):
    """GAN_STEPS steps of the course's loop (Adam on _get_loss_d, then on _get_loss_g, same z) bring G's
    samples much closer to real digits in the judge's features than the untrained generator's."""
    gan = hw5_gan.GAN(zdim=64)
    manual_seed(20)
    device = next(gan.gen.parameters()).device
    images = mnist_grey.train_images.view(-1, 1, 28, 28).to(device)
    z_eval = uniform_noise(2000, 64, device)
    before = judged_frechet(gan.gen, z_eval, judge, mnist_grey)
    opt_d = torch.optim.Adam(gan.disc.parameters(), lr=1e-3)
    opt_g = torch.optim.Adam(gan.gen.parameters(), lr=1e-3)
    for _ in range(GAN_STEPS):
        data, z = images[torch.randint(len(images), (64,)).to(device)], uniform_noise(64, 64, device)
        opt_d.zero_grad()
        gan._get_loss_d(64, data, z).backward()
        opt_d.step()
        opt_g.zero_grad()
        gan._get_loss_g(64, z).backward()
        opt_g.step()
    after = judged_frechet(gan.gen, z_eval, judge, mnist_grey)
    assert after < 0.5 * before, f"Fréchet distance to real digits {before:.0f} -> {after:.0f} after {GAN_STEPS} steps"


# ----------------------------------------------------------------------------------------------------
# Training (the reference's fast loop, checkpoints)


def test_gan_fast_training_step_matches_the_course_loop(hw5_gan, mnist_grey):
    """train_epoch (one G(z) per batch, D frozen in the G step) updates the networks exactly as the course's
    loop over _get_loss_d / _get_loss_g does, with several D and G steps per batch."""
    images = mnist_grey.train_images[:200].view(-1, 1, 28, 28)
    cfg = hw5_gan.Config(batch_size=64, iter_d=2, iter_g=2)
    fast, course = hw5_gan.GAN(device="cpu"), hw5_gan.GAN(device="cpu")
    sgd = lambda net: torch.optim.SGD(net.parameters(), lr=0.05)  # noqa: E731 - plain steps: exact comparison
    torch.manual_seed(7)
    stats = hw5_gan.train_epoch(fast, sgd(fast.gen), sgd(fast.disc), images, cfg)

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
    torch.testing.assert_close(stats[:, :2], torch.tensor(expected), rtol=1e-4, atol=1e-5)
    for name, net in (("gen", fast.gen), ("disc", fast.disc)):
        for (key, value), reference in zip(net.state_dict().items(), getattr(course, name).state_dict().values()):
            torch.testing.assert_close(value, reference, rtol=1e-4, atol=1e-5, msg=f"{name}.{key}")
    assert ((stats[:, 2:] > 0) & (stats[:, 2:] < 1)).all()  # mean D(x), D(G(z)) are probabilities


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
    """The command line and the course's GAN.train both stop before a folder that holds a run, touching nothing."""
    out_dir = tmp_path / "run"
    shutil.copytree(trained_dir, out_dir)
    before = files_digest(out_dir)
    result = cli.invoke(hw5_gan.app, ["train", "--epochs", "1", "--out-dir", str(out_dir)])
    assert result.exit_code == 2 and "holds an earlier run" in result.stderr, result.output
    with pytest.raises(hw5_utils.UserError, match="holds an earlier run"):
        hw5_gan.GAN().train(n_epochs=1, out_dir=out_dir)
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
