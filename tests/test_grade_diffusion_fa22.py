"""The graded tests of the `diffusion-fa22` assignment (Fall 2022, question 4): a student's hw5_diffusion.py with the
course's ScoreMatching API.

The tests build `ScoreMatching()` and reach it only through the course's names (DiffusionModel via its scorenet,
denoising_loss, langevin_dynamics_sample, plot_score, generate_noise_levels). 4.a: the loss and the sampler against
hand computations with stand-in score networks (tests/scores.py), accepting every usual constant convention of the
loss and both readings of σ_L in the step size; annealed Langevin dynamics with the exact score of a Gaussian
mixture. 4.b and 4.c: the student's own network, trained by the test on a Gaussian mixture with the student's loss,
then its score field against the exact one and the figure plot_score() draws, its samples against the data.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import drawn
from grading import as_array, manual_seed
from scores import (LEVELS, NCSN_MIXTURE, NOISE_SAMPLES, NOISE_SIGMA, PER_SAMPLE_LEVELS, PER_SAMPLE_SAMPLES, KnownScore,
                    MixtureScore, ZeroScore, as_points, check_noise_std, check_sigma_per_sample, distances_to_floor,
                    far_if_not_finite, field_at, field_points, geometric, judge_field, judge_samples, load_weights,
                    received_by_stand_in, train_on_data, weights_of, with_levels)

pytestmark = pytest.mark.usefixtures("one_thread")

# 4.b: the field at σ = 0.45 ... 0.07 (scores.judge_field). Mean cosine with the exact score there: the reference
# 0.99, a plain course-style MLP 0.93-0.95, a field that only points at the data's centre 0.24.
# 4.c: Langevin with α_i = 0.25 σ_i², T = 50. Distance over the floor: the reference 0.9-1.1, the course's own
# DiffusionModel (which never sees σ) 2.0-2.1, a plain MLP on (x, log σ) 1.9-2.9; the right modes in the wrong
# proportions (1/3 each) 5.7-7.4. (With α_i = 0.5 σ_i² the course's network over-contracts: 3.5-5.0.) Spread around
# the modes over the data's: the reference 1.05-1.1, the course's network 1.04-1.09, the plain MLP 1.45, samples far
# from every mode > 4.
LANGEVIN_STEPS, LANGEVIN_LR = 50, 0.25 * LEVELS[-1].item() ** 2
MATCH_RATIO, SPREADS, LOST_SPREAD = 4.0, (0.75, 1.8), 3.0
# The course's main() gives the loss and the sampler the 2000 points of cs446.npy (some files reshape by that
# number): every call below passes 2000 points, several calls where a check needs more.
COURSE_POINTS = 2000


def with_scorenet(sm, scorenet):
    """The student's ScoreMatching() with a stand-in score network."""
    sm.scorenet = scorenet
    return sm


def student_loss(sm):
    """The student's denoising_loss as loss(scorenet, points, levels), the form tests/scores.py grades."""
    def loss(scorenet, points, levels):
        kept, sm.scorenet = sm.scorenet, scorenet
        try:
            return sm.denoising_loss(points, levels)
        finally:
            sm.scorenet = kept
    return loss


def score_matching(hw5_diffusion, scorenet=None):
    """In the worker: the student's ScoreMatching(), with a stand-in score network, or with its own network holding
    the weights `trained` sent back (scorenet a dict)."""
    manual_seed(0)
    sm = hw5_diffusion.ScoreMatching()
    if isinstance(scorenet, dict):
        load_weights(sm.scorenet, scorenet)
    elif scorenet is not None:
        sm.scorenet = scorenet
    return sm


def langevin(hw5_diffusion, scorenet, start: torch.Tensor, levels: torch.Tensor, iterations: int, lr: float,
             seed: int) -> torch.Tensor:
    """In the worker: the student's langevin_dynamics_sample from start (N, 2), COURSE_POINTS at a time, with the
    levels in the order given -> (N, 2)."""
    sm = score_matching(hw5_diffusion, scorenet)
    manual_seed(seed)
    with torch.no_grad():
        return far_if_not_finite(torch.cat([as_points(with_levels(lambda given: sm.langevin_dynamics_sample(
            part.clone(), given, iterations, lr), levels)) for part in start.split(COURSE_POINTS)]))


