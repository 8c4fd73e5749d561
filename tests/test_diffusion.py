"""Tests of hw5_diffusion.py's trainer around the course's API (not graded: both editions' APIs are graded by
test_grade_diffusion_fa22.py and test_grade_diffusion_sp24.py, and checked end to end by test_course_api.py): the
noise levels, the sampler's details, the default recipe briefly trained, the metrics, the data sets, the
Spring-2024 recipe, the command line and bad inputs. Each against an independent reference.
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import hw5_utils
from scores import DATA, NCSN_MIXTURE, KnownScore, Mixture, MixtureScore, energy_distance, geometric, sliced_w2

SHORT_ITERATIONS = 1500  # the reference's default recipe, briefly trained


# conftest: one thread gives the same floating-point results on every machine (the seeded checks behave alike)
# and no thread contention on a busy 2-core runner
pytestmark = pytest.mark.usefixtures("one_thread")


def score_matching_with(hw5_diffusion, scorenet: nn.Module):
    """The script's ScoreMatching() with a stand-in score network."""
    sm = hw5_diffusion.ScoreMatching()
    sm.scorenet = scorenet
    return sm


# ----------------------------------------------------------------------------------------------------
# Noise levels, the weighted loss, the sampler's order


def test_one_noise_level_is_sigma_max_and_a_note_says_sigma_min_is_unused(hw5_diffusion, capsys):
    points = torch.randn(50, 2)
    levels = hw5_diffusion.default_noise_levels(points, sigma_max=2.0, sigma_min=0.1, num_levels=1)
    assert levels.tolist() == [pytest.approx(2.0)]
    assert "--sigma-min is not used" in capsys.readouterr().err
    tiny = hw5_diffusion.default_noise_levels(points, sigma_max=1e-3, sigma_min=None, num_levels=1)
    assert tiny.tolist() == [pytest.approx(1e-3)]  # below the default sigma-min, which plays no part
    assert capsys.readouterr().err == ""
    hw5_diffusion.default_noise_levels(points, sigma_max=2.0, sigma_min=0.1, num_levels=2)
    assert capsys.readouterr().err == ""


def test_sigma_weighted_loss_is_the_ncsn_weighting(hw5_diffusion):
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-1.0, 0.5]])
    sm = score_matching_with(hw5_diffusion, KnownScore(m=(0.25, -0.5), b=(1.0, 0.0)))
    assert sm.denoising_loss(x, torch.tensor([0.5]), sigma_weighted=True).item() == pytest.approx(0.25 * 164, rel=1e-5)


def test_langevin_sorts_the_levels_given_in_either_order(hw5_diffusion):
    # The reference anneals largest first whatever the order given: the same samples either way.
    start = 16 * torch.rand(500, 2, generator=torch.Generator().manual_seed(0)) - 8
    sm = score_matching_with(hw5_diffusion, MixtureScore(NCSN_MIXTURE))
    runs = []
    for levels in (geometric(20.0, 1.0, 5), geometric(1.0, 20.0, 5)):
        torch.manual_seed(0)
        runs.append(sm.langevin_dynamics_sample(start, levels, 20, 0.1))
    torch.testing.assert_close(runs[0], runs[1])


def test_langevin_without_annealing_misses_the_weights(hw5_diffusion):
    # The control for the test above: at one small noise level the chains cannot cross between the modes, so
    # uniform noise splits about evenly (by the basins), not 0.8 / 0.2.
    torch.manual_seed(0)
    start = 16 * torch.rand(4000, 2) - 8
    x = score_matching_with(hw5_diffusion, MixtureScore(NCSN_MIXTURE)).langevin_dynamics_sample(
        start, torch.tensor([1.0]), 1000, 0.1)
    assert abs((x.sum(1) > 0).float().mean().item() - 0.8) > 0.15


