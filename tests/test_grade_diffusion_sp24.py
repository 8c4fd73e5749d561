"""The graded tests of the `diffusion-sp24` assignment (Spring 2024, question 5): a student's hw5_diffusion.py with the
course's ScoreNet API.

The tests reach the file through the course's names: ScoreNet(n_layers, latent_dim), compute_denoising_loss(scorenet,
training_data, sigmas) and langevin_dynamics_sample(scorenet, n_samples, sigmas, iterations, eps, return_traj). The
network against its definition; the loss and the sampler against hand computations with stand-in score networks
(tests/scores.py), the loss accepting a mean or sum over the batch or the coordinates and a 1/2 but requiring the
handout's λ(σ) = σ²; annealing with the exact score of a Gaussian mixture. 5.a-5.b also train the student's
ScoreNet() on a Gaussian mixture with the student's loss and grade its score field and its samples; 5.c the
trajectory return_traj gives.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from grading import as_array, manual_seed
from scores import (LEVELS, NCSN_MIXTURE, NOISE_SAMPLES, NOISE_SIGMA, PER_SAMPLE_LEVELS, PER_SAMPLE_SAMPLES, KnownScore,
                    MixtureScore, ZeroScore, as_points, check_noise_std, check_sigma_per_sample, far_if_not_finite,
                    field_at, field_points, geometric, judge_field, judge_samples, load_weights, received_by_stand_in,
                    train_on_data, weights_of, with_levels)

pytestmark = pytest.mark.usefixtures("one_thread")

# The trained network's field (scores.judge_field) and its samples: as in the Fall-2022 tests (their comments).
LANGEVIN_STEPS, LANGEVIN_EPS = 50, 0.25 * LEVELS[-1].item() ** 2  # steps x + 0.25 σ_i² s + √(0.5 σ_i²) z
MATCH_RATIO, SPREADS, LOST_SPREAD = 4.0, (0.75, 1.8), 3.0


def sample(hw5_diffusion, scorenet, n: int, levels: torch.Tensor, iterations: int, eps: float, seed: int,
           return_traj: bool = False) -> torch.Tensor:
    """In the worker: the student's langevin_dynamics_sample(scorenet, n, levels, iterations, eps, return_traj);
    scorenet a stand-in, or the weights of the student's ScoreNet() trained by `trained`."""
    if isinstance(scorenet, dict):
        scorenet = load_weights(hw5_diffusion.ScoreNet(), scorenet)
    manual_seed(seed)
    with torch.no_grad():
        return far_if_not_finite(as_points(with_levels(lambda given: hw5_diffusion.langevin_dynamics_sample(
            scorenet, n, given, iterations=iterations, eps=eps, return_traj=return_traj), levels)))


def training_probe(hw5_diffusion) -> dict:
    manual_seed(40)
    scorenet = hw5_diffusion.ScoreNet()
    train_on_data(scorenet, hw5_diffusion.compute_denoising_loss)
    return weights_of(scorenet)


@pytest.fixture(scope="module")
def trained(probe) -> dict:
    """The weights of the student's ScoreNet() trained by the test on DATA with the student's
    compute_denoising_loss (trained once per grading run)."""
    return probe(training_probe)


# ----------------------------------------------------------------------------------------------------
# 5.a: the network and the loss

SHAPES = ((2, 16), (5, 32), (8, 128))  # (n_layers, latent_dim)


def layers_probe(hw5_diffusion, x: torch.Tensor, sigma: torch.Tensor) -> list:
    manual_seed(0)
    found = []
    for n_layers, latent_dim in SHAPES:
        net = hw5_diffusion.ScoreNet(n_layers=n_layers, latent_dim=latent_dim)
        layers = [{"weight": m.weight, "bias": m.bias} for m in net.modules() if isinstance(m, nn.Linear)]
        found.append({"layers": layers, "scores": as_points(net(x, sigma))})
    return found


