"""Tests of hw5_diffusion.py (question 4), each against an independent reference.

4.a: the denoising loss against hand computations with known score functions; annealed Langevin dynamics
with the exact score of a Gaussian mixture. 4.b: a briefly trained model's score field against the exact score
of the noise-perturbed data. 4.c: its samples against the real-vs-real floor. Then the metrics, the command
line end to end, and bad inputs. Tests named after a handout item use only the course's public names.
"""
from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import hw5_diffusion

SHORT_ITERATIONS = 1500  # the 4.b / 4.c model: a short run of the default recipe


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Run this file's torch work on one thread: the same floating-point results on every machine (so the
    seeded checks behave alike everywhere), and no thread contention on a busy 2-core runner."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sigma_column(sigma, x: torch.Tensor) -> torch.Tensor:
    """σ as the score network may receive it (a float, (N,), (N, 1) or (N, 2)) -> (N, 1)."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return sigma.reshape(len(x), -1)[:, :1] if sigma.numel() >= len(x) else sigma.reshape(1, 1).expand(len(x), 1)


class KnownScore(nn.Module):
    """s(x̃, σ) = −(x̃ − m) / σ² + b. The loss term is then ‖(m − x) / σ² + b‖², whatever the noise drawn.

    Records every σ it is called with.
    """

    def __init__(self, m=(0.0, 0.0), b=(0.0, 0.0)) -> None:
        super().__init__()
        self.register_buffer("m", torch.tensor(m))
        self.register_buffer("b", torch.tensor(b))
        self.dummy = nn.Parameter(torch.zeros(()))  # so that the object looks like a trainable network
        self.sigmas_seen: list[torch.Tensor] = []

    def forward(self, x, sigma):
        sigma = sigma_column(sigma, x)
        self.sigmas_seen.append(sigma.detach().flatten())
        return -(x - self.m) / sigma ** 2 + self.b


class ZeroScore(KnownScore):
    def forward(self, x, sigma):
        super().forward(x, sigma)
        return torch.zeros_like(x)


class MixtureScore(nn.Module):
    """The exact score of NCSN's toy mixture 0.8 N((5, 5), I) + 0.2 N((−5, −5), I) perturbed by N(0, σ² I):
    Σ_k r_k(x) (μ_k − x) / (1 + σ²), with r_k the posterior weight of component k."""
    means = torch.tensor([[5.0, 5.0], [-5.0, -5.0]])
    weights = torch.tensor([0.8, 0.2])

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, sigma):
        variance = 1 + sigma_column(sigma, x) ** 2                                   # (N, 1)
        offsets = self.means[None] - x[:, None]                                        # (N, 2, 2)
        logits = self.weights.log() - offsets.square().sum(-1) / (2 * variance)        # (N, 2)
        return (logits.softmax(1)[..., None] * offsets).sum(1) / variance


def score_matching_with(scorenet: nn.Module):
    sm = hw5_diffusion.ScoreMatching()
    sm.scorenet = scorenet
    return sm


# ----------------------------------------------------------------------------------------------------
# 4.a: the loss


def test_4a_denoising_loss_matches_a_hand_computation():
    # σ = 0.5, m = (0.25, −0.5), b = (1, 0): the terms are ‖4 (m − x) + b‖² = 8, 104 and 52.
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-1.0, 0.5]])
    sm = score_matching_with(KnownScore(m=(0.25, -0.5), b=(1.0, 0.0)))
    torch.manual_seed(0)
    loss = sm.denoising_loss(x, torch.tensor([0.5]))
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(8 + 104 + 52, rel=1e-5)


def test_4a_denoising_loss_noise_has_standard_deviation_sigma():
    # With s = 0 each term is ‖(x̃ − x) / σ²‖² = ‖z‖² / σ², of mean 2 / σ² in 2-D: 8 at σ = 0.5.
    torch.manual_seed(0)
    n = 20000
    loss = score_matching_with(ZeroScore()).denoising_loss(torch.zeros(n, 2), torch.tensor([0.5]))
    assert loss.item() / n == pytest.approx(8.0, rel=0.05)


def test_4a_denoising_loss_draws_sigma_per_sample():
    # s = −x̃ / σ² leaves ‖x / σ²‖² = 1 / σ⁴ per point x = (1, 0): 16 at σ = 0.5, 1/16 at σ = 2. One σ per
    # sample averages to about 8.03; one σ for the whole batch would give 16 or 0.0625.
    torch.manual_seed(0)
    scorenet = KnownScore()
    n = 4000
    loss = score_matching_with(scorenet).denoising_loss(torch.tensor([[1.0, 0.0]]).repeat(n, 1),
                                                         torch.tensor([0.5, 2.0]))
    assert 7.0 < loss.item() / n < 9.0
    seen = torch.cat(scorenet.sigmas_seen)
    assert set(seen.unique().tolist()) == {0.5, 2.0}


def test_sigma_weighted_loss_is_the_ncsn_weighting():
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-1.0, 0.5]])
    sm = score_matching_with(KnownScore(m=(0.25, -0.5), b=(1.0, 0.0)))
    assert sm.denoising_loss(x, torch.tensor([0.5]), sigma_weighted=True).item() == pytest.approx(0.25 * 164, rel=1e-5)


def test_4a_generate_noise_levels_is_geometric():
    levels = torch.as_tensor(hw5_diffusion.generate_noise_levels(1.0, 0.01, 10)).flatten().double()
    ordered = levels.sort().values
    assert len(levels) == 10
    assert ordered[0].item() == pytest.approx(0.01, rel=1e-5) and ordered[-1].item() == pytest.approx(1.0, rel=1e-5)
    ratios = ordered[1:] / ordered[:-1]
    assert torch.allclose(ratios, torch.full_like(ratios, 100 ** (1 / 9)), rtol=1e-4)


# ----------------------------------------------------------------------------------------------------
# 4.a: the sampler


@pytest.mark.parametrize("order", ["largest first", "smallest first"])
def test_4a_langevin_step_sizes_follow_algorithm_1(order):
    # With s = 0, x moves by √α_i z only: after T steps at each level its variance grows by T Σ_i α_i, where
    # α_i = ε σ_i² / σ_L² and σ_L is the smallest level: 10 · 0.01 · (1 + 4) / 1 = 0.5.
    torch.manual_seed(0)
    levels = torch.tensor([2.0, 1.0] if order == "largest first" else [1.0, 2.0])
    x = score_matching_with(ZeroScore()).langevin_dynamics_sample(torch.zeros(20000, 2), levels, 10, 0.01)
    assert x.var(0).mean().item() == pytest.approx(0.5, rel=0.05)


@pytest.mark.parametrize("order", ["largest first", "smallest first"])
def test_4a_langevin_recovers_the_mixture_weights(order):
    # NCSN's example: annealed from σ = 20 down to σ = 1 (ε = 0.1, T = 100), samples from uniform noise must
    # split 0.8 / 0.2 between the modes and match p_σ=1 = Σ w_k N(μ_k, 2 I), whatever order the levels come in.
    torch.manual_seed(0)
    levels = torch.exp(torch.linspace(math.log(20.0), 0.0, 10))
    levels = levels if order == "largest first" else levels.flip(0)
    start = 16 * torch.rand(4000, 2) - 8
    x = score_matching_with(MixtureScore()).langevin_dynamics_sample(start, levels, 100, 0.1)
    upper = x.sum(1) > 0
    assert upper.float().mean().item() == pytest.approx(0.8, abs=0.03)
    for mode, chosen in ((torch.tensor([5.0, 5.0]), upper), (torch.tensor([-5.0, -5.0]), ~upper)):
        assert torch.allclose(x[chosen].mean(0), mode, atol=0.25)
        assert 1.6 < x[chosen].var(0).mean().item() < 2.5


def test_4a_langevin_without_annealing_misses_the_weights():
    # The control for the test above: at one small noise level the chains cannot cross between the modes, so
    # uniform noise splits about evenly (by the basins), not 0.8 / 0.2.
    torch.manual_seed(0)
    start = 16 * torch.rand(4000, 2) - 8
    x = score_matching_with(MixtureScore()).langevin_dynamics_sample(start, torch.tensor([1.0]), 1000, 0.1)
    assert abs((x.sum(1) > 0).float().mean().item() - 0.8) > 0.15


# ----------------------------------------------------------------------------------------------------
# 4.b and 4.c: a briefly trained default model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The default recipe on the CS446 cloud, SHORT_ITERATIONS iterations: (ScoreMatching, state, PointCloud)."""
    out_dir = tmp_path_factory.mktemp("diffusion")
    hw5_diffusion.run_training(hw5_diffusion.Config(iterations=SHORT_ITERATIONS), out_dir, device="cpu")
    return hw5_diffusion.restore(out_dir, device="cpu")