def test_predictor_corrector_steps_through_the_levels_and_adds_the_noise_they_take_away(hw5_diffusion):
    # With s = 0 each predictor step σ -> σ' adds noise of variance σ² − σ'² (their sum: σ_1² − σ_L² = 4 − 1) and
    # each Langevin step √lr z: after 10 of them at lr = 0.05, 3 + 0.5 per coordinate.
    seen = []

    def zero_score(x, sigma):
        seen.append(float(sigma))
        return torch.zeros_like(x)

    sm = score_matching_with(hw5_diffusion, zero_score)
    sm.noise_levels = torch.tensor([1.0, 2.0])  # either order: the predictor runs from the largest
    torch.manual_seed(0)
    start = torch.zeros(100_000, 2)
    samples, trajectory = hw5_diffusion.predictor_corrector(sm, start, 10, 0.05, return_trajectory=True)
    assert trajectory.shape == (21, 100_000, 2) and torch.equal(trajectory[0], start)
    assert torch.equal(trajectory[-1], samples)  # the denoising step of a zero score moves nothing
    assert samples.var(0).tolist() == pytest.approx([3.5, 3.5], rel=0.02)
    assert seen[:10] == pytest.approx(geometric(2.0, 1.0, 11)[:-1].tolist())  # 10 geometric steps from σ = 2
    assert seen[10:] == pytest.approx([1.0] * 11)  # then Langevin dynamics and the denoising step at σ = 1


def test_predictor_corrector_keeps_the_weights_annealed_langevin_loses(hw5_diffusion):
    """With the exact score of two modes weighing 0.9 and 0.1, both samplers started from the exact data blurred
    by σ_1 and given the same 1000 steps at the default step size: the course's annealed Langevin dynamics leaves
    about 0.873 / 0.127 (it cannot move samples across once the modes part: errors 0.027-0.028 at three seeds),
    the predictor-corrector 0.9 / 0.1 within the 20 000 samples' noise (errors 0.003-0.006)."""
    mixture = Mixture([[0.0, 0.0], [1.0, 0.0]], [0.9, 0.1], std=0.05)
    sm = score_matching_with(hw5_diffusion, MixtureScore(mixture))
    sm.noise_levels = geometric(2.0, 0.005, 10)  # from beyond the data's diameter (1.3) to 2% of its spread
    lr = hw5_diffusion.LANGEVIN_STEP_RATIO * 0.005 ** 2
    generator = torch.Generator().manual_seed(0)
    start = mixture.draw(20_000, generator) + 2.0 * torch.randn(20_000, 2, generator=generator)

    def weight_error(samples):
        nearest = torch.cdist(samples, mixture.centers).argmin(1)
        return (torch.bincount(nearest, minlength=2) / len(samples) - mixture.weights).abs().max().item()

    torch.manual_seed(0)
    assert weight_error(hw5_diffusion.predictor_corrector(sm, start, 100, lr)) < 0.015
    torch.manual_seed(0)
    assert weight_error(sm.langevin_dynamics_sample(start, sm.noise_levels, 100, lr)) > 0.015


# ----------------------------------------------------------------------------------------------------
# The reference's default recipe, briefly trained (not graded)


@pytest.fixture(scope="module")
def trained(hw5_diffusion, tmp_path_factory):
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


def test_default_recipe_score_field_points_toward_the_data(hw5_diffusion, trained, tmp_path):
    sm, _, cloud = trained
    data = cloud.points
    sigma = 0.1 * data.std(0).square().mean().sqrt().item()
    assert score_agreement(sm.scorenet, data, sigma) > 0.85
    untrained = hw5_diffusion.build_model(hw5_diffusion.Config(), data)
    assert score_agreement(untrained, data, sigma) < 0.5  # the check tells a field that ignores the data's shape
    grid, scores = sm.plot_score(tmp_path / "score.png", sigma, data)
    assert (tmp_path / "score.png").stat().st_size > 10_000
    assert grid.shape == scores.shape and grid.shape[1] == 2 and len(grid) >= 100


