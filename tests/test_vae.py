"""Tests of hw5_vae.py, named after the handout's items (question 2).

Every function is checked against an independent reference: torch.distributions, a closed form, exact
quadrature over a 1-D latent, or the course's own loops; never against itself.
"""
from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, MultivariateNormal, Normal
from typer.testing import CliRunner

import hw5_utils
import hw5_vae
from hw5_vae import VAE, Decoder, Encoder

# ----------------------------------------------------------------------------------------------------
# 2.a  Encoder and decoder


def linear_layers(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def test_2a_decoder_architecture_and_forward():
    """Decoder: Linear(latent, 500) -> tanh -> Linear(500, 784) -> sigmoid, output (B, 784) in (0, 1)."""
    torch.manual_seed(0)
    decoder = Decoder(2, 500, 784)
    first, second = linear_layers(decoder)
    assert (first.in_features, first.out_features, second.in_features, second.out_features) == (2, 500, 500, 784)
    z = torch.randn(7, 2)
    expected = torch.sigmoid(second.weight @ torch.tanh(first.weight @ z.T + first.bias[:, None]) + second.bias[:, None]).T
    p = decoder(z)
    assert p.shape == (7, 784)
    torch.testing.assert_close(p, expected)
    assert bool(((p > 0) & (p < 1)).all())


def test_2a_encoder_outputs_mean_and_positive_variance():
    """Encoder: tanh hidden layer, then a mean head and a log-variance head: (B, 784) -> (B, L), (B, L) > 0."""
    torch.manual_seed(0)
    encoder = Encoder(3, 500, 784)
    hidden, mu_head, log_var_head = linear_layers(encoder)
    x = torch.rand(5, 784).round()
    h = torch.tanh(x @ hidden.weight.T + hidden.bias)
    mu, sigma_square = encoder(x)
    torch.testing.assert_close(mu, h @ mu_head.weight.T + mu_head.bias)
    torch.testing.assert_close(sigma_square, torch.exp(h @ log_var_head.weight.T + log_var_head.bias))
    assert mu.shape == sigma_square.shape == (5, 3)


# ----------------------------------------------------------------------------------------------------
# 2.b  Densities and samplers


def test_2b_i_logpdf_diagonal_gaussian_matches_torch_distributions():
    torch.manual_seed(1)
    z, mu = torch.randn(6, 4), torch.randn(6, 4)
    sigma_square = torch.rand(6, 4) + 0.1
    expected = Independent(Normal(mu, sigma_square.sqrt()), 1).log_prob(z)
    logprob = VAE.logpdf_diagonal_gaussian(z, mu, sigma_square)
    assert logprob.shape == (6,)
    torch.testing.assert_close(logprob, expected)
    # The same density as a full-covariance Gaussian with a diagonal covariance matrix.
    torch.testing.assert_close(logprob[0], MultivariateNormal(mu[0], torch.diag(sigma_square[0])).log_prob(z[0]))


def test_2b_i_logpdf_diagonal_gaussian_broadcasts_a_prior_of_shape_latent():
    torch.manual_seed(2)
    z = torch.randn(5, 3)
    logprob = VAE.logpdf_diagonal_gaussian(z, torch.zeros(3), torch.ones(3))
    assert logprob.shape == (5,)
    torch.testing.assert_close(logprob, -0.5 * (z ** 2).sum(1) - 1.5 * math.log(2 * math.pi))


def test_2b_ii_logpdf_bernoulli_matches_torch_distributions():
    torch.manual_seed(3)
    p = torch.rand(4, 784) * 0.98 + 0.01
    x = torch.bernoulli(torch.rand(4, 784))
    logprob = VAE.logpdf_bernoulli(x, p)
    assert logprob.shape == (4,)
    torch.testing.assert_close(logprob, Bernoulli(probs=p).log_prob(x).sum(1), rtol=1e-5, atol=1e-3)


def test_2b_ii_logpdf_bernoulli_is_finite_at_saturated_probabilities():
    """p exactly 0 or 1 (a saturated sigmoid) where x agrees: log-probability 0, finite gradient."""
    x = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    p = torch.tensor([[1.0, 0.0, 0.5, 0.5]], requires_grad=True)
    logprob = VAE.logpdf_bernoulli(x, p)
    torch.testing.assert_close(logprob, torch.tensor([2 * math.log(0.5)]))
    logprob.sum().backward()
    assert torch.isfinite(p.grad).all()
    # Disagreeing pixels are heavily penalized but never -inf or NaN.
    worst = VAE.logpdf_bernoulli(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]]))
    assert torch.isfinite(worst).all() and worst.item() < -100


