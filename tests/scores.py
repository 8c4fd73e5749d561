"""Known scores and distances for grading both editions' diffusion code (tests/test_grade_diffusion_*.py).

Stand-in score networks whose loss or dynamics can be computed by hand, the exact score of a Gaussian mixture,
distances between point sets next to the real-vs-real floor, and `with_levels`, which passes noise levels as a
torch tensor or, if the student's code refuses one, as the numpy array the course's generate_sigmas returns.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def sigma_column(sigma, x: torch.Tensor) -> torch.Tensor:
    """σ as a score network may receive it (a float, a 0-d tensor or array, (N,), (N, 1) or (N, 2)) -> (N, 1)."""
    sigma = torch.as_tensor(np.asarray(sigma.detach().cpu() if torch.is_tensor(sigma) else sigma), dtype=x.dtype)
    return sigma.reshape(len(x), -1)[:, :1] if sigma.numel() >= len(x) else sigma.reshape(1, 1).expand(len(x), 1)


class KnownScore(nn.Module):
    """s(x̃, σ) = −(x̃ − m) / σ² + b. The loss term is then ‖(m − x) / σ² + b‖², whatever the noise drawn.

    Records every x̃ and σ it is called with.
    """

    def __init__(self, m=(0.0, 0.0), b=(0.0, 0.0)) -> None:
        super().__init__()
        self.register_buffer("m", torch.tensor(m))
        self.register_buffer("b", torch.tensor(b))
        self.dummy = nn.Parameter(torch.zeros(()))  # so that the object looks like a trainable network
        self.sigmas_seen: list[torch.Tensor] = []  # every σ it is called with, one per point
        self.inputs: list[torch.Tensor] = []       # every x̃

    def forward(self, x, sigma):
        sigma = sigma_column(sigma, x)
        self.sigmas_seen.append(sigma.detach().flatten())
        self.inputs.append(x.detach())
        return -(x - self.m) / sigma ** 2 + self.b


class ZeroScore(KnownScore):
    def forward(self, x, sigma):
        super().forward(x, sigma)
        return torch.zeros_like(x)


class Mixture:
    """Σ_k w_k N(μ_k, s² I) in 2-D: draws and, blurred by N(0, σ² I), its exact score."""

    def __init__(self, centers: list, weights: list, std: float) -> None:
        self.centers, self.weights, self.std = torch.tensor(centers), torch.tensor(weights), std

    def draw(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n points (n, 2), from `generator` (else torch's global one)."""
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return self.centers[component] + self.std * torch.randn(n, 2, generator=generator)

    def score(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """∇ log p_σ(x) = Σ_k r_k(x) (μ_k − x) / (s² + σ²), r_k the posterior weight of component k: (N, 2)."""
        variance = self.std ** 2 + sigma_column(sigma, x) ** 2                        # (N, 1)
        offsets = self.centers[None] - x[:, None]                                      # (N, K, 2)
        logits = self.weights.log() - offsets.square().sum(-1) / (2 * variance)        # (N, K)
        return (logits.softmax(1)[..., None] * offsets).sum(1) / variance


class MixtureScore(nn.Module):
    """A stand-in score network: the exact score of a Mixture blurred by N(0, σ² I)."""

    def __init__(self, mixture: Mixture) -> None:
        super().__init__()
        self.mixture = mixture
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, sigma):
        return self.mixture.score(x, sigma)


NCSN_MIXTURE = Mixture([[5.0, 5.0], [-5.0, -5.0]], [0.8, 0.2], std=1.0)  # Song & Ermon 2019, Fig. 3
# The data the tests train a student's network on: three modes at radius 1, unequal weights
DATA = Mixture([[math.cos(a), math.sin(a)] for a in (0.5, 0.5 + 2 * math.pi / 3, 0.5 + 4 * math.pi / 3)],
               [0.5, 0.3, 0.2], std=0.2)


def geometric(sigma_max: float, sigma_min: float, num: int) -> torch.Tensor:
    """num noise levels from sigma_max down to sigma_min, geometrically spaced: (num,)."""
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), num))


def with_levels(call, levels: torch.Tensor):
    """call(levels) with the levels as a float32 tensor; if the student's code raises on a tensor, again with the
    numpy array the course's generate_sigmas returns (the exception of the first try if both fail)."""
    try:
        return call(levels.clone())
    except Exception as error:
        try:
            return call(levels.double().numpy())
        except Exception:
            raise error from None


def as_points(value) -> torch.Tensor:
    """A student's result (a tensor, maybe on the GPU or with a gradient, or an array) -> a float32 CPU tensor."""
    return torch.as_tensor(np.asarray(value.detach().cpu() if torch.is_tensor(value) else value), dtype=torch.float32)


def field_agreement(scorenet: nn.Module, sigma: float, n: int = 4000) -> float:
    """Mean cosine between scorenet(x, σ) and the exact score of DATA blurred by σ, at x ~ p_σ (n points)."""
    generator = torch.Generator().manual_seed(0)
    x = DATA.draw(n, generator) + sigma * torch.randn(n, 2, generator=generator)
    with torch.no_grad():
        learned = as_points(scorenet(x, sigma))
    return nn.functional.cosine_similarity(learned, DATA.score(x, sigma), dim=1).mean().item()