@pytest.mark.parametrize("sampler", ["langevin", "pc"])
def test_default_recipe_samples_match_the_data(hw5_diffusion, trained, sampler):
    sm, state, cloud = trained
    _, lr, seed = hw5_diffusion.sampling_defaults(sm, state, sampler, None, None)
    samples, _ = hw5_diffusion.generate(sm, 4000, sampler, hw5_diffusion.SAMPLING_ITERATIONS, lr, seed)
    assert samples.shape == (4000, 2) and torch.isfinite(samples).all()
    # two batches of 2000 against 10 fresh draws: a perfect sampler scores 0.7x-1.5x the floor in 90% of runs
    metrics = hw5_diffusion.evaluate(samples, cloud, seed=1, draws=10)
    assert metrics["sliced_w2_vs_floor"] < 1.75 and metrics["energy_distance_vs_floor"] < 1.75
    # the control: the data blurred by the largest noise level is far from the data
    blurred = sm.scorenet.center + sm.prior_spread() * torch.randn(4000, 2)
    noise = hw5_diffusion.evaluate(blurred, cloud, seed=1, draws=10)
    assert noise["sliced_w2_vs_floor"] > 10 and noise["energy_distance_vs_floor"] > 10


# ----------------------------------------------------------------------------------------------------
# The metrics


@pytest.mark.parametrize("owner", ["the reference's", "the grader's"])
def test_distances_match_hand_computations(hw5_diffusion, owner):
    energy, sliced = (hw5_diffusion.energy_distance, hw5_diffusion.sliced_w2) if owner == "the reference's" else \
        (energy_distance, sliced_w2)
    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]])
    # one point each: E‖X − Y‖ = 5, so the energy distance is √(2 · 5); projected on (cos θ, sin θ) the points
    # differ by 3 cos θ + 4 sin θ, whose mean square over θ is (9 + 16) / 2.
    assert energy(a, b) == pytest.approx(math.sqrt(10), rel=1e-6)
    assert sliced(a, b) == pytest.approx(math.sqrt(12.5), rel=1e-6)
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    assert sliced(x, x + torch.tensor([0.4, 0.0])) == pytest.approx(0.4 / math.sqrt(2), rel=1e-6)
    assert energy(x, x) == pytest.approx(0.0, abs=1e-6)


def test_evaluate_puts_true_samples_at_the_floor_and_finds_mode_weights(hw5_diffusion):
    cloud = hw5_diffusion.builtin_cloud("mixture", hw5_diffusion.sample_mixture(500, torch.Generator().manual_seed(0)))
    fresh = hw5_diffusion.sample_mixture(2500, torch.Generator().manual_seed(1))
    metrics = hw5_diffusion.evaluate(fresh, cloud, seed=2, size=500)
    assert metrics["floor"] == "fresh draws of the built-in set"
    assert 0.7 < metrics["sliced_w2_vs_floor"] < 1.4 and 0.7 < metrics["energy_distance_vs_floor"] < 1.4
    assert metrics["mode_weights"] == pytest.approx([0.8, 0.2], abs=0.03)
    # the control: shifted by 2 (the modes are 14 apart, so the sliced W2 floor is large: weight noise)
    shifted = hw5_diffusion.evaluate(fresh + torch.tensor([2.0, 0.0]), cloud, seed=2, size=500)
    assert shifted["sliced_w2_vs_floor"] > 1.5 and shifted["energy_distance_vs_floor"] > 4


def test_a_file_is_split_once_into_training_and_held_out_points(hw5_diffusion):
    points = torch.arange(100.0).reshape(50, 2)  # 50 distinct rows
    training, held_out = hw5_diffusion.hold_out(points)
    rows = lambda tensor: [tuple(row) for row in tensor.tolist()]  # noqa: E731
    assert len(held_out) == 10 and len(training) == 40  # a fifth held out
    assert not set(rows(training)) & set(rows(held_out)) and sorted(rows(training) + rows(held_out)) == rows(points)
    assert rows(held_out) == sorted(rows(held_out)) and rows(training) == sorted(rows(training))  # the file's order
    assert rows(held_out) not in (rows(points[:10]), rows(points[-10:]))  # drawn, not the file's first or last rows
    torch.manual_seed(5)  # fixed: the same split whatever torch's global state and however often it is asked for
    again = hw5_diffusion.hold_out(points)
    assert torch.equal(again[0], training) and torch.equal(again[1], held_out)