def either_order(sample, levels: torch.Tensor, judge):
    """sample(levels) with the levels largest first and, unless judge(samples) -> (ok, finding) says ok, smallest
    first: the handout lists σ_1 < ... < σ_L, so either order is a fair reading of what to pass. Returns (samples,
    finding) of the first order judged ok, else of the levels largest first."""
    results = []
    for ordered in (levels, levels.flip(0)):
        samples = torch.from_numpy(sample(ordered))
        ok, finding = judge(samples)
        if ok:
            return samples, finding
        results.append((samples, finding))
    return results[0]


def step_scale(probe, levels: torch.Tensor) -> float:
    """1 if the student's step at level i is α_i = lr σ_i² / σ_L² with σ_L the smallest level (NCSN), (σ_max / σ_min)²
    if σ_L is the largest (the handout's literal numbering): the factor that makes lr mean the same step. Measured
    with s = 0, where T steps at each level add T Σ_i α_i to the variance."""
    growth = max(float(probe(langevin, ZeroScore(), torch.zeros(4000, 2), ordered, 5, 1e-3, 0).var(0).mean())
                 for ordered in (levels, levels.flip(0)))
    smallest = 5 * 1e-3 * (levels ** 2 / levels.min() ** 2).sum().item()
    return 1.0 if abs(growth - smallest) < 0.2 * smallest else (levels.max() / levels.min()).item() ** 2


def training_probe(hw5_diffusion) -> dict:
    manual_seed(40)
    sm = hw5_diffusion.ScoreMatching()
    train_on_data(sm.scorenet, student_loss(sm), COURSE_POINTS)
    return weights_of(sm.scorenet)


@pytest.fixture(scope="module")
def trained(probe) -> dict:
    """The weights of the student's ScoreMatching().scorenet trained by the test on DATA with the student's loss
    (trained once per grading run)."""
    return probe(training_probe)


# ----------------------------------------------------------------------------------------------------
# 4.a: the loss

LOSS_SIGMA, LOSS_M, LOSS_B = 0.6, (0.25, -0.5), (1.0, 0.0)
LOSS_X = torch.randn(COURSE_POINTS, 2, generator=torch.Generator().manual_seed(0))


def loss_value_probe(hw5_diffusion):
    sm = score_matching(hw5_diffusion, KnownScore(LOSS_M, LOSS_B))
    return as_array(with_levels(lambda levels: sm.denoising_loss(LOSS_X, levels), torch.tensor([LOSS_SIGMA])))


def test_4a_denoising_loss_value(probe):
    """L = Σ_x ‖s(x̃, σ) + (x̃ − x) / σ²‖², deterministic with s = −(x̃ − m) / σ² + b: the terms are ‖(m − x) / σ² + b‖².
    Any of the usual constants on it is accepted: a mean over the batch, a mean over the 2 coordinates, a 1/2, and
    the σ² weighting (NCSN's λ)."""
    loss = probe(loss_value_probe)
    assert loss.shape == (), f"denoising_loss returned shape {loss.shape}: expected a scalar"
    sigma, n = LOSS_SIGMA, COURSE_POINTS
    handout = (((torch.tensor(LOSS_M) - LOSS_X) / sigma ** 2 + torch.tensor(LOSS_B)) ** 2).sum().item()
    accepted = [handout * batch * coords * half * weight for batch in (1, 1 / n) for coords in (1, 1 / 2)
                for half in (1, 1 / 2) for weight in (1, sigma ** 2)]
    assert any(abs(float(loss) - value) < 1e-4 * value for value in accepted), (
        f"denoising_loss = {float(loss):.4f}; Σ_x ‖s(x̃, σ) + (x̃ − x) / σ²‖² is {handout:.4f} here (accepted also as a "
        f"mean over the samples or coordinates, with a 1/2 or the σ² weighting)")


