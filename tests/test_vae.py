"""Tests of hw5_vae.py's trainer around the course's API: evaluation against exact quadrature, the fast training
path, resume, Ctrl-C and the command line (not graded; the course's API itself is graded by test_grade_vae.py
and checked end to end by test_course_api.py). Each against an independent reference, never against itself.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal
from typer.testing import CliRunner

import hw5_utils


def sized(hw5_vae, latent: int = 2, hidden: int = 500, data: int = 784):
    """A VAE of these sizes without the course's data."""
    return hw5_vae.VAE(hw5_vae.parse_args([f"--latent_dimension={latent}", f"--hidden_units={hidden}",
                                           f"--data_dimension={data}"]), load_data=False)


@pytest.fixture(scope="session")
def digits(mnist_path):
    """2000 rounded training digits and the 2000 test digits."""
    return hw5_utils.read_mnist(mnist_path, train_size=2000, binarize="round")


# ----------------------------------------------------------------------------------------------------
# Evaluation against exact quadrature, the fast training path


def test_evaluate_matches_exact_likelihood_of_a_small_model(hw5_vae):
    """With z in R^1, log p(x) and the ELBO are integrals we can take on a grid: IWAE -> log p(x) >= ELBO."""
    torch.manual_seed(10)
    vae = sized(hw5_vae, 1, 8, 6).double()
    with torch.no_grad():
        for layer in vae.decoder.modules():
            if isinstance(layer, nn.Linear):
                layer.weight.mul_(3.0)  # a decoder whose output depends strongly on z: a non-trivial posterior
    x = torch.bernoulli(torch.full((4, 6), 0.5, dtype=torch.float64))
    z = torch.linspace(-12, 12, 24001, dtype=torch.float64)
    log_joint = Bernoulli(probs=vae.decoder(z[:, None])[None]).log_prob(x[:, None, :]).sum(-1) + \
        Normal(0.0, 1.0).log_prob(z)
    exact_log_px = torch.logsumexp(log_joint, 1) + math.log(z[1] - z[0])
    mu, sigma_square = vae.encoder(x)
    q = Normal(mu, sigma_square.sqrt())
    exact_elbo = (q.log_prob(z).exp() * (log_joint - q.log_prob(z))).sum(1) * (z[1] - z[0])

    metrics = hw5_vae.evaluate(vae, x, iw_samples=20000, seed=0)
    assert metrics["iw_samples"] == 20000
    assert metrics["test_iwae_ll"] == pytest.approx(exact_log_px.mean().item(), abs=0.01)
    assert metrics["test_elbo"] == pytest.approx(exact_elbo.mean().item(), abs=0.03)
    assert exact_elbo.mean() < exact_log_px.mean() - 0.05  # the bounds differ, so the checks above are sharp


def test_evaluate_splits_a_large_k_into_passes(hw5_vae, monkeypatch):
    """K larger than rows_per_chunk is drawn in passes of at most rows_per_chunk samples, then combined as one
    estimate over all K. Stand-in weights log w_k = k / 20 (k = 0..K-1, whatever the passes) give closed forms."""
    K, passes = 400, []

    def stand_in_weights(self, x, k):  # the pass's share of each image's K samples, in order
        start = sum(size for _, size in passes) % K
        passes.append((len(x), k))
        return (torch.arange(start, start + k, dtype=torch.float64) / 20).expand(len(x), k)

    monkeypatch.setattr(hw5_vae.VAE, "log_importance_weights", stand_in_weights)
    log_w = torch.arange(K, dtype=torch.float64) / 20
    expected = {"test_elbo": log_w.mean().item(), "test_iwae_ll": (torch.logsumexp(log_w, 0) - math.log(K)).item()}
    x = torch.zeros(3, 784)
    for rows_per_chunk, expected_passes in ((10**6, [(3, K)]), (100, [(1, 100)] * 12)):
        passes.clear()
        metrics = hw5_vae.evaluate(sized(hw5_vae), x, iw_samples=K, rows_per_chunk=rows_per_chunk)
        assert passes == expected_passes
        assert metrics["test_elbo"] == pytest.approx(expected["test_elbo"], abs=1e-6)
        assert metrics["test_iwae_ll"] == pytest.approx(expected["test_iwae_ll"], abs=1e-6)