def test_2b_iii_sample_diagonal_gaussian_statistics():
    torch.manual_seed(4)
    mu = torch.tensor([[-2.0, 0.5, 3.0]]).expand(200_000, 3)
    sigma_square = torch.tensor([[0.25, 1.0, 4.0]]).expand(200_000, 3)
    z = VAE.sample_diagonal_gaussian(mu, sigma_square)
    assert z.shape == (200_000, 3)
    # Standard errors: mean sigma/sqrt(n) <= 0.0045, variance ~ sigma^2 * sqrt(2/n) <= 0.013; 5 s.e. margins.
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.025, rtol=0)
    torch.testing.assert_close(z.var(0), sigma_square[0], atol=0.07, rtol=0)


def test_2b_iii_sample_diagonal_gaussian_is_reparameterized():
    """z = mu + sigma * eps: dz/dmu = 1 and dz/dsigma_square = eps / (2 sigma) = (z - mu) / (2 sigma_square)."""
    torch.manual_seed(5)
    mu = torch.randn(8, 2, requires_grad=True)
    sigma_square = (torch.rand(8, 2) + 0.5).requires_grad_()
    z = VAE.sample_diagonal_gaussian(mu, sigma_square)
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones(8, 2))
    torch.testing.assert_close(sigma_square.grad, ((z - mu) / (2 * sigma_square)).detach())


def test_2b_iv_sample_bernoulli_values_dtype_and_mean():
    torch.manual_seed(6)
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).expand(100_000, 5)
    x = VAE.sample_Bernoulli(p)
    assert x.dtype == torch.float32 and x.shape == p.shape
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(x.mean(0), p[0], atol=0.008, rtol=0)  # 5 s.e. of a mean of 1e5 draws


# ----------------------------------------------------------------------------------------------------
# 2.c  sample_z and the ELBO


def test_2c_sample_z_draws_from_q():
    torch.manual_seed(7)
    vae = VAE(2, 16, 10)
    mu, sigma_square = torch.tensor([[1.0, -1.0]]).expand(100_000, 2), torch.tensor([[0.5, 2.0]]).expand(100_000, 2)
    z = vae.sample_z(mu, sigma_square)
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.03, rtol=0)
    torch.testing.assert_close(z.var(0), sigma_square[0], atol=0.06, rtol=0)


def test_2c_elbo_loss_matches_torch_distributions():
    """ELBO (Eq. 2) = batch mean of log p(x|z) + log p(z) - log q(z|x), a scalar."""
    torch.manual_seed(8)
    z, mu = torch.randn(5, 2), torch.randn(5, 2)
    sigma_square = torch.rand(5, 2) + 0.2
    x, p = torch.bernoulli(torch.rand(5, 784)), torch.rand(5, 784) * 0.9 + 0.05
    expected = (Bernoulli(probs=p).log_prob(x).sum(1) + Normal(0.0, 1.0).log_prob(z).sum(1)
                - Normal(mu, sigma_square.sqrt()).log_prob(z).sum(1)).mean()
    elbo = VAE(2, 500, 784).elbo_loss(z, mu, sigma_square, x, p)
    assert elbo.dim() == 0
    torch.testing.assert_close(elbo, expected, rtol=1e-5, atol=1e-3)