def perturbed_data_score(x: torch.Tensor, data: torch.Tensor, sigma: float) -> torch.Tensor:
    """The exact score of the data's empirical distribution blurred by N(0, σ² I), at x (M, 2) -> (M, 2)."""
    weights = (-torch.cdist(x, data) ** 2 / (2 * sigma ** 2)).softmax(1)
    return (weights @ data - x) / sigma ** 2


def score_agreement(scorenet: nn.Module, data: torch.Tensor, sigma: float) -> float:
    """Mean cosine between the network's score and the exact one at noisy data points x + σz."""
    generator = torch.Generator().manual_seed(0)
    x = data + sigma * torch.randn(data.shape, generator=generator)
    with torch.no_grad():
        learned = scorenet(x, sigma)
    return nn.functional.cosine_similarity(learned, perturbed_data_score(x, data, sigma), dim=1).mean().item()


def test_4b_score_field_points_toward_the_data(trained, tmp_path):
    sm, _, cloud = trained
    data = cloud.points
    sigma = 0.1 * data.std(0).square().mean().sqrt().item()
    assert score_agreement(sm.scorenet, data, sigma) > 0.85
    untrained = hw5_diffusion.build_model(hw5_diffusion.Config(), data)
    assert score_agreement(untrained, data, sigma) < 0.5  # the check tells a field that ignores the data's shape
    grid, scores = sm.plot_score(tmp_path / "score.png", sigma, data)
    assert (tmp_path / "score.png").stat().st_size > 10_000
    assert grid.shape == scores.shape and grid.shape[1] == 2 and len(grid) >= 100