def test_5a_scorenet_layers(probe):
    """ScoreNet(n_layers, latent_dim): n_layers distinct Linear layers, 3 -> latent_dim -> ... -> latent_dim -> 2, a
    Softplus between each two, and s(x, σ) = net(cat[x, σ]) / σ; for n_layers = 2, 5 and the default 8."""
    generator = torch.Generator().manual_seed(0)
    x, sigma = torch.randn(6, 2, generator=generator), torch.rand(6, 1, generator=generator) + 0.1
    for (n_layers, latent_dim), found in zip(SHAPES, probe(layers_probe, x, sigma), strict=True):
        layers = [(torch.from_numpy(layer["weight"]), layer["bias"]) for layer in found["layers"]]
        assert len(layers) == n_layers, (f"ScoreNet(n_layers={n_layers}) has {len(layers)} distinct Linear layers: "
                                         f"n_layers asked (one Linear object used twice counts once)")
        widths = [(weight.shape[1], weight.shape[0]) for weight, _ in layers]
        expected = [(3, latent_dim)] + [(latent_dim, latent_dim)] * (n_layers - 2) + [(latent_dim, 2)]
        assert widths == expected, f"ScoreNet(n_layers={n_layers}, latent_dim={latent_dim}) has layers {widths}"
        h = torch.cat([x, sigma], 1)
        for k, (weight, bias) in enumerate(layers):
            h = nn.functional.linear(h, weight, None if bias is None else torch.from_numpy(bias))
            h = h if k == len(layers) - 1 else nn.functional.softplus(h)
        torch.testing.assert_close(torch.from_numpy(found["scores"]), h / sigma,
                                   msg="s(x, σ) is not net(cat[x, σ]) / σ with a Softplus between the Linear layers")


LOSS_SIGMA = 0.6
LOSS_X = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-1.0, 0.5]])
LOSS_M, LOSS_B = (0.25, -0.5), (1.0, 0.0)


def loss_value_probe(hw5_diffusion):
    manual_seed(0)
    return as_array(with_levels(lambda levels: hw5_diffusion.compute_denoising_loss(
        KnownScore(LOSS_M, LOSS_B), LOSS_X, levels), torch.tensor([LOSS_SIGMA])))


def test_5a_denoising_loss_value(probe):
    """1/2 λ(σ) ‖s(x̃, σ) + (x̃ − x) / σ²‖² averaged, λ(σ) = σ², deterministic with s = −(x̃ − m) / σ² + b: the terms are
    ‖(m − x) / σ² + b‖². Accepted with or without the 1/2, as a sum or a mean over the batch or the coordinates;
    the weighting by σ² is the handout's."""
    loss = probe(loss_value_probe)
    assert loss.shape == (), f"compute_denoising_loss returned shape {loss.shape}: expected a scalar"
    sigma = LOSS_SIGMA
    terms = (((torch.tensor(LOSS_M) - LOSS_X) / sigma ** 2 + torch.tensor(LOSS_B)) ** 2).sum().item()
    handout = 0.5 * sigma ** 2 * terms / 3
    accepted = [handout * batch * coords * half for batch in (1, 3) for coords in (1, 1 / 2) for half in (1, 2)]
    assert any(abs(float(loss) - value) < 1e-4 * value for value in accepted), (
        f"compute_denoising_loss = {float(loss):.4f}; the mean over the samples of 1/2 σ² ‖s(x̃, σ) + (x̃ − x) / σ²‖² "
        f"is {handout:.4f} here (accepted also without the 1/2, or summed over the samples, or averaged over the "
        f"coordinates; without λ(σ) = σ² it would be {handout / sigma ** 2:.4f})")


def noise_and_sigma_probe(hw5_diffusion) -> dict:
    manual_seed(1)
    loss = hw5_diffusion.compute_denoising_loss
    return {"noise": received_by_stand_in(loss, (NOISE_SIGMA,), NOISE_SAMPLES, NOISE_SAMPLES),
            "sigma": received_by_stand_in(loss, PER_SAMPLE_LEVELS, PER_SAMPLE_SAMPLES, PER_SAMPLE_SAMPLES)}


def test_5a_denoising_loss_noise_and_sigma(probe):
    """The score network receives x̃ = x + σ z (at x = 0, σ = 0.5: mean 0, standard deviation 0.5), and one σ per
    sample drawn uniformly from the levels (with (0.5, 2.0), half of 4000 samples each)."""
    received = probe(noise_and_sigma_probe)
    check_noise_std(received["noise"])
    check_sigma_per_sample(received["sigma"])


def field_probe(hw5_diffusion, weights: dict, points: dict) -> dict:
    return field_at(load_weights(hw5_diffusion.ScoreNet(), weights), points)


def test_5a_score_field(probe, trained, deduct):
    """The student's ScoreNet(), trained by the test on a mixture of three Gaussians with the student's loss (3000
    Adam steps, 10 levels from 3 to 0.01): mean cosine with the mixture's exact blurred score at σ = 0.45 ... 0.07 at
    least 0.85 (else -4; at most 0.1 fails)."""
    points = field_points()
    judge_field(probe(field_probe, trained, points), points, deduct)


# ----------------------------------------------------------------------------------------------------
# 5.b: the sampler and its samples