def test_2c_elbo_sign_and_scale_on_real_mnist(mnist_path):
    """An untrained decoder says p ~ 0.5 for every pixel: ELBO ~ 784 log 0.5 = -543 nats (a sum over pixels)."""
    data = hw5_utils.load_mnist(mnist_path, train_size=500, binarize="round")
    torch.manual_seed(9)
    elbo = VAE()(data.train_images).item()
    assert -620 < elbo < -520


def test_interpolate_mu_is_the_convex_combination():
    mua, mub = torch.tensor([1.0, 2.0]), torch.tensor([-3.0, 0.0])
    torch.testing.assert_close(VAE.interpolate_mu(mua, mub, 0.0), mub)
    torch.testing.assert_close(VAE.interpolate_mu(mua, mub, 1.0), mua)
    torch.testing.assert_close(VAE.interpolate_mu(mua, mub, 0.3), torch.tensor([0.3 - 2.1, 0.6]))


# ----------------------------------------------------------------------------------------------------
# Evaluation: ELBO and IWAE against exact quadrature over a one-dimensional latent


def test_evaluate_matches_exact_likelihood_of_a_small_model():
    """With z in R^1, log p(x) and the ELBO are integrals we can take on a grid: IWAE -> log p(x) >= ELBO."""
    torch.manual_seed(10)
    vae = VAE(latent_dimension=1, hidden_units=8, data_dimension=6).double()
    with torch.no_grad():
        for layer in linear_layers(vae.decoder):
            layer.weight.mul_(3.0)  # a decoder whose output depends strongly on z: a non-trivial posterior
    x = torch.bernoulli(torch.full((4, 6), 0.5, dtype=torch.float64))
    z = torch.linspace(-12, 12, 24001, dtype=torch.float64)
    log_joint = VAE.logpdf_bernoulli(x[:, None, :], vae.decoder(z[:, None])[None]) + Normal(0.0, 1.0).log_prob(z)
    exact_log_px = torch.logsumexp(log_joint, 1) + math.log(z[1] - z[0])
    mu, sigma_square = vae.encoder(x)
    q = Normal(mu, sigma_square.sqrt())
    exact_elbo = (q.log_prob(z).exp() * (log_joint - q.log_prob(z))).sum(1) * (z[1] - z[0])

    metrics = hw5_vae.evaluate(vae, x, iw_samples=20000, seed=0)
    assert metrics["iw_samples"] == 20000
    assert metrics["test_iwae_ll"] == pytest.approx(exact_log_px.mean().item(), abs=0.01)
    assert metrics["test_elbo"] == pytest.approx(exact_elbo.mean().item(), abs=0.03)
    assert exact_elbo.mean() < exact_log_px.mean() - 0.05  # the bounds differ, so the checks above are sharp


# ----------------------------------------------------------------------------------------------------
# 2.d  Training on real MNIST


def short_run(mnist_path: Path, out_dir: Path, epochs: int, **overrides) -> hw5_vae.Config:
    cfg = hw5_vae.Config(epochs=epochs, train_size=1000, data=str(mnist_path), **overrides)
    hw5_vae.run_training(cfg, out_dir, device="cpu", iw_samples=5)
    return cfg


def test_2d_short_training_improves_the_test_elbo(mnist_path, tmp_path):
    data = hw5_utils.load_mnist(mnist_path, train_size=2000)
    torch.manual_seed(11)
    vae = VAE()
    with torch.no_grad():
        before = vae(data.test_images).item()
    cfg = hw5_vae.Config(epochs=4, train_size=2000)
    optimizer = torch.optim.Adam(vae.parameters(), lr=cfg.lr)
    state = hw5_vae.fit(vae, optimizer, data, cfg, hw5_utils.Checkpointer(tmp_path / "vae.pt", ""),
                        {"epoch": 0, "history": {}, "train_seconds": 0.0})
    after = hw5_vae.evaluate(vae, data.test_images, iw_samples=20)
    assert before < -500
    assert after["test_elbo"] > -215, after  # 4 epochs of 2000 digits already reach about -200
    assert after["test_iwae_ll"] >= after["test_elbo"]
    assert len(state["history"]["train_elbo"]) == 4 and state["epoch"] == 4