def sliced_w2(a: torch.Tensor, b: torch.Tensor, directions: int = 90) -> float:
    """Sliced Wasserstein-2 distance of equal-size point sets a, b (n, 2): the rms over evenly spaced
    directions of the 1-D W2 distance of the projections (which pairs their sorted values)."""
    angles = torch.arange(directions, dtype=torch.float64) * math.pi / directions
    unit = torch.stack([angles.cos(), angles.sin()], 1)
    return ((a.double() @ unit.T).sort(0).values - (b.double() @ unit.T).sort(0).values).square().mean().sqrt().item()


def energy_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """√(2 E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖) of point sets a (n, 2), b (m, 2) (means over all pairs)."""
    a, b = a.double(), b.double()
    mean = lambda u, v: torch.cdist(u, v).mean()  # noqa: E731
    return (2 * mean(a, b) - mean(a, a) - mean(b, b)).clamp_min(0).sqrt().item()


def distances_to_floor(samples: torch.Tensor, draws: int = 10) -> dict[str, float]:
    """Each distance of samples (n, 2) from `draws` fresh DATA draws of n points, over the same distance between
    two fresh draws (the real-vs-real floor), both as rms over the draws: 1 is as close as true data gets."""
    fresh, others = [DATA.draw(len(samples)) for _ in range(draws)], [DATA.draw(len(samples)) for _ in range(draws)]
    rms = lambda values: math.sqrt(sum(v * v for v in values) / len(values))  # noqa: E731
    ratios = {}
    for distance in (energy_distance, sliced_w2):
        floor = rms([distance(other, ref) for other, ref in zip(others, fresh)])
        ratios[distance.__name__] = rms([distance(samples, ref) for ref in fresh]) / floor
    return ratios