def test_4c_samples_match_the_data(trained):
    sm, state, cloud = trained
    lr, seed = hw5_diffusion.sampling_defaults(sm, state, None, None)
    samples, _ = hw5_diffusion.generate(sm, 4000, hw5_diffusion.SAMPLING_ITERATIONS, lr, seed)
    assert samples.shape == (4000, 2) and torch.isfinite(samples).all()
    # two batches of 2000 against 10 fresh draws: a perfect sampler scores 0.7x-1.5x the floor in 90% of runs
    metrics = hw5_diffusion.evaluate(samples, cloud, seed=1, draws=10)
    assert metrics["sliced_w2_vs_floor"] < 1.75 and metrics["energy_distance_vs_floor"] < 1.75
    # the control: the starting noise is far from the data
    noise = hw5_diffusion.evaluate(sm.initial_random_samples(4000).cpu(), cloud, seed=1, draws=10)
    assert noise["sliced_w2_vs_floor"] > 10 and noise["energy_distance_vs_floor"] > 10


# ----------------------------------------------------------------------------------------------------
# The metrics


def test_distances_match_hand_computations():
    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]])
    # one point each: E‖X − Y‖ = 5, so the energy distance is √(2 · 5); projected on (cos θ, sin θ) the points
    # differ by 3 cos θ + 4 sin θ, whose mean square over θ is (9 + 16) / 2.
    assert hw5_diffusion.energy_distance(a, b) == pytest.approx(math.sqrt(10), rel=1e-6)
    assert hw5_diffusion.sliced_w2(a, b) == pytest.approx(math.sqrt(12.5), rel=1e-6)
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    assert hw5_diffusion.sliced_w2(x, x + torch.tensor([0.4, 0.0])) == pytest.approx(0.4 / math.sqrt(2), rel=1e-6)
    assert hw5_diffusion.energy_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_evaluate_puts_true_samples_at_the_floor_and_finds_mode_weights():
    cloud = hw5_diffusion.PointCloud("mixture", hw5_diffusion.sample_mixture(500, torch.Generator().manual_seed(0)),
                                     hw5_diffusion.sample_mixture)
    fresh = hw5_diffusion.sample_mixture(2500, torch.Generator().manual_seed(1))
    metrics = hw5_diffusion.evaluate(fresh, cloud, seed=2, size=500)
    assert 0.7 < metrics["sliced_w2_vs_floor"] < 1.4 and 0.7 < metrics["energy_distance_vs_floor"] < 1.4
    assert metrics["mode_weights"] == pytest.approx([0.8, 0.2], abs=0.03)
    # the control: shifted by 2 (the modes are 14 apart, so the sliced W2 floor is large: weight noise)
    shifted = hw5_diffusion.evaluate(fresh + torch.tensor([2.0, 0.0]), cloud, seed=2, size=500)
    assert shifted["sliced_w2_vs_floor"] > 1.5 and shifted["energy_distance_vs_floor"] > 4