# ----------------------------------------------------------------------------------------------------
# 2.e  Figures (each returns what it drew)


@pytest.fixture(scope="module")
def trained(mnist_path, tmp_path_factory):
    """A VAE trained briefly on 2000 real digits, with its data."""
    data = hw5_utils.load_mnist(mnist_path, train_size=2000)
    torch.manual_seed(12)
    vae = VAE()
    cfg = hw5_vae.Config(epochs=6, train_size=2000)
    hw5_vae.fit(vae, torch.optim.Adam(vae.parameters(), lr=1e-3), data, cfg,
                hw5_utils.Checkpointer(tmp_path_factory.mktemp("fig") / "vae.pt", ""),
                {"epoch": 0, "history": {}, "train_seconds": 0.0})
    return vae, data


def test_2e_i_data_space_shows_means_and_bernoulli_samples(trained, tmp_path):
    vae, _ = trained
    torch.manual_seed(13)
    images = vae.visualize_data_space(tmp_path / "data_space.png")
    assert images.shape == (10, 2, 784)
    means, samples = images[:, 0], images[:, 1]
    assert set(samples.unique().tolist()) <= {0.0, 1.0}
    assert not set(means.unique().tolist()) <= {0.0, 1.0}
    # Bernoulli samples agree with their means: the mean's log-likelihood of its own sample is far above
    # that of a sample from another row's mean.
    own = VAE.logpdf_bernoulli(samples, means)
    other = VAE.logpdf_bernoulli(samples.roll(1, 0), means)
    assert (own > other).float().mean() >= 0.8
    assert (tmp_path / "data_space.png").stat().st_size > 5000


def test_2e_ii_latent_space_plots_one_mean_per_training_image(trained, tmp_path):
    vae, data = trained
    images = data.train_images.round()
    mu = vae.visualize_latent_space(images, data.train_labels, tmp_path / "latent.png")
    torch.testing.assert_close(mu, vae.encoder(images)[0])
    # Labels separate in latent space: nearest class centroid classifies well above chance (10%).
    centroids = torch.stack([mu[data.train_labels == d].mean(0) for d in range(10)])
    accuracy = ((torch.cdist(mu, centroids).argmin(1) == data.train_labels).float().mean()).item()
    assert accuracy > 0.4
    assert (tmp_path / "latent.png").stat().st_size > 5000


def test_2e_iii_interpolation_three_pairs_eleven_alphas(trained, tmp_path):
    """Each row decodes alpha*z_b + (1-alpha)*z_a for alpha = 0, 0.1, ..., 1 between the means of two images
    of different digits (the same pair is found back from the row's end points)."""
    vae, data = trained
    images, labels = data.train_images.round(), data.train_labels
    decoded = vae.visualize_inter_class_interpolation(images, labels, tmp_path / "interp.png")
    assert decoded.shape == (3, 11, 784)
    mu = vae.encoder(images)[0]
    for row, (a, b) in zip(decoded, hw5_vae.INTERPOLATION_PAIRS):
        assert a != b
        z_a = mu[labels == a][torch.cdist(row[:1], vae.decoder(mu[labels == a])).argmin()]
        z_b = mu[labels == b][torch.cdist(row[-1:], vae.decoder(mu[labels == b])).argmin()]
        for k in range(11):
            torch.testing.assert_close(row[k], vae.decoder((1 - k / 10) * z_a + k / 10 * z_b), atol=1e-5, rtol=0)
    assert (tmp_path / "interp.png").stat().st_size > 5000


def test_manifold_grid_decodes_prior_quantiles(trained, tmp_path):
    vae, _ = trained
    images = vae.visualize_manifold(tmp_path / "manifold.png", n=5)
    assert images.shape == (5, 5, 784)
    corner = torch.tensor([[Normal(0, 1).icdf(torch.tensor(0.05)).item(), Normal(0, 1).icdf(torch.tensor(0.95)).item()]])
    torch.testing.assert_close(images[0, 0], vae.decoder(corner)[0])  # top-left: low z1, high z2