def mode_shares_and_spread(samples: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The share of samples (n, 2) nearest each mode of DATA (K,), and their rms distance to that mode over the
    data's own (s √2): 1 for samples as tight as the data, larger when they are spread too thinly."""
    nearest = torch.cdist(samples, DATA.centers).argmin(1)
    shares = torch.bincount(nearest, minlength=len(DATA.centers)).float() / len(samples)
    spread = (samples - DATA.centers[nearest]).square().sum(1).mean().sqrt().item() / (DATA.std * math.sqrt(2))
    return shares, spread


def judge_samples(samples: torch.Tensor, match_ratio: float, spreads: tuple[float, float], lost_spread: float,
                  deduct) -> None:
    """Grade samples (n, 2) of DATA: fail when they are nowhere near it, deduct 'distance' when they do not match
    it (distances over the floor above match_ratio), 'modes' when they miss a mode or their spread around the modes,
    over the data's, is outside `spreads` (correct files: 0.93-1.45)."""
    assert bool(torch.isfinite(samples).all()), "the samples hold NaN or infinite values"
    ratios = distances_to_floor(samples)
    shares, spread = mode_shares_and_spread(samples)
    found = (f"energy distance {ratios['energy_distance']:.2f}x and sliced W2 {ratios['sliced_w2']:.2f}x the "
             f"real-vs-real floor; mode shares {[round(s, 2) for s in shares.tolist()]} (data "
             f"{DATA.weights.tolist()}); spread around the modes {spread:.2f}x the data's")
    assert spread < lost_spread, f"the samples are nowhere near the data: {found}"
    if max(ratios.values()) >= match_ratio:
        deduct("distance", f"the samples do not match the data: {found}")
    if bool((shares < 0.5 * DATA.weights).any()) or not spreads[0] < spread < spreads[1]:
        deduct("modes", f"the samples miss a mode, or sit too tightly on the modes or too loosely around them: "
                        f"{found}")


# ----------------------------------------------------------------------------------------------------
# Training a student's score network on DATA, whatever constants their loss puts on the handout's

LEVELS = geometric(3.0, 0.01, 10)     # from about DATA's diameter down to 5% of a mode's width
TRAIN_ITERATIONS, BATCH, LR = 3000, 250, 5e-3
# Adam at LR from the first step sent the course's 8-layer ScoreNet to "always 0" (loss stuck at E‖z‖² = 2, field
# cosine 0) at 2 of 20 seeds; a linear warm-up over WARMUP_ITERATIONS trains it at all 20 (seed_sweep.py).
WARMUP_ITERATIONS = 200
# The trained network's field is compared with the exact one at σ = 0.45 ... 0.07, where it outlines the modes:
# full points from a mean cosine of FIELD_FULL, none at FIELD_ZERO or below.
FIELD_LEVELS = LEVELS[3:7]
FIELD_FULL, FIELD_ZERO = 0.85, 0.1


def judge_field(scorenet: nn.Module, deduct) -> None:
    """Grade a network trained on DATA: fail when its field does not point toward the data at all, deduct 'field'
    when it does not resemble the exact blurred score's (mean cosine over FIELD_LEVELS)."""
    agreements = [field_agreement(scorenet, sigma) for sigma in FIELD_LEVELS.tolist()]
    agreement = sum(agreements) / len(agreements)
    found = "mean cosine with the exact score " + ", ".join(f"{a:.2f} at σ = {s:.2g}"
                                                            for a, s in zip(agreements, FIELD_LEVELS.tolist()))
    assert agreement > FIELD_ZERO, f"the learned score does not point toward the data: {found}"
    if agreement < FIELD_FULL:
        deduct("field", f"the learned score field does not resemble the data's: {found}")


def loss_constant(loss, sigma: float, n: int) -> float:
    """The factor c a student's loss(scorenet, points, levels) puts on the handout's Σ_x ‖s(x̃, σ) + (x̃ − x) / σ²‖²
    at one level σ for n points (a mean over the batch, a 1/2, the σ² weighting, ...), measured with a KnownScore
    that makes the sum deterministic."""
    m, b = (0.25, -0.5), (1.0, 0.0)
    term = ((torch.tensor(m) / sigma ** 2 + torch.tensor(b)) ** 2).sum().item()  # x = 0: ‖m / σ² + b‖²
    value = with_levels(lambda levels: loss(KnownScore(m, b), torch.zeros(n, 2), levels), torch.tensor([sigma]))
    return float(as_points(value)) / (n * term)


def train_on_data(scorenet: nn.Module, loss) -> None:
    """Train a student's scorenet on fresh DATA draws each iteration with their loss(scorenet, points, levels), one
    slice of the batch per level of LEVELS, each divided by the loss's own constant (`loss_constant`) and weighted
    by σ² (NCSN's λ): the handout's σ²-weighted loss, whatever convention the student's carries. Adam, warmed up
    linearly, then cosine-decayed."""
    per_level = BATCH // len(LEVELS)
    weights = [sigma ** 2 / loss_constant(loss, sigma, per_level) / BATCH for sigma in LEVELS.tolist()]
    device = next(scorenet.parameters()).device
    optimizer = torch.optim.Adam(scorenet.parameters(), lr=LR)
    schedules = torch.optim.lr_scheduler
    warmup = schedules.LinearLR(optimizer, 0.01, 1.0, WARMUP_ITERATIONS)
    decay = schedules.CosineAnnealingLR(optimizer, TRAIN_ITERATIONS - WARMUP_ITERATIONS)
    schedule = schedules.SequentialLR(optimizer, [warmup, decay], [WARMUP_ITERATIONS])
    for _ in range(TRAIN_ITERATIONS):
        slices = DATA.draw(per_level * len(LEVELS)).to(device).chunk(len(LEVELS))
        total = sum(weight * with_levels(lambda levels: loss(scorenet, points, levels), LEVELS[k:k + 1])
                    for k, (weight, points) in enumerate(zip(weights, slices)))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        schedule.step()


def check_noise_std(loss) -> None:
    """x̃ = x + σ z with z ~ N(0, I): what a stand-in network receives from a student's loss(scorenet, points, levels)
    at x = 0, whatever the loss does with it afterwards."""
    n, sigma, stand_in = 20000, 0.5, ZeroScore()
    with_levels(lambda levels: loss(stand_in, torch.zeros(n, 2), levels), torch.tensor([sigma]))
    assert stand_in.inputs, "the loss never called the score network"
    received = torch.cat(stand_in.inputs)
    std = received.std().item()
    assert abs(received.mean().item()) < 0.02 and 0.97 * sigma < std < 1.03 * sigma, (
        f"at x = 0 and σ = {sigma} the score network received x̃ of mean {received.mean().item():.3f} and standard "
        f"deviation {std:.3f}: x̃ = x + σ z with z ~ N(0, I) has mean 0 and standard deviation σ")


def check_sigma_per_sample(loss) -> None:
    """Each sample draws its own σ, uniformly from the levels: the σ a stand-in network receives with each x̃ from a
    student's loss, for 4000 samples and the levels (0.5, 2.0)."""
    n, stand_in = 4000, ZeroScore()
    with_levels(lambda levels: loss(stand_in, torch.zeros(n, 2), levels), torch.tensor([0.5, 2.0]))
    assert stand_in.sigmas_seen, "the loss never called the score network"
    seen = torch.cat(stand_in.sigmas_seen)
    values = sorted(seen.unique().tolist())
    assert len(seen) == n and len(values) == 2 and all(min(abs(v - s) for s in (0.5, 2.0)) < 1e-6 for v in values), (
        f"the network received {len(seen)} σ values taking {[round(v, 4) for v in values][:5]} for {n} samples and the "
        f"levels (0.5, 2.0): one σ per sample, drawn from the levels")
    share = (seen < 1).float().mean().item()
    assert abs(share - 0.5) < 0.04, (f"{share:.2f} of the samples drew σ = 0.5 of the levels (0.5, 2.0): each level "
                                     f"must be drawn with equal probability")