def test_evaluate_on_a_file_compares_the_samples_with_its_held_out_points(hw5_diffusion):
    held_out = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
    # training points: the held-out ones moved by (0.4, 0), so the floor is the hand-computed 0.4 / √2 of the test
    # above, and samples that are the held-out points themselves are at distance 0
    cloud = hw5_diffusion.PointCloud("mine.npy", held_out + torch.tensor([0.4, 0.0]), held_out=held_out)
    metrics = hw5_diffusion.evaluate(held_out.flip(0).repeat(3, 1), cloud, seed=1, draws=4)
    assert metrics["floor"] == "training points against the held-out points of the file"
    assert metrics["comparison_size"] == 400  # batches as large as the held-out points, not EVAL_SIZE
    assert metrics["sliced_w2"] == pytest.approx(0.0, abs=1e-9) and metrics["energy_distance"] < 1e-6
    assert metrics["floor_sliced_w2"] == pytest.approx(0.4 / math.sqrt(2), rel=1e-6)
    # a run saved before the hold-out existed has only its training points: resampled, as the old floor was
    old = hw5_diffusion.evaluate(held_out, hw5_diffusion.PointCloud("mine.npy", held_out), seed=1, draws=4)
    assert old["floor"].startswith("resampled training points") and old["comparison_size"] == 400


DATASET_NAMES = ["8gaussians", "checkerboard", "cs446", "cs446-sp24", "mixture", "moons", "rings", "swissroll"]


def test_every_dataset_is_tested(hw5_diffusion):
    assert sorted(hw5_diffusion.DATASETS) == DATASET_NAMES


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_datasets_are_reproducible_point_clouds(hw5_diffusion, name):
    sampler = hw5_diffusion.DATASETS[name]
    points = sampler(500, torch.Generator().manual_seed(3))
    assert points.shape == (500, 2) and points.dtype == torch.float32 and torch.isfinite(points).all()
    assert torch.equal(points, sampler(500, torch.Generator().manual_seed(3)))
    if name == "cs446":  # the text, 4 units wide, centred
        assert points[:, 0].min() > -2.01 and points[:, 0].max() < 2.01 and points[:, 0].max() > 1.9
    if name == "cs446-sp24":  # create_samples()'s pixels, no two points from one (pixels 0.048 apart), jittered 0.01
        pixels = torch.as_tensor(hw5_utils.create_samples(noise=0.0))
        nearest = torch.cdist(points, pixels).min(1)
        assert nearest.values.max() < 0.05 and len(nearest.indices.unique()) > 0.97 * len(points)


def test_the_grader_mixture_score_is_the_gradient_of_its_log_density():
    """The graded tests compare with DATA's exact score: checked here against autograd of its log-density."""
    x = DATA.draw(50, torch.Generator().manual_seed(0)).double().requires_grad_()
    sigma = 0.3
    variance = DATA.std ** 2 + sigma ** 2
    offsets = DATA.centers.double()[None] - x[:, None]
    log_density = torch.logsumexp(DATA.weights.double().log() - offsets.square().sum(-1) / (2 * variance), 1).sum()
    (gradient,) = torch.autograd.grad(log_density, x)
    torch.testing.assert_close(DATA.score(x.detach().float(), sigma).double(), gradient, rtol=1e-4, atol=1e-5)