# ----------------------------------------------------------------------------------------------------
# Resume, Ctrl-C and NaN safety


def saved_weights(out_dir: Path) -> dict:
    state = torch.load(out_dir / "vae.pt", weights_only=True)
    return {**{f"enc.{k}": v for k, v in state["encoder"].items()}, **{f"dec.{k}": v for k, v in state["decoder"].items()}}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_ends_with_exactly_the_weights_of_an_uninterrupted_run(mnist_path, tmp_path):
    short_run(mnist_path, tmp_path / "straight", epochs=4)
    short_run(mnist_path, tmp_path / "resumed", epochs=2)
    hw5_vae.run_training(hw5_vae.Config(epochs=4), tmp_path / "resumed", device="cpu", resume=True, iw_samples=5)
    assert_same_weights(saved_weights(tmp_path / "straight"), saved_weights(tmp_path / "resumed"))
    assert torch.load(tmp_path / "resumed" / "vae.pt", weights_only=True)["epoch"] == 4


def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(mnist_path, tmp_path, monkeypatch, capsys):
    short_run(mnist_path, tmp_path / "straight", epochs=3)
    calls = {"n": 0}
    original_forward = VAE.forward

    def interrupted_forward(self, x):
        calls["n"] += 1
        if calls["n"] == 25:  # in the third epoch (10 batches per epoch)
            raise KeyboardInterrupt
        return original_forward(self, x)

    monkeypatch.setattr(VAE, "forward", interrupted_forward)
    with pytest.raises(KeyboardInterrupt):
        short_run(mnist_path, tmp_path / "resumed", epochs=3)
    assert "--resume" in capsys.readouterr().err
    assert torch.load(tmp_path / "resumed" / "vae.pt", weights_only=True)["epoch"] == 2
    monkeypatch.setattr(VAE, "forward", original_forward)
    hw5_vae.run_training(hw5_vae.Config(epochs=3), tmp_path / "resumed", device="cpu", resume=True, iw_samples=5)
    assert_same_weights(saved_weights(tmp_path / "straight"), saved_weights(tmp_path / "resumed"))


def test_nan_loss_stops_with_the_last_good_checkpoint(mnist_path, tmp_path, monkeypatch):
    calls = {"n": 0}
    original_elbo = VAE.elbo_loss

    def elbo_turning_nan(self, *args):
        calls["n"] += 1
        value = original_elbo(self, *args)
        return value * float("nan") if calls["n"] > 15 else value  # NaN from the second epoch on

    monkeypatch.setattr(VAE, "elbo_loss", elbo_turning_nan)
    with pytest.raises(hw5_utils.UserError, match="nan.*last good checkpoint"):
        short_run(mnist_path, tmp_path, epochs=5)
    state = torch.load(tmp_path / "vae.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["decoder"].values())


# ----------------------------------------------------------------------------------------------------
# Command line, end to end

FIGURES = ("data_space.png", "latent_space.png", "interpolation.png", "manifold.png", "learning_curve.png")


@pytest.fixture(scope="module")
def cli_run(mnist_path, tmp_path_factory):
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


def test_cli_plot_and_evaluate_rebuild_from_the_checkpoint(cli_run, cli):
    _, out_dir = cli_run
    for name in FIGURES:
        (out_dir / name).unlink()
    assert cli.invoke(hw5_vae.app, ["plot", "--out-dir", str(out_dir)]).exit_code == 0
    assert all((out_dir / name).is_file() for name in FIGURES)
    result = cli.invoke(hw5_vae.app, ["evaluate", "--out-dir", str(out_dir), "--iw-samples", "7"])
    assert result.exit_code == 0, result.output
    assert json.loads((out_dir / "metrics.json").read_text())["iw_samples"] == 7


def test_cli_help_on_every_command(cli):
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
    return {"corrupt": corrupt, "wrong_keys": wrong_keys, "wrong_shape": wrong_shape, "text": text,
            "missing": tmp_path / "missing.npz"}


BAD_TRAIN_ARGS = {
    "zero epochs": ["--epochs", "0"],
    "zero batch size": ["--batch-size", "0"],
    "negative lr": ["--lr", "-1"],
    "unknown binarization": ["--binarize", "halftone"],
    "unknown device": ["--device", "tpu"],
    "missing cuda": ["--device", "cuda:7"],
    "resume without checkpoint": ["--resume"],
}


def assert_one_line_error(result) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1, result.output


@pytest.mark.parametrize("case", BAD_TRAIN_ARGS)
def test_cli_bad_options_exit_2_with_one_line(case, cli, tmp_path, mnist_path):
    result = cli.invoke(hw5_vae.app, ["train", "--out-dir", str(tmp_path / "out"), "--data", str(mnist_path),
                                      *BAD_TRAIN_ARGS[case]])
    assert_one_line_error(result)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["corrupt", "wrong_keys", "wrong_shape", "text", "missing"])