def test_kl_to_prior_matches_torch_distributions(hw5_vae):
    torch.manual_seed(15)
    mu, sigma_square = torch.randn(6, 3), torch.rand(6, 3) + 0.1
    expected = torch.distributions.kl_divergence(Independent(Normal(mu, sigma_square.sqrt()), 1),
                                                 Independent(Normal(torch.zeros(3), torch.ones(3)), 1))
    torch.testing.assert_close(hw5_vae.VAE.kl_to_prior(mu, sigma_square), expected)


def test_logpdf_bernoulli_logits_matches_torch_distributions_where_the_sigmoid_saturates(hw5_vae):
    """The training path's log p(x|z) from logits: exact even where sigmoid(logits) rounds to 0 or 1 in float32."""
    torch.manual_seed(17)
    logits = torch.cat([torch.randn(3, 784) * 4, torch.full((1, 784), 40.0), torch.full((1, 784), -40.0)])
    x = torch.bernoulli(torch.full((5, 784), 0.5))
    expected = Bernoulli(logits=logits.double()).log_prob(x.double()).sum(1).float()
    torch.testing.assert_close(hw5_vae.VAE.logpdf_bernoulli_logits(x, logits), expected, rtol=1e-5, atol=1e-3)
    assert expected[3:].abs().min() > 100 * 40  # rows 3-4 disagree with x on ~392 pixels: each costs 40 nats


def test_logpdf_bernoulli_logits_gradient_is_x_minus_p_where_the_sigmoid_saturates(hw5_vae):
    """d/dl [x log sigmoid(l) + (1 - x) log sigmoid(-l)] = x - sigmoid(l): the full pull back even at |l| = 40,
    where a clamped log(p) would give no gradient at all, and x - 1/2 at l = 0 (a zero-initialized decoder).
    The reference is autograd through torch.distributions.Bernoulli in float64, not the hand-written backward."""
    torch.manual_seed(19)
    logits = torch.cat([torch.randn(3, 784) * 4, torch.full((1, 784), 40.0), torch.full((1, 784), -40.0),
                        torch.zeros(1, 784)])
    x = torch.bernoulli(torch.full((6, 784), 0.5))
    logits.requires_grad_()
    hw5_vae.VAE.logpdf_bernoulli_logits(x, logits).sum().backward()
    logits64 = logits.detach().double().requires_grad_()
    (expected,) = torch.autograd.grad(Bernoulli(logits=logits64).log_prob(x.double()).sum(), logits64)
    torch.testing.assert_close(logits.grad, expected.float(), rtol=0, atol=1e-6)


def test_logpdf_bernoulli_logits_gradients_match_finite_differences(hw5_vae):
    """Its hand-written backward, for logits and for x (d/dx = logits), against numerical derivatives in float64."""
    torch.manual_seed(20)
    logits = torch.cat([torch.randn(3, 9, dtype=torch.float64) * 3, torch.tensor([[40.0, -40.0, 0.0] * 3],
                                                                                  dtype=torch.float64)])
    logits.requires_grad_()  # the last row: where the sigmoid saturates, and 0
    x = torch.rand(4, 9, dtype=torch.float64).requires_grad_()  # any x in [0, 1], to check d/dx too
    assert torch.autograd.gradcheck(hw5_vae.VAE.logpdf_bernoulli_logits, (x, logits))