@pytest.mark.parametrize("name", sorted(hw5_diffusion.DATASETS))
def test_datasets_are_reproducible_point_clouds(name):
    sampler = hw5_diffusion.DATASETS[name]
    points = sampler(500, torch.Generator().manual_seed(3))
    assert points.shape == (500, 2) and points.dtype == torch.float32 and torch.isfinite(points).all()
    assert torch.equal(points, sampler(500, torch.Generator().manual_seed(3)))
    if name == "cs446":  # the text, 4 units wide, centred
        assert points[:, 0].min() > -2.01 and points[:, 0].max() < 2.01 and points[:, 0].max() > 1.9


# ----------------------------------------------------------------------------------------------------
# The command line


def run(cli, *args):
    return cli.invoke(hw5_diffusion.app, [str(arg) for arg in args])


def assert_one_line_error(result, fragment: str):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and fragment in lines[0], result.stderr


def test_cli_train_sample_plot_evaluate_resume(cli, tmp_path):
    out = tmp_path / "run"
    small = ("--n-points", 300, "--out-dir", out)
    assert run(cli, "train", "--iterations", 30, *small).exit_code == 0
    state = torch.load(out / "model.pt", weights_only=True)
    assert {"model", "config", "noise_levels"} <= set(state) and state["iteration"] == 30
    levels = state["noise_levels"]
    assert len(levels) == 10 and levels[0] > levels[-1]
    result = run(cli, "sample", "--n-samples", 300, "--sampling-iterations", 3, "--out-dir", out)
    assert result.exit_code == 0, result.output
    assert np.load(out / "samples.npy").shape == (300, 2)
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("sliced_w2", "energy_distance", "floor_sliced_w2", "floor_energy_distance", "train_seconds",
                "dataset"):
        assert key in metrics
    assert metrics["dataset"] == "cs446"
    for name in ("data", "loss_curve", "score_field", "samples", "snapshots", "trajectories"):
        assert (out / f"{name}.png").stat().st_size > 5_000, name
    assert (out / "sampling.gif").stat().st_size > 5_000
    assert run(cli, "plot-score", "--sigma", 0.2, "--out-dir", out).exit_code == 0
    assert run(cli, "evaluate", "--sampling-iterations", 2, "--out-dir", out).exit_code == 0
    assert run(cli, "train", "--resume", "--iterations", 45, "--out-dir", out).exit_code == 0
    assert torch.load(out / "model.pt", weights_only=True)["iteration"] == 45