def test_cli_bad_data_files_exit_2_with_one_line(case, cli, tmp_path):
    result = cli.invoke(hw5_vae.app, ["train", "--out-dir", str(tmp_path / "out"),
                                      "--data", str(bad_files(tmp_path)[case])])
    assert_one_line_error(result)
    assert not (tmp_path / "out").exists()


def test_cli_bad_checkpoints_exit_2_with_one_line(cli, tmp_path, cli_run):
    _, trained_dir = cli_run
    empty, corrupt, other_arch, not_vae = (tmp_path / name for name in ("empty", "corrupt", "other", "not_vae"))
    for folder in (empty, corrupt, other_arch, not_vae):
        folder.mkdir()
    (corrupt / "vae.pt").write_bytes(b"\x80garbage")
    state = torch.load(trained_dir / "vae.pt", weights_only=True)
    state["config"]["hidden_units"] = 100  # weights of a 500-unit model under a 100-unit config
    torch.save(state, other_arch / "vae.pt")
    torch.save({"gen": {}, "disc": {}}, not_vae / "vae.pt")
    for folder in (empty, corrupt, other_arch, not_vae):
        for command in ("plot", "evaluate"):
            assert_one_line_error(cli.invoke(hw5_vae.app, [command, "--out-dir", str(folder)]))


def test_bad_input_never_touches_existing_outputs(cli, tmp_path, cli_run):
    _, trained_dir = cli_run
    before = {path.name: path.read_bytes() for path in trained_dir.iterdir()}
    corrupt = bad_files(tmp_path)["corrupt"]
    for args in (["train", "--device", "tpu"], ["train", "--data", str(corrupt)], ["plot", "--data", str(corrupt)],
                 ["evaluate", "--data", str(corrupt)], ["train", "--resume", "--data", str(corrupt)]):
        assert_one_line_error(cli.invoke(hw5_vae.app, [*args, "--out-dir", str(trained_dir)]))
    assert {path.name: path.read_bytes() for path in trained_dir.iterdir()} == before


def test_real_ctrl_c_in_a_subprocess_saves_and_prints_the_resume_command(mnist_path, tmp_path):
    """SIGINT to a running `python hw5_vae.py train`: exit code 130, a loadable checkpoint, the resume command."""
    script = Path(hw5_vae.__file__)
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        process = subprocess.Popen([sys.executable, str(script), "train", "--epochs", "100000", "--train-size", "300",
                                    "--data", str(mnist_path), "--out-dir", str(tmp_path), "--device", "cpu"],
                                   stderr=stderr, stdout=subprocess.DEVNULL, cwd=script.parent)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not re.search(r"\| *[1-9]\d*/100000", log.read_text()):
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
    message = log.read_text()
    assert "Traceback" not in message
    assert f"python hw5_vae.py train --resume --epochs 100000 --out-dir {tmp_path}" in message
    assert torch.load(tmp_path / "vae.pt", weights_only=True)["epoch"] >= 1