def received_probe(hw5_diffusion, levels: tuple, samples: int, seed: int) -> dict:
    manual_seed(seed)
    return received_by_stand_in(student_loss(score_matching(hw5_diffusion)), levels, samples, COURSE_POINTS)


def test_4a_denoising_loss_noise_std(probe):
    """x̃ = x + σ z with z ~ N(0, I): at x = 0 and σ = 0.5 the score network receives x̃ of mean 0 and standard
    deviation 0.5 (a stand-in network records what it receives, whatever the loss does with it)."""
    check_noise_std(probe(received_probe, (NOISE_SIGMA,), NOISE_SAMPLES, 1))


def test_4a_denoising_loss_sigma_per_sample(probe):
    """With the levels (0.5, 2.0) and 4000 samples, the network receives one σ per sample, half of them each
    (`sigma_chosen` of shape (N,), drawn uniformly: one σ per batch, or σ drawn in proportion to its value, fail)."""
    check_sigma_per_sample(probe(received_probe, PER_SAMPLE_LEVELS, PER_SAMPLE_SAMPLES, 2))


# ----------------------------------------------------------------------------------------------------
# 4.a: the sampler


def test_4a_langevin_step_sizes(probe):
    """With s = 0, x moves by √α_i z only: after T steps at each level its variance grows by T Σ_i α_i with
    α_i = ε σ_i² / σ_L²: 10 · 0.01 · (1 + 4) = 0.5 with σ_L the smallest level (NCSN), 10 · 0.01 · (1 + 1/4) = 0.125
    with σ_L the largest (the handout's numbering). One step size for all levels gives 0.2; no noise term, 0."""
    def judge(x):
        variance = x.var(0).mean().item()
        ok = min(abs(variance - 0.5), abs(variance - 0.125) * 4) < 0.025
        return ok, (None if ok else f"with s = 0, x's variance grew by {variance:.3f}, not T Σ_i α_i = 0.5: check "
                                    f"α_i = ε σ_i² / σ_L², the update x + α_i/2 s + √α_i z, and T steps per level")

    _, message = either_order(lambda levels: probe(langevin, ZeroScore(), torch.zeros(20000, 2), levels, 10, 0.01, 3),
                              torch.tensor([2.0, 1.0]), judge)
    assert message is None, message


def test_4a_langevin_anneals(probe):
    """NCSN's example: annealed from σ = 20 down to σ = 1 (ε = 0.1, T = 100), samples from uniform noise must split
    0.8 / 0.2 between the modes and match p_σ=1 = Σ w_k N(μ_k, 2 I). Annealed the wrong way (or not at all) they
    split about evenly, by the basins they start in. (Algorithm 1 with these settings lands at 0.783 ± 0.007 over
    30 seeds: finite annealing leaves a little mass behind.)"""
    def judge(x):
        upper = x.sum(1) > 0
        message = None
        if abs(upper.float().mean().item() - 0.8) > 0.05:
            message = f"{upper.float().mean().item():.2f} of the samples at the mode of weight 0.8: anneal from the " \
                      f"largest noise level to the smallest, with steps x + α_i/2 s(x, σ_i) + √α_i z"
        for mode, chosen in ((torch.tensor([5.0, 5.0]), upper), (torch.tensor([-5.0, -5.0]), ~upper)):
            if message is None and not (torch.allclose(x[chosen].mean(0), mode, atol=0.25)
                                        and 1.6 < x[chosen].var(0).mean().item() < 2.5):
                message = f"the samples near {mode.tolist()} do not follow N(μ, 2 I)"
        return message is None, message

    levels = geometric(20.0, 1.0, 10)
    lr = 0.1 * step_scale(probe, levels)
    start = 16 * torch.rand(4000, 2, generator=torch.Generator().manual_seed(4)) - 8
    _, message = either_order(lambda ordered: probe(langevin, MixtureScore(NCSN_MIXTURE), start, ordered, 100, lr, 5),
                              levels, judge)
    assert message is None, message