def test_cli_train_on_own_data_adapts_noise_levels(cli, tmp_path):
    points = hw5_diffusion.sample_glyphs(300, torch.Generator().manual_seed(0)) / 4.4 + 0.5  # inside [0, 1]²
    np.save(tmp_path / "mine.npy", points.numpy())
    out = tmp_path / "run"
    assert run(cli, "train", "--data", tmp_path / "mine.npy", "--iterations", 10, "--out-dir", out).exit_code == 0
    state = torch.load(out / "model.pt", weights_only=True)
    diameter = torch.cdist(points, points).max().item()
    assert state["noise_levels"].max().item() == pytest.approx(diameter, rel=1e-4)
    assert state["noise_levels"].min().item() < 0.01
    assert torch.equal(state["data"], points)


def test_cli_sample_trains_first_on_a_fresh_checkout(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(hw5_diffusion, "Config", functools.partial(hw5_diffusion.Config, iterations=20,
                                                                   n_points=200))
    result = run(cli, "sample", "--n-samples", 100, "--sampling-iterations", 2, "--out-dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert "no checkpoint" in result.stderr
    assert (tmp_path / "model.pt").exists() and (tmp_path / "metrics.json").exists()


def test_interrupted_training_saves_and_resumes(tmp_path, monkeypatch):
    cfg = hw5_diffusion.Config(iterations=250, n_points=200)
    original = hw5_diffusion.learning_rate

    def interrupt_at_150(iteration, config):
        if iteration == 150:
            raise KeyboardInterrupt
        return original(iteration, config)

    monkeypatch.setattr(hw5_diffusion, "learning_rate", interrupt_at_150)
    with pytest.raises(KeyboardInterrupt):
        hw5_diffusion.run_training(cfg, tmp_path, device="cpu")
    assert torch.load(tmp_path / "model.pt", weights_only=True)["iteration"] == 100  # the last snapshot
    monkeypatch.setattr(hw5_diffusion, "learning_rate", original)
    state = hw5_diffusion.run_training(cfg, tmp_path, device="cpu", resume=True)
    assert state["iteration"] == 250 and len(state["history"]) == 250


@pytest.fixture
def bad_files(tmp_path):
    np.save(tmp_path / "three_columns.npy", np.zeros((10, 3)))
    np.save(tmp_path / "nan.npy", np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]))
    np.save(tmp_path / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    (tmp_path / "text.npy").write_text("not an array")
    return tmp_path


@pytest.mark.parametrize("args, fragment", [
    (("train", "--data", "missing.npy"), "no data file"),
    (("train", "--data", "three_columns.npy"), "shape (10, 3)"),
    (("train", "--data", "nan.npy"), "NaN"),
    (("train", "--data", "strings.npy"), "<U1"),
    (("train", "--data", "text.npy"), "cannot read"),
    (("train", "--dataset", "spirals"), "unknown dataset 'spirals'"),
    (("train", "--sigma-min", "2", "--sigma-max", "1"), "sigma-min"),
    (("train", "--lr", "0"), "--lr must be > 0"),
    (("train", "--device", "tpu"), "unknown device"),
    (("sample", "--sampling-lr", "-1"), "--sampling-lr must be > 0"),
    (("plot-score", "--sigma", "0"), "--sigma must be > 0"),
])
def test_cli_bad_inputs_fail_in_one_line_and_keep_the_model(cli, bad_files, args, fragment):
    out = bad_files / "out"
    out.mkdir()
    (out / "model.pt").write_bytes(b"an earlier model")
    args = [bad_files / arg if arg.endswith(".npy") else arg for arg in args]
    assert_one_line_error(run(cli, *args, "--out-dir", out), fragment)
    assert (out / "model.pt").read_bytes() == b"an earlier model"
    assert sorted(path.name for path in out.iterdir()) == ["model.pt"]


def test_cli_needs_a_readable_checkpoint(cli, tmp_path):
    assert_one_line_error(run(cli, "evaluate", "--out-dir", tmp_path), "no checkpoint")
    (tmp_path / "model.pt").write_bytes(b"garbage")
    assert_one_line_error(run(cli, "plot-score", "--out-dir", tmp_path), "cannot read checkpoint")
    torch.save({"encoder": {}, "decoder": {}}, tmp_path / "model.pt")
    assert_one_line_error(run(cli, "sample", "--out-dir", tmp_path), "missing model")