def test_forward_is_the_elbo_with_the_analytic_kl(hw5_vae):
    """vae(x): mean over the batch of log p(x|z) - KL(q(z|x) || N(0, I)), z the reparameterized draw, recomputed
    here with torch.distributions from the same random numbers; the decoder's logits are its p before the sigmoid."""
    torch.manual_seed(18)
    vae, x = sized(hw5_vae, latent=3), torch.bernoulli(torch.full((6, 784), 0.3))
    torch.manual_seed(19)
    elbo = vae(x, "analytic")
    torch.manual_seed(19)
    mu, sigma_square = vae.encoder(x)
    q = Independent(Normal(mu, sigma_square.sqrt()), 1)
    z = mu + sigma_square.sqrt() * torch.randn(6, 3)
    layer1, layer2 = vae.decoder.fc1_dec, vae.decoder.fc2_dec
    p = torch.sigmoid(torch.tanh(z @ layer1.weight.T + layer1.bias) @ layer2.weight.T + layer2.bias)
    expected = Independent(Bernoulli(probs=p), 1).log_prob(x) - torch.distributions.kl_divergence(
        q, Independent(Normal(torch.zeros(3), torch.ones(3)), 1))
    torch.testing.assert_close(elbo, expected.mean(), rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(torch.sigmoid(vae.decoder.logits(z)), p)


def test_bernoulli_sampler_draws_each_pixel_with_its_probability(hw5_vae):
    """Dynamic binarization: black and white pixels stay, grey ones are 1 with their grey level, fresh each call."""
    torch.manual_seed(20)
    levels = torch.tensor([0.0, 1.0, 0.1, 0.5, 0.9, 0.3])
    draw = hw5_vae.bernoulli_sampler(levels.repeat(2000, 1))
    first, second = draw(), draw()
    assert first.shape == (2000, 6) and first.dtype == torch.float32 and set(first.unique().tolist()) <= {0.0, 1.0}
    assert (first[:, 0] == 0).all() and (first[:, 1] == 1).all()
    assert not torch.equal(first, second)
    frequency = torch.stack([draw() for _ in range(20)]).mean((0, 1))  # 40000 draws per grey level
    torch.testing.assert_close(frequency[2:], levels[2:], atol=0.01, rtol=0)  # 4+ standard errors


def test_analytic_and_monte_carlo_elbo_agree_in_expectation(hw5_vae, digits):
    """Eq. 1 and Eq. 2 estimate the same ELBO: averaged over 4000 draws of z they agree within 5 s.e."""
    torch.manual_seed(16)
    vae = sized(hw5_vae)
    x = digits.test_images[:5].repeat(800, 1)
    with torch.no_grad():
        mu, sigma_square = vae.encoder(x)
        z = vae.sample_z(mu, sigma_square)
        p = vae.decoder(z)
        analytic = vae.logpdf_bernoulli(x, p) - vae.kl_to_prior(mu, sigma_square)
        monte_carlo = vae.logpdf_bernoulli(x, p) + Normal(0.0, 1.0).log_prob(z).sum(1) - \
            vae.logpdf_diagonal_gaussian(z, mu, sigma_square)
    difference = monte_carlo - analytic  # the KL's Monte Carlo error alone: mean 0
    assert difference.mean().abs() < 5 * difference.std() / math.sqrt(len(difference))
    assert vae(digits.test_images, "analytic").item() == pytest.approx(vae(digits.test_images, "monte-carlo").item(),
                                                                       abs=2.0)


def test_fit_trains_with_dynamic_binarization(hw5_vae, mnist_path, tmp_path):
    data = hw5_utils.read_mnist(mnist_path, train_size=2000)
    torch.manual_seed(11)
    vae = sized(hw5_vae)
    cfg = hw5_vae.Config(epochs=3, train_size=2000)
    state = hw5_vae.fit(vae, torch.optim.Adam(vae.parameters(), lr=cfg.lr), data, cfg,
                        hw5_utils.Checkpointer(tmp_path / "vae.pt", ""), {"epoch": 0, "history": {}, "train_seconds": 0.0})
    assert state["epoch"] == 3 and len(state["history"]["train_elbo"]) == 3
    assert state["history"]["test_elbo"][-1] > -215
    assert state["history"]["train_elbo"][0] < state["history"]["train_elbo"][-1]


def test_manifold_grid_decodes_prior_quantiles(hw5_vae, tmp_path):
    torch.manual_seed(21)
    vae = sized(hw5_vae)
    images = vae.visualize_manifold(tmp_path / "manifold.png", n=5)
    assert images.shape == (5, 5, 784)
    corner = torch.tensor([[Normal(0, 1).icdf(torch.tensor(0.05)).item(), Normal(0, 1).icdf(torch.tensor(0.95)).item()]])
    torch.testing.assert_close(images[0, 0], vae.decoder(corner)[0])  # top-left: low z1, high z2


# ----------------------------------------------------------------------------------------------------
# Resume, Ctrl-C and NaN safety


def short_run(hw5_vae, mnist_path: Path, out_dir: Path, epochs: int) -> None:
    cfg = hw5_vae.Config(epochs=epochs, train_size=1000, data=str(mnist_path))
    hw5_vae.run_training(cfg, out_dir, device="cpu", iw_samples=5)


def saved_weights(out_dir: Path) -> dict:
    state = torch.load(out_dir / "vae.pt", weights_only=True)
    return {**{f"enc.{k}": v for k, v in state["encoder"].items()},
            **{f"dec.{k}": v for k, v in state["decoder"].items()}}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_extends_a_finished_run_to_the_new_total(hw5_vae, mnist_path, tmp_path):
    short_run(hw5_vae, mnist_path, tmp_path, epochs=2)
    first = torch.load(tmp_path / "vae.pt", weights_only=True)
    hw5_vae.run_training(hw5_vae.Config(epochs=4), tmp_path, device="cpu", resume=True, iw_samples=5)
    extended = torch.load(tmp_path / "vae.pt", weights_only=True)
    assert extended["epoch"] == 4 and extended["config"]["train_size"] == 1000  # saved settings kept
    assert extended["history"]["test_elbo"][:2] == first["history"]["test_elbo"]  # continued, not restarted
    assert extended["history"]["test_elbo"][-1] > first["history"]["test_elbo"][-1]


def test_training_runs_at_the_saved_matmul_precision_and_restores_the_global_one(hw5_vae, mnist_path, tmp_path,
                                                                                  monkeypatch):
    seen, forward = [], hw5_vae.VAE.forward

    def recording_forward(self, *args, **kwargs):
        if torch.is_grad_enabled():  # a training step, not an evaluation
            seen.append(torch.get_float32_matmul_precision())
        return forward(self, *args, **kwargs)

    def resume(epochs: int) -> None:
        hw5_vae.run_training(hw5_vae.Config(epochs=epochs), tmp_path, device="cpu", resume=True, iw_samples=2)

    def edit_saved_config(edit) -> None:
        state = torch.load(tmp_path / "vae.pt", weights_only=True)
        edit(state["config"])
        torch.save(state, tmp_path / "vae.pt")

    monkeypatch.setattr(hw5_vae.VAE, "forward", recording_forward)
    assert hw5_vae.Config().matmul_precision == "medium"
    with hw5_utils.matmul_precision("medium"):  # the caller's setting, neither the default nor the run's
        cfg = hw5_vae.Config(epochs=1, train_size=300, data=str(mnist_path), matmul_precision="high")
        hw5_vae.run_training(cfg, tmp_path, device="cpu", iw_samples=2)
        resume(2)  # the saved run's setting, not the default
        edit_saved_config(lambda config: config.pop("matmul_precision"))  # a run saved before the option
        resume(3)
        assert seen == ["high"] * 6 + ["highest"] * 3  # 3 batches an epoch
        assert torch.get_float32_matmul_precision() == "medium"
        edit_saved_config(lambda config: config.update(matmul_precision="low"))  # a hand-edited checkpoint
        with pytest.raises(hw5_utils.UserError, match="matmul precision 'low' is not one of highest, high, medium"):
            resume(4)


def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(hw5_vae, mnist_path, tmp_path, monkeypatch, capsys):
    """Interrupted in epoch 2, resumed, interrupted again in the resumed epoch, resumed to the end: the same
    weights as an uninterrupted run, and the second Ctrl-C saves the first checkpoint unchanged."""
    short_run(hw5_vae, mnist_path, tmp_path / "straight", epochs=3)
    calls = {"n": 0, "interrupt": 15}  # the 4th batch of epoch 2 (10 batches and one test pass per epoch)
    original_forward = hw5_vae.VAE.forward

    def interrupted_forward(self, *args):
        calls["n"] += 1
        if calls["n"] == calls["interrupt"]:
            raise KeyboardInterrupt
        return original_forward(self, *args)

    monkeypatch.setattr(hw5_vae.VAE, "forward", interrupted_forward)
    resumed = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        short_run(hw5_vae, mnist_path, resumed, epochs=3)
    assert "--resume" in capsys.readouterr().err
    first = torch.load(resumed / "vae.pt", weights_only=True)
    assert first["epoch"] == 1
    calls.update(n=0, interrupt=5)  # the resumed run's 5th batch, in epoch 2 again
    with pytest.raises(KeyboardInterrupt):
        hw5_vae.run_training(hw5_vae.Config(epochs=3), resumed, device="cpu", resume=True, iw_samples=5)
    second = torch.load(resumed / "vae.pt", weights_only=True)
    assert second["epoch"] == 1
    for a, b in zip(first["optimizer"]["state"].values(), second["optimizer"]["state"].values()):
        assert all(torch.equal(a[key], b[key]) for key in a)  # the resumed epoch's Adam steps are not in it
    monkeypatch.setattr(hw5_vae.VAE, "forward", original_forward)
    hw5_vae.run_training(hw5_vae.Config(epochs=3), resumed, device="cpu", resume=True, iw_samples=5)
    assert_same_weights(saved_weights(tmp_path / "straight"), saved_weights(resumed))


def test_nan_loss_stops_with_the_last_good_checkpoint(hw5_vae, mnist_path, tmp_path, monkeypatch):
    calls = {"n": 0}
    original_forward = hw5_vae.VAE.forward

    def elbo_turning_nan(self, *args):
        calls["n"] += 1
        value = original_forward(self, *args)
        return value * float("nan") if calls["n"] > 15 else value  # NaN from the second epoch on

    monkeypatch.setattr(hw5_vae.VAE, "forward", elbo_turning_nan)
    with pytest.raises(hw5_utils.UserError, match="nan.*last good checkpoint"):
        short_run(hw5_vae, mnist_path, tmp_path, epochs=5)
    state = torch.load(tmp_path / "vae.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["decoder"].values())


# ----------------------------------------------------------------------------------------------------
# Command line, end to end

FIGURES = ("data_space.png", "latent_space.png", "interpolation.png", "manifold.png", "learning_curve.png")


@pytest.fixture(scope="module")
def cli_run(hw5_vae, mnist_path, tmp_path_factory):
    """One real `train` run through the command line: 2 epochs on 500 digits."""
    out_dir = tmp_path_factory.mktemp("cli")
    result = CliRunner().invoke(hw5_vae.app, ["train", "--epochs", "2", "--train-size", "500", "--data", str(mnist_path),
                                              "--out-dir", str(out_dir), "--iw-samples", "5", "--device", "cpu"])
    return result, out_dir


def test_cli_train_writes_checkpoint_figures_and_metrics(cli_run):
    result, out_dir = cli_run
    assert result.exit_code == 0, result.output
    state = torch.load(out_dir / "vae.pt", weights_only=True)
    assert {"encoder", "decoder", "config"} <= state.keys()
    assert state["config"]["latent_dim"] == 2 and state["config"]["hidden_units"] == 500
    for name in FIGURES:
        assert (out_dir / name).stat().st_size > 5000, name
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert {"test_elbo", "test_iwae_ll", "iw_samples", "epochs", "train_seconds", "binarize"} <= metrics.keys()
    assert metrics["epochs"] == 2 and metrics["iw_samples"] == 5 and metrics["binarize"] == "dynamic"
    assert -400 < metrics["test_elbo"] <= metrics["test_iwae_ll"] < 0
    prior = metrics["prior_samples"]  # the MNIST judge on 2000 decoded prior samples
    assert prior["n_samples"] == 2000 and 1 <= prior["classes_covered"] <= 10
    assert 0 < prior["floor_frechet_distance"] < 20 < prior["frechet_distance"]  # 2 epochs: far from real digits
    assert sum(prior["class_histogram"]) == pytest.approx(1) and 0.1 < prior["mean_confidence"] <= 1


def test_cli_resume_without_epochs_keeps_the_saved_total(hw5_vae, cli_run, cli, tmp_path):
    _, out_dir = cli_run
    copy = tmp_path / "run"
    shutil.copytree(out_dir, copy)
    result = cli.invoke(hw5_vae.app, ["train", "--resume", "--out-dir", str(copy), "--iw-samples", "5", "--lr", "1",
                                      "--binarize", "round"])
    assert result.exit_code == 0, result.output
    assert "already has 2 epochs" in result.stderr  # not the default 200
    assert "saved run's settings; ignoring --lr, --binarize\n" in result.stderr  # not --out-dir or --iw-samples
    assert torch.load(copy / "vae.pt", weights_only=True)["epoch"] == 2


def test_cli_plot_and_evaluate_rebuild_from_the_checkpoint(hw5_vae, cli_run, cli):
    _, out_dir = cli_run
    for name in FIGURES:
        (out_dir / name).unlink()
    assert cli.invoke(hw5_vae.app, ["plot", "--out-dir", str(out_dir)]).exit_code == 0
    assert all((out_dir / name).is_file() for name in FIGURES)
    result = cli.invoke(hw5_vae.app, ["evaluate", "--out-dir", str(out_dir), "--iw-samples", "7"])
    assert result.exit_code == 0, result.output
    assert json.loads((out_dir / "metrics.json").read_text())["iw_samples"] == 7


def test_cli_evaluate_takes_the_defaults_for_settings_an_older_checkpoint_lacks(hw5_vae, cli_run, cli, tmp_path):
    _, out_dir = cli_run
    state = torch.load(out_dir / "vae.pt", weights_only=True)
    torch.save({key: state[key] for key in ("encoder", "decoder")} | {"config": {"latent_dim": 2}}, tmp_path / "vae.pt")
    result = cli.invoke(hw5_vae.app, ["evaluate", "--out-dir", str(tmp_path), "--iw-samples", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "metrics.json").read_text())["binarize"] == hw5_vae.Config.binarize


def test_cli_help_on_every_command(hw5_vae, cli):
    for command in ("train", "plot", "evaluate"):
        result = cli.invoke(hw5_vae.app, [command, "--help"])
        assert result.exit_code == 0 and "--out-dir" in result.output


def bad_files(tmp_path: Path) -> dict[str, Path]:
    """Data files that are not MNIST, each broken in a different way."""
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"this is not a zip archive")
    wrong_keys = tmp_path / "wrong_keys.npz"
    np.savez(wrong_keys, images=np.zeros((3, 28, 28)))
    wrong_shape = tmp_path / "wrong_shape.npz"
    np.savez(wrong_shape, x_train=np.zeros((3, 10), np.uint8), y_train=np.zeros(3), x_test=np.zeros((3, 10), np.uint8),
             y_test=np.zeros(3))
    text = tmp_path / "digits.txt"
    text.write_text("1 2 3")
    images = np.zeros((3, 28, 28), np.uint8)
    empty, one_hot, not_digits = tmp_path / "empty.npz", tmp_path / "one_hot.npz", tmp_path / "not_digits.npz"
    np.savez(empty, x_train=images[:0], y_train=np.zeros(0, np.int64), x_test=images, y_test=np.zeros(3, np.int64))
    np.savez(one_hot, x_train=images, y_train=np.eye(10)[:3], x_test=images, y_test=np.zeros(3, np.int64))
    np.savez(not_digits, x_train=images, y_train=np.array([3, 10, 12]), x_test=images, y_test=np.zeros(3, np.int64))
    return {"corrupt": corrupt, "wrong_keys": wrong_keys, "wrong_shape": wrong_shape, "text": text,
            "missing": tmp_path / "missing.npz", "empty": empty, "one_hot": one_hot, "not_digits": not_digits}


BAD_TRAIN_ARGS = {
    "zero epochs": ["--epochs", "0"],
    "one latent dimension": ["--latent-dim", "1"],  # the figures plot two
    "zero batch size": ["--batch-size", "0"],
    "negative lr": ["--lr", "-1"],
    "unknown binarization": ["--binarize", "halftone"],
    "unknown matmul precision": ["--matmul-precision", "low"],
    "unknown device": ["--device", "tpu"],
    "seed out of torch's range": ["--seed", "-1"],
    "missing cuda": ["--device", "cuda:7"],
    "resume without checkpoint": ["--resume", "--lr", "1"],  # and no note that --lr is ignored
    "infinite lr": ["--lr", "inf"],
    "not a number": ["--epochs", "many"],
    "unknown option": ["--epoch", "3"],
    "too few images for the figures": ["--train-size", "5"],  # the interpolation needs digits 0-3, 6 and 7
}


def assert_one_line_error(result) -> None:
    """Exit code 2 and the whole output one `Error: ...` line (no usage block, no traceback)."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output


@pytest.mark.parametrize("case", BAD_TRAIN_ARGS)
def test_cli_bad_options_exit_2_with_one_line(hw5_vae, case, cli, tmp_path, mnist_path):
    result = cli.invoke(hw5_vae.app, ["train", "--out-dir", str(tmp_path / "out"), "--data", str(mnist_path),
                                      *BAD_TRAIN_ARGS[case]])
    assert_one_line_error(result)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["corrupt", "wrong_keys", "wrong_shape", "text", "missing", "empty", "one_hot",
                                  "not_digits"])
def test_cli_bad_data_files_exit_2_with_one_line(hw5_vae, case, cli, tmp_path):
    result = cli.invoke(hw5_vae.app, ["train", "--out-dir", str(tmp_path / "out"),
                                      "--data", str(bad_files(tmp_path)[case])])
    assert_one_line_error(result)
    assert not (tmp_path / "out").exists()


def test_cli_bad_checkpoints_exit_2_with_one_line(hw5_vae, cli, tmp_path, cli_run):
    _, trained_dir = cli_run
    folders = empty, corrupt, other_arch, not_vae, mistyped = tuple(
        tmp_path / name for name in ("empty", "corrupt", "other", "not_vae", "mistyped"))
    for folder in folders:
        folder.mkdir()
    (corrupt / "vae.pt").write_bytes(b"\x80garbage")
    state = torch.load(trained_dir / "vae.pt", weights_only=True)
    torch.save({**state, "config": {**state["config"], "seed": "abc"}}, mistyped / "vae.pt")  # edited by hand
    state["config"]["hidden_units"] = 100  # weights of a 500-unit model under a 100-unit config
    torch.save(state, other_arch / "vae.pt")
    torch.save({"gen": {}, "disc": {}}, not_vae / "vae.pt")
    for folder in folders:
        for command in ("plot", "evaluate"):
            assert_one_line_error(cli.invoke(hw5_vae.app, [command, "--out-dir", str(folder)]))
    assert "unusable config (seed='abc')" in cli.invoke(hw5_vae.app, ["plot", "--out-dir", str(mistyped)]).stderr
    older = tmp_path / "older"
    older.mkdir()
    state["config"]["an_older_setting"] = 1  # a config this version's Config cannot rebuild
    torch.save(state, older / "vae.pt")
    before = (older / "vae.pt").read_bytes()
    result = cli.invoke(hw5_vae.app, ["train", "--resume", "--out-dir", str(older)])
    assert_one_line_error(result)
    assert "has an unusable config" in result.stderr and (older / "vae.pt").read_bytes() == before


def test_cli_unusable_out_dir_is_reported_before_training(hw5_vae, cli, tmp_path, mnist_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    for out_dir in (a_file, a_file / "vae"):
        for command in ("train", "plot", "evaluate"):
            result = cli.invoke(hw5_vae.app, [command, "--out-dir", str(out_dir), "--data", str(mnist_path)])
            assert_one_line_error(result)
            assert "is a file" in result.output, command
    assert a_file.read_text() == "mine"


def test_bad_input_never_touches_existing_outputs(hw5_vae, cli, tmp_path, cli_run):
    _, trained_dir = cli_run
    before = {path.name: path.read_bytes() for path in trained_dir.iterdir()}
    corrupt = bad_files(tmp_path)["corrupt"]
    for args in (["train", "--overwrite", "--device", "tpu"], ["train", "--overwrite", "--data", str(corrupt)],
                 ["plot", "--data", str(corrupt)], ["evaluate", "--data", str(corrupt)],
                 ["train", "--resume", "--lr", "1", "--data", str(corrupt)]):
        assert_one_line_error(cli.invoke(hw5_vae.app, [*args, "--out-dir", str(trained_dir)]))
    assert {path.name: path.read_bytes() for path in trained_dir.iterdir()} == before


def test_train_never_replaces_a_saved_run_by_accident(hw5_vae, cli, tmp_path, cli_run, mnist_path):
    """A plain `train` into a folder that holds a run stops with a one-line error and touches nothing; --resume
    continues it (tested above), --overwrite starts over, and the two together contradict each other."""
    _, trained_dir = cli_run
    before = {path.name: path.read_bytes() for path in trained_dir.iterdir()}
    short = ["--epochs", "1", "--train-size", "200", "--iw-samples", "5", "--data", str(mnist_path), "--device", "cpu"]
    result = cli.invoke(hw5_vae.app, ["train", *short, "--out-dir", str(trained_dir)])
    assert_one_line_error(result)
    assert "holds an earlier run" in result.stderr and "--overwrite" in result.stderr
    result = cli.invoke(hw5_vae.app, ["train", "--resume", "--overwrite", "--out-dir", str(trained_dir)])
    assert_one_line_error(result)
    assert "pass one" in result.stderr
    assert {path.name: path.read_bytes() for path in trained_dir.iterdir()} == before
    copy = tmp_path / "copy"
    shutil.copytree(trained_dir, copy)
    result = cli.invoke(hw5_vae.app, ["train", *short, "--overwrite", "--out-dir", str(copy)])
    assert result.exit_code == 0, result.output
    assert torch.load(copy / "vae.pt", weights_only=True)["epoch"] == 1  # the new run's (the old one trained 2)


def test_ctrl_c_during_the_figures_prints_a_resume_command_that_redoes_them(hw5_vae, cli, tmp_path, mnist_path,
                                                                            monkeypatch):
    original = hw5_vae.make_figures

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(hw5_vae, "make_figures", interrupted)
    result = cli.invoke(hw5_vae.app, ["train", "--epochs", "1", "--train-size", "200", "--iw-samples", "5",
                                      "--data", str(mnist_path), "--device", "cpu", "--out-dir", str(tmp_path)])
    assert result.exit_code == 130 and "Traceback" not in result.output
    resume = result.stderr.strip().splitlines()[-1].split()
    assert resume[resume.index("--resume"):] == ["--resume", "--epochs", "1", "--iw-samples", "5"]
    assert torch.load(tmp_path / "vae.pt", weights_only=True)["epoch"] == 1
    assert not (tmp_path / "metrics.json").exists()
    monkeypatch.setattr(hw5_vae, "make_figures", original)
    result = cli.invoke(hw5_vae.app, [*resume[2:], "--data", str(mnist_path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == 1
    assert (tmp_path / "data_space.png").exists()


def test_real_ctrl_c_in_a_subprocess_saves_and_prints_the_resume_command(hw5_vae, mnist_path, tmp_path):
    """SIGINT to a running `python hw5_vae.py train`: exit code 130, a loadable checkpoint, the resume command."""
    script = Path(hw5_vae.__file__)
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        process = subprocess.Popen([sys.executable, str(script), "train", "--epochs", "100000", "--train-size", "300",
                                    "--data", str(mnist_path), "--out-dir", str(tmp_path), "--device", "cpu"],
                                   stderr=stderr, stdout=subprocess.DEVNULL, cwd=script.parent,
                                   # a shell's background job ignores SIGINT, and its children inherit that
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not re.search(r"\| *[1-9]\d*/100000", log.read_text()):
                time.sleep(0.2)
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=60) == 130
        finally:  # never leave a 100000-epoch run behind
            if process.poll() is None:
                process.kill()
                process.wait()
    message = log.read_text()
    assert "Traceback" not in message
    assert f"python hw5_vae.py train --out-dir {tmp_path} --resume --epochs 100000 --iw-samples 1000" in message
    assert torch.load(tmp_path / "vae.pt", weights_only=True)["epoch"] >= 1