# ----------------------------------------------------------------------------------------------------
# 4.b and 4.c: the student's network, trained on a Gaussian mixture

PLOT_SIGMAS = torch.logspace(-3, 1, 41).tolist()  # the σ plot_score() may have drawn its arrows at
PLOT_ARROWS = 1000                                # arrows compared, at most, of each quiver


def field_probe(hw5_diffusion, weights: dict, points: dict) -> dict:
    return field_at(score_matching(hw5_diffusion, weights).scorenet.eval(), points)


def plot_probe(hw5_diffusion, weights: dict) -> list:
    """The quivers plot_score() draws, and the network's output at their points for each σ of PLOT_SIGMAS, as drawn
    and with x and y swapped in both (the course's template draws plt.quiver(y, x, s_y, s_x))."""
    sm = score_matching(hw5_diffusion, weights)
    sm.scorenet.eval()
    with drawn.capture() as drawings:
        sm.plot_score()
    found = []
    for arrows in (part for drawing in drawings for part in drawing.arrows):
        keep = torch.randperm(len(arrows.points), generator=torch.Generator().manual_seed(0))[:PLOT_ARROWS].numpy()
        for swap in ([0, 1], [1, 0]):
            points = torch.as_tensor(arrows.points[keep][:, swap], dtype=torch.float32)
            with torch.no_grad():
                scores = [as_points(sm.scorenet(points, sigma)) for sigma in PLOT_SIGMAS]
            found.append({"vectors": arrows.vectors[keep][:, swap], "scores": scores})
    return found


def plot_match(drawn_arrows: dict) -> float:
    """The best mean cosine, over σ, between the arrows drawn and the network's output at their points."""
    vectors = torch.as_tensor(drawn_arrows["vectors"], dtype=torch.float32)
    return max(torch.nn.functional.cosine_similarity(torch.as_tensor(scores, dtype=torch.float32), vectors,
                                                     dim=1).mean().item() for scores in drawn_arrows["scores"])


def test_4b_score_field(probe, trained, deduct):
    """The student's network, trained by the test on a mixture of three Gaussians with the student's loss (3000 Adam
    steps, 10 levels from 3 to 0.01): mean cosine with the mixture's exact blurred score at σ = 0.45 ... 0.07 at least
    0.85 (else -6; at most 0.1 fails); and plot_score() draws it: a quiver of the network's output at whatever σ it
    chose, as drawn or with x and y swapped (else -3)."""
    points = field_points()
    judge_field(probe(field_probe, trained, points), points, deduct)
    quivers = probe(plot_probe, trained)
    if not quivers:
        deduct("plot", "plot_score() draws no arrows (plt.quiver of the score network's output on a grid)")
    elif max(plot_match(quiver) for quiver in quivers) < 0.9:
        deduct("plot", "the arrows plot_score() draws are not the score network's output at their points")


def test_4c_samples(probe, trained, deduct):
    """2000 samples of langevin_dynamics_sample with the trained network (started from N(0, σ_1² I), T = 50, ε such
    that α_i = 0.25 σ_i²) against fresh data: energy distance and sliced W2 under 4 x their real-vs-real floors
    (else -6); every mode at least half its weight, and a spread around the modes 0.75-1.8 x the data's (else -2);
    samples nowhere near the data fail."""
    lr = LANGEVIN_LR * step_scale(probe, LEVELS)
    start = LEVELS[0] * torch.randn(COURSE_POINTS, 2, generator=torch.Generator().manual_seed(41))

    def ok(samples):
        assert samples.shape == (2000, 2), f"langevin_dynamics_sample returned {tuple(samples.shape)}: (N, 2) asked"
        return max(distances_to_floor(samples).values()) < MATCH_RATIO, None

    samples, _ = either_order(lambda levels: probe(langevin, trained, start, levels, LANGEVIN_STEPS, lr, 42), LEVELS,
                              ok)
    judge_samples(samples.numpy(), MATCH_RATIO, SPREADS, LOST_SPREAD, deduct)