def test_trajectories_frame_holds_every_path_from_its_start(hw5_diffusion, tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(hw5_diffusion, "save_figure", lambda fig, path: figures.append(fig) or path)
    trajectory = torch.zeros(5, 3, 2)  # 2 levels x 2 steps + the start, 3 samples
    trajectory[0, 0] = torch.tensor([30.0, -20.0])  # one start far from the final samples in [0, 1]^2
    hw5_diffusion.plot_trajectories(trajectory, torch.rand(3, 2), torch.tensor([2.0, 1.0]), tmp_path / "t.png")
    (ax,) = figures[0].axes
    assert ax.get_xlim()[0] < 0 and ax.get_xlim()[1] > 30 and ax.get_ylim()[0] < -20 and ax.get_ylim()[1] > 1


# ----------------------------------------------------------------------------------------------------
# The command line


@pytest.fixture
def run(hw5_diffusion, cli):
    """The command line: run("train", "--iterations", 30, ...) -> typer's result."""
    return lambda *args: cli.invoke(hw5_diffusion.app, [str(arg) for arg in args])


def assert_one_line_error(result, fragment: str):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and fragment in lines[0], result.stderr


def test_cli_train_sample_plot_evaluate_resume(hw5_diffusion, run, tmp_path, figure_spy):
    out = tmp_path / "run"
    small = ("--n-points", 300, "--out-dir", out)
    assert run("train", "--iterations", 30, *small).exit_code == 0
    state = torch.load(out / "model.pt", weights_only=True)
    assert {"model", "config", "noise_levels"} <= set(state) and state["iteration"] == 30
    levels = state["noise_levels"]
    assert len(levels) == 10 and levels[0] > levels[-1]
    result = run("sample", "--n-samples", 300, "--sampling-iterations", 3, "--out-dir", out)
    assert result.exit_code == 0, result.output
    assert np.load(out / "samples.npy").shape == (300, 2)
    # the default sampler is pc; its snapshots: 3 predictor steps from each level to the next, then 3 Langevin
    # steps at the smallest (30)
    snapshots = next(fig for fig in figure_spy if fig._suptitle and "Reverse diffusion" in fig._suptitle.get_text())
    titles = [ax.get_title() for ax in snapshots.axes if ax.get_title()]
    assert titles[1] == f"step 6 (σ = {levels[2].item():.2g})" and titles[-1] == "final: step 30, then denoised"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("sliced_w2", "energy_distance", "floor_sliced_w2", "floor_energy_distance", "train_seconds",
                "dataset"):
        assert key in metrics
    assert (metrics["dataset"], metrics["sampler"]) == ("cs446", "pc")
    assert metrics["floor"] == "fresh draws of the built-in set"
    for name in ("data", "loss_curve", "score_field", "samples", "snapshots", "trajectories"):
        assert (out / f"{name}.png").stat().st_size > 5_000, name
    assert (out / "sampling.gif").stat().st_size > 5_000
    assert run("plot-score", "--sigma", 0.2, "--out-dir", out).exit_code == 0
    assert run("evaluate", "--sampler", "langevin", "--sampling-iterations", 2, "--out-dir", out).exit_code == 0
    assert json.loads((out / "metrics.json").read_text())["sampler"] == "langevin"
    assert run("sample", "--n-samples", 2, "--sampling-iterations", 2, "--out-dir", out).exit_code == 0  # < 8 paths
    assert np.load(out / "samples.npy").shape == (2, 2)
    result = run("train", "--resume", "--iterations", 45, "--lr", 0.1, "--no-sigma-weighted", "--out-dir", out)
    assert result.exit_code == 0, result.output
    assert "saved run's settings; ignoring --lr, --no-sigma-weighted\n" in result.stderr, result.stderr
    state = torch.load(out / "model.pt", weights_only=True)
    assert state["iteration"] == 45 and state["config"]["lr"] == hw5_diffusion.Config.lr
    assert run("train", "--resume", "--out-dir", out).exit_code == 0  # no --iterations: the saved total, 45
    assert torch.load(out / "model.pt", weights_only=True)["iteration"] == 45
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    for command in ("sample", "evaluate"):  # a Langevin step size far too large: the samples blow up
        result = run(command, "--sampler", "langevin", "--sampling-lr", 0.01, "--sampling-iterations", 2,
                     "--out-dir", out)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert result.stderr.strip().splitlines()[-1].startswith("Error: Langevin sampling diverged"), result.stderr
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    state = torch.load(out / "model.pt", weights_only=True)
    for key in ("dataset", "seed"):  # a run saved by an older version, without these settings: their defaults
        del state["config"][key]
    torch.save(state, out / "model.pt")
    assert run("train", "--resume", "--iterations", 46, "--out-dir", out).exit_code == 0


def test_cli_spring_2024_recipe_trains_a_scorenet_and_draws_the_handout_figures(hw5_diffusion, run, tmp_path,
                                                                              figure_spy, monkeypatch):
    """train --recipe sp24: the handout's ScoreNet, levels 0.3 -> 0.01 and create_samples() data, with an option
    typed over the recipe's; sample: its sampler from N(0, I), the snapshots at steps 0, 200, ..., 800 and final,
    the paths of 2 samples, and the course's plot_score field."""
    # metrics from the 300 samples drawn, not 10 000: the 8-layer ScoreNet's 1000 Langevin steps for those took a
    # minute (Softplus is slow on AVX-512 CPUs), and this test reads no metric's value
    monkeypatch.setattr(hw5_diffusion, "EVAL_BATCHES", 1)
    monkeypatch.setattr(hw5_diffusion, "EVAL_SIZE", 300)
    out = tmp_path / "sp24"
    result = run("train", "--recipe", "sp24", "--iterations", 40, "--out-dir", out)
    assert result.exit_code == 0, result.output
    state = torch.load(out / "model.pt", weights_only=True)
    cfg = state["config"]
    assert (cfg["recipe"], cfg["dataset"], cfg["iterations"], cfg["num_layers"]) == ("sp24", "cs446-sp24", 40, 8)
    torch.testing.assert_close(state["noise_levels"], torch.tensor(hw5_utils.generate_sigmas(0.3, 0.01, 10),
                                                                   dtype=torch.float32))
    assert len([key for key in state["model"] if key.endswith("weight")]) == 8  # ScoreNet's 8 Linear layers
    assert len(state["data"]) == 1169
    score_field = next(fig for fig in figure_spy if fig.axes[0].get_xlim() == (-2.5, 2.5))  # the course's plot_score
    assert score_field.axes[0].get_ylim() == (-0.6, 0.6)
    result = run("sample", "--n-samples", 300, "--sampling-iterations", 100, "--out-dir", out)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sampling_lr"] == hw5_diffusion.SP24_EPS and metrics["dataset"] == "cs446-sp24"
    assert metrics["sampler"] == "langevin"  # the handout's; pc needs σ_max to reach across the data
    assert_one_line_error(run("sample", "--sampler", "pc", "--out-dir", out), "--sampler pc needs σ_max")
    snapshots = next(fig for fig in figure_spy if fig._suptitle and "Annealed Langevin" in fig._suptitle.get_text())
    titles = [ax.get_title() for ax in snapshots.axes if ax.get_title()]
    assert [title.split(" (")[0] for title in titles[:5]] == ["step 0", "step 200", "step 400", "step 600", "step 800"]
    trajectories = next(fig for fig in figure_spy if fig.axes[0].get_title().startswith("Paths of 2 samples"))
    assert max(len(line.get_xdata()) for line in trajectories.axes[0].get_lines()) == 1001  # every step


def test_cli_rejects_an_out_dir_that_is_a_file(run, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    for command in ("train", "sample", "evaluate", "plot-score"):
        assert_one_line_error(run(command, "--out-dir", tmp_path / "notes.txt"), "is a file")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_cli_train_on_own_data_holds_out_a_fifth_and_adapts_noise_levels(hw5_diffusion, run, tmp_path, monkeypatch):
    points = hw5_diffusion.sample_glyphs(300, torch.Generator().manual_seed(0)) / 4.4 + 0.5  # inside [0, 1]²
    np.save(tmp_path / "mine.npy", points.numpy())
    out = tmp_path / "run"
    result = run("train", "--data", tmp_path / "mine.npy", "--iterations", 10, "--out-dir", out)
    assert result.exit_code == 0 and "on 240 points of" in result.stderr and "60 more held out" in result.stderr
    state = torch.load(out / "model.pt", weights_only=True)
    training, held_out = state["data"], state["held_out"]
    assert len(training) == 240 and len(held_out) == 60
    assert sorted(map(tuple, torch.cat([training, held_out]).tolist())) == sorted(map(tuple, points.tolist()))
    diameter = torch.cdist(training, training).max().item()  # of the training points alone
    assert state["noise_levels"].max().item() == pytest.approx(diameter, rel=1e-4)
    assert state["noise_levels"].min().item() < 0.01
    monkeypatch.setattr(hw5_diffusion, "EVAL_BATCHES", 1)  # 300 samples: the metrics' values are not read here
    monkeypatch.setattr(hw5_diffusion, "EVAL_SIZE", 300)
    assert run("evaluate", "--sampling-iterations", 2, "--out-dir", out).exit_code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["floor"] == "training points against the held-out points of the file"
    assert metrics["comparison_size"] == 60


def test_cli_sample_trains_first_on_a_fresh_checkout(hw5_diffusion, run, tmp_path, monkeypatch):
    @dataclasses.dataclass
    class QuickConfig(hw5_diffusion.Config):  # the defaults that `sample` trains with, made quick
        iterations: int = 20
        n_points: int = 200

    monkeypatch.setattr(hw5_diffusion, "Config", QuickConfig)
    result = run("sample", "--n-samples", 100, "--sampling-iterations", 2, "--out-dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert "no checkpoint" in result.stderr
    assert (tmp_path / "model.pt").exists() and (tmp_path / "metrics.json").exists()


def test_interrupted_training_saves_and_resumes(hw5_diffusion, tmp_path, monkeypatch):
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
    with pytest.raises(KeyboardInterrupt):  # resumed from 100 and interrupted again before the next snapshot
        hw5_diffusion.run_training(cfg, tmp_path, device="cpu", resume=True)
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["iteration"] == 100 and len(saved["history"]) == 100  # the resumed iterations are not in it
    monkeypatch.setattr(hw5_diffusion, "learning_rate", original)
    state = hw5_diffusion.run_training(cfg, tmp_path, device="cpu", resume=True)
    assert state["iteration"] == 250 and len(state["history"]) == 250


def test_ctrl_c_during_the_figures_prints_a_resume_command_that_redoes_them(hw5_diffusion, run, tmp_path,
                                                                            monkeypatch):
    original = hw5_diffusion.plot_loss_curve

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(hw5_diffusion, "plot_loss_curve", interrupted)
    result = run("train", "--iterations", 20, "--n-points", 200, "--out-dir", tmp_path)
    assert result.exit_code == 130 and "Traceback" not in result.output
    resume = result.stderr.strip().splitlines()[-1].split()
    assert resume[resume.index("--resume"):] == ["--resume", "--iterations", "20"]
    assert torch.load(tmp_path / "model.pt", weights_only=True)["iteration"] == 20
    assert not (tmp_path / "loss_curve.png").exists()
    monkeypatch.setattr(hw5_diffusion, "plot_loss_curve", original)
    assert run(*resume[2:]).exit_code == 0  # the printed command, less "python hw5_diffusion.py"
    assert (tmp_path / "loss_curve.png").exists() and (tmp_path / "score_field.png").exists()


@pytest.fixture
def bad_files(tmp_path):
    np.save(tmp_path / "three_columns.npy", np.zeros((10, 3)))
    np.save(tmp_path / "nan.npy", np.array([[0.0, 1.0], [np.nan, 2.0]] + [[1.0, 1.0]] * 8))
    np.save(tmp_path / "nine_points.npy", np.random.default_rng(0).random((9, 2)))
    np.save(tmp_path / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    (tmp_path / "text.npy").write_text("not an array")
    return tmp_path


@pytest.mark.parametrize("args, fragment", [
    (("train", "--data", "missing.npy"), "no data file"),
    (("train", "--data", "three_columns.npy"), "shape (10, 3)"),
    (("train", "--data", "nan.npy"), "NaN"),
    (("train", "--data", "strings.npy"), "<U1"),
    (("train", "--data", "text.npy"), "cannot read"),
    (("train", "--data", "nine_points.npy"), "holds 9 points: at least 10 are needed"),
    (("train", "--dataset", "spirals"), "unknown dataset 'spirals'"),
    (("train", "--sigma-min", "2", "--sigma-max", "1"), "sigma-min"),
    (("train", "--lr", "0"), "--lr must be a positive number"),
    (("train", "--lr", "inf"), "--lr must be a positive number"),
    (("train", "--iterations", "0"), "Invalid value for '--iterations'"),
    (("train", "--device", "tpu"), "unknown device"),
    (("train", "--seed", str(2**64)), "--seed must be between 0 and 2**64 - 1"),
    (("sample", "--sampling-lr", "-1"), "--sampling-lr must be > 0"),
    (("evaluate", "--sampler", "euler"), "--sampler must be one of langevin, pc, got 'euler'"),
    (("sample", "--seed", "-1"), "--seed must be between 0 and 2**64 - 3, got -1"),  # checked before training
    (("evaluate", "--seed", str(2**64 - 2)), "--seed must be between 0 and 2**64 - 3"),  # it seeds seed + 2
    (("plot-score", "--sigma", "0"), "--sigma must be > 0"),
])
def test_cli_bad_inputs_fail_in_one_line_and_keep_the_model(run, bad_files, args, fragment):
    out = bad_files / "out"
    out.mkdir()
    (out / "model.pt").write_bytes(b"an earlier model")
    args = [bad_files / arg if arg.endswith(".npy") else arg for arg in args]
    if args[0] == "train":
        args.append("--overwrite")  # even a run allowed to replace the model keeps it on bad input
    assert_one_line_error(run(*args, "--out-dir", out), fragment)
    assert (out / "model.pt").read_bytes() == b"an earlier model"
    assert sorted(path.name for path in out.iterdir()) == ["model.pt"]


def test_cli_train_never_replaces_a_saved_model_by_accident(run, tmp_path):
    (tmp_path / "model.pt").write_bytes(b"an earlier model")
    assert_one_line_error(run("train", "--out-dir", tmp_path), "holds an earlier run")
    assert_one_line_error(run("train", "--resume", "--overwrite", "--out-dir", tmp_path), "pass one")
    assert (tmp_path / "model.pt").read_bytes() == b"an earlier model"


def test_cli_needs_a_readable_checkpoint(hw5_diffusion, run, tmp_path):
    assert_one_line_error(run("evaluate", "--out-dir", tmp_path), "no checkpoint")
    (tmp_path / "model.pt").write_bytes(b"garbage")
    assert_one_line_error(run("plot-score", "--out-dir", tmp_path), "cannot read checkpoint")
    torch.save({"encoder": {}, "decoder": {}}, tmp_path / "model.pt")
    assert_one_line_error(run("sample", "--out-dir", tmp_path), "missing model")
    keys = hw5_diffusion.CHECKPOINT_KEYS + hw5_diffusion.RESUME_KEYS
    torch.save({**dict.fromkeys(keys, {}), "config": {"an_older_setting": 1}}, tmp_path / "model.pt")  # another version
    before = (tmp_path / "model.pt").read_bytes()
    assert_one_line_error(run("train", "--resume", "--out-dir", tmp_path), "has an unusable config")
    assert (tmp_path / "model.pt").read_bytes() == before
    for config, message in [({"num_levels": "10"}, "has an unusable config (num_levels='10')"),  # edited by hand
                            ({"hidden_units": -1}, "--hidden-units must be >= 1, got -1")]:
        torch.save({**dict.fromkeys(keys, {}), "config": config}, tmp_path / "model.pt")
        assert_one_line_error(run("sample", "--out-dir", tmp_path), message)