def test_5b_langevin_update_rule(probe):
    """With s = 0, x_0 ~ N(0, I) moves by √(2α) z only: after T = 10 steps at each of σ = 2, 1 with ε = 0.01, its
    variance is 1 + 2 T Σ_i α_i = 2, with α_i = ε σ_i² / σ_L² and σ_L the last level. (T - 1 steps per level give
    1.9, the Fall-2022 update x + α/2 s + √α z gives 1.5, σ_L the first level 1.25.)"""
    x = probe(sample, ZeroScore(), 50000, torch.tensor([2.0, 1.0]), 10, 0.01, 3)
    assert x.shape == (50000, 2), f"langevin_dynamics_sample returned {x.shape}: (n_samples, 2) asked"
    variance = float(x.astype(np.float64).var(0, ddof=1).mean())
    assert abs(variance - 2.0) < 0.04, (
        f"with s = 0, x_0 ~ N(0, I) and 10 steps at each of σ = 2, 1, the samples' variance is {variance:.3f}, not "
        f"1 + 2 T Σ_i α_i = 2: check x_0 ~ N(0, I), the update x + α s + √(2α) z, α = ε σ_i² / σ_L² (σ_L the last, "
        f"smallest level) and T steps per level")


def test_5b_langevin_anneals(probe):
    """NCSN's example with the exact score of Σ w_k N(μ_k, I), weights 0.8 / 0.2 at (5, 5) and (-5, -5): annealed from
    σ = 20 down to σ = 1 (ε = 0.05, T = 100) from x_0 ~ N(0, I), the samples split 0.8 / 0.2 and match
    p_σ=1 = Σ w_k N(μ_k, 2 I). From the smallest level up they split about evenly."""
    x = torch.from_numpy(probe(sample, MixtureScore(NCSN_MIXTURE), 4000, geometric(20.0, 1.0, 10), 100, 0.05, 5))
    assert x.shape == (4000, 2), f"langevin_dynamics_sample returned {tuple(x.shape)}: (n_samples, 2) asked"
    upper = x.sum(1) > 0
    share = upper.float().mean().item()
    assert abs(share - 0.8) < 0.05, (f"{share:.2f} of the samples at the mode of weight 0.8: anneal from the largest "
                                     f"noise level to the smallest, in the order given")
    for mode, chosen in ((torch.tensor([5.0, 5.0]), upper), (torch.tensor([-5.0, -5.0]), ~upper)):
        assert torch.allclose(x[chosen].mean(0), mode, atol=0.25) and 1.6 < x[chosen].var(0).mean().item() < 2.5, (
            f"the samples near {mode.tolist()} do not follow N(μ, 2 I)")


def test_5b_samples(probe, trained, deduct):
    """2000 samples of the student's sampler with the trained ScoreNet (T = 50, ε = 0.25 σ_L²) against fresh data:
    energy distance and sliced W2 under 4 x their real-vs-real floors (else -4); every mode at least half its weight,
    and a spread around the modes 0.75-1.8 x the data's (else -2); samples nowhere near the data fail."""
    samples = probe(sample, trained, 2000, LEVELS, LANGEVIN_STEPS, LANGEVIN_EPS, 42)
    assert samples.shape == (2000, 2), f"langevin_dynamics_sample returned {samples.shape}: (2000, 2) asked"
    judge_samples(samples, MATCH_RATIO, SPREADS, LOST_SPREAD, deduct)


# ----------------------------------------------------------------------------------------------------
# 5.c: the trajectory


def test_5c_trajectory(probe):
    """return_traj=True: every intermediate state, (n_samples, L·T, 2): each entry the state after a step (or
    before it, x_0 first), a new tensor each time. With s = 0 a step adds noise of variance proportional to α_i:
    four times as much at σ = 2 as at σ = 1, whatever the update's constants (5.b grades those)."""
    n, steps = 20000, 5
    trajectory = torch.from_numpy(probe(sample, ZeroScore(), n, torch.tensor([2.0, 1.0]), steps, 0.01, 6,
                                        return_traj=True))
    assert trajectory.shape == (n, 2 * steps, 2), (
        f"return_traj=True gave shape {tuple(trajectory.shape)}: (n_samples, L·T, 2) = ({n}, {2 * steps}, 2) asked")
    increments = trajectory.diff(dim=1).var(0).mean(-1)  # (L·T - 1,)
    assert float(increments.min()) > 1e-3, ("entries of the trajectory repeat: record a new tensor after each step "
                                            "(x = x + ..., not x += ... on the tensor already recorded)")
    first, last = increments[:steps - 1].mean().item(), increments[-(steps - 1):].mean().item()
    assert math.isclose(first / last, 4.0, rel_tol=0.15), (
        f"the steps recorded move x by variance {first:.3f} at the first level and {last:.3f} at the last: they must "
        f"follow the levels in order, α_i ∝ σ_i², four times as much at σ = 2 as at σ = 1")
    start = trajectory[:, 0].var(0).mean().item()
    assert 0.95 < start < 1.13, f"the first entry has variance {start:.3f}: x_0 ~ N(0, I) or the state after one step"
