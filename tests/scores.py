"""Known scores and distances for grading both editions' diffusion code (tests/test_grade_diffusion_*.py).

For the probes, in the worker: stand-in score networks whose loss or dynamics can be computed by hand, the exact
score of a Gaussian mixture, `with_levels`, which passes noise levels as a torch tensor or, if the student's code
refuses one, as the numpy array the course's generate_sigmas returns, and the training of a student's network on
DATA. For the verdicts, in the grader: the learned field against the exact one, distances between point sets next to
the real-vs-real floor, what a stand-in network received from a student's loss.
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


LEVELS = geometric(3.0, 0.01, 10)     # from about DATA's diameter down to 5% of a mode's width
TRAIN_ITERATIONS, BATCH, LR = 3000, 250, 5e-3
COURSE_BATCH_ITERATIONS = 1000  # for a loss that takes only the course's number of points (course_batch_steps)
# Adam at LR from the first step sent the course's 8-layer ScoreNet to "always 0" (loss stuck at E‖z‖² = 2, field
# cosine 0) at 2 of 20 seeds; a linear warm-up over WARMUP_ITERATIONS trains it at all 20 (seed_sweep.py).
WARMUP_ITERATIONS = 200
# The trained network's field is compared with the exact one at σ = 0.45 ... 0.07, where it outlines the modes:
# full points from a mean cosine of FIELD_FULL, none at FIELD_ZERO or below.
FIELD_LEVELS = LEVELS[3:7]
FIELD_FULL, FIELD_ZERO = 0.85, 0.1
NOISE_SIGMA, NOISE_SAMPLES = 0.5, 20000      # what the loss's noise is measured with: x = 0, one level
PER_SAMPLE_LEVELS, PER_SAMPLE_SAMPLES = (0.5, 2.0), 4000


# ----------------------------------------------------------------------------------------------------
# In the worker: what the probes call the student's code with, and the training of a student's network


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


FAR = 1e6  # where samples that are not finite numbers are put, far from any data (a reply may hold no NaN)


def far_if_not_finite(samples: torch.Tensor) -> torch.Tensor:
    """A sampler's output with every NaN or infinite coordinate replaced by FAR: judged as far from the data."""
    return torch.where(torch.isfinite(samples), samples, torch.full_like(samples, FAR))


def loss_constant(loss, sigma: float, n: int) -> float:
    """The factor c a student's loss(scorenet, points, levels) puts on the handout's Σ_x ‖s(x̃, σ) + (x̃ − x) / σ²‖²
    at one level σ for n points (a mean over the batch, a 1/2, the σ² weighting, ...), measured with a KnownScore
    that makes the sum deterministic."""
    m, b = (0.25, -0.5), (1.0, 0.0)
    term = ((torch.tensor(m) / sigma ** 2 + torch.tensor(b)) ** 2).sum().item()  # x = 0: ‖m / σ² + b‖²
    value = with_levels(lambda levels: loss(KnownScore(m, b), torch.zeros(n, 2), levels), torch.tensor([sigma]))
    return float(as_points(value)) / (n * term)


def train_on_data(scorenet: nn.Module, loss, course_points: int | None = None) -> None:
    """Train a student's scorenet on fresh DATA draws with their loss(scorenet, points, levels), as the handout's
    σ²-weighted loss whatever constant convention the student's carries (`per_level_steps`; for a loss that takes only
    the course's `course_points` points, `course_batch_steps`). Adam, warmed up linearly, then cosine-decayed."""
    try:
        steps, iterations = per_level_steps(scorenet, loss), TRAIN_ITERATIONS
    except Exception:
        if course_points is None:
            raise
        steps, iterations = course_batch_steps(scorenet, loss, course_points), COURSE_BATCH_ITERATIONS
    optimizer = torch.optim.Adam(scorenet.parameters(), lr=LR)
    schedules = torch.optim.lr_scheduler
    warmup = schedules.LinearLR(optimizer, 0.01, 1.0, WARMUP_ITERATIONS)
    decay = schedules.CosineAnnealingLR(optimizer, iterations - WARMUP_ITERATIONS)
    schedule = schedules.SequentialLR(optimizer, [warmup, decay], [WARMUP_ITERATIONS])
    for _ in range(iterations):
        optimizer.zero_grad()
        steps().backward()
        optimizer.step()
        schedule.step()


def per_level_steps(scorenet: nn.Module, loss):
    """One training step's objective: the loss on one slice of a batch of BATCH points per level of LEVELS, each
    divided by the loss's own constant at that level (`loss_constant`) and weighted by σ² (NCSN's λ). Raises if
    the loss refuses so few points."""
    per_level = BATCH // len(LEVELS)
    weights = [sigma ** 2 / loss_constant(loss, sigma, per_level) / BATCH for sigma in LEVELS.tolist()]
    device = next(scorenet.parameters()).device

    def objective() -> torch.Tensor:
        slices = DATA.draw(per_level * len(LEVELS)).to(device).chunk(len(LEVELS))
        return sum(weight * with_levels(lambda levels: loss(scorenet, points, levels), LEVELS[k:k + 1])
                   for k, (weight, points) in enumerate(zip(weights, slices)))

    return objective


class Reweighted(nn.Module):
    """A score network whose output is the student's network's, but whose gradient each sample scales by weight(σ)
    (σ as the loss passed it, (N, 1)): a loss over samples of mixed levels then trains as if each sample's term were
    multiplied by that weight."""

    def __init__(self, scorenet: nn.Module, weight) -> None:
        super().__init__()
        self.scorenet, self.weight = scorenet, weight

    def forward(self, x, sigma):
        out = self.scorenet(x, sigma)
        scale = self.weight(sigma_column(sigma, x).to(out.device))
        return out.detach() + scale * (out - out.detach())  # the value of out, the gradient of scale * out


def course_batch_steps(scorenet: nn.Module, loss, n: int):
    """One training step's objective for a loss that takes only the course's n points (it reshapes by that number):
    the loss on n points, the levels drawn by the student's own code, each sample's gradient scaled by
    σ² / (the loss's constant at its level) (`Reweighted`): the gradient of the σ²-weighted loss."""
    constants = torch.tensor([loss_constant(loss, sigma, n) for sigma in LEVELS.tolist()])
    device = next(scorenet.parameters()).device

    def weight(sigma: torch.Tensor) -> torch.Tensor:
        level = (sigma.cpu() - LEVELS[None]).abs().argmin(1)  # the level each sample drew
        return (LEVELS[level] ** 2 / constants[level] / n)[:, None].to(sigma)

    reweighted = Reweighted(scorenet, weight)
    return lambda: torch.as_tensor(with_levels(lambda levels: loss(reweighted, DATA.draw(n).to(device), levels),
                                               LEVELS))


def weights_of(module: nn.Module) -> dict:
    """In the worker: a trained network's state, to be sent to the grader and loaded into the next probes'."""
    return dict(module.state_dict())


def load_weights(module: nn.Module, weights: dict) -> nn.Module:
    """In the worker: the state weights_of sent, back into a freshly built network; in eval mode."""
    module.load_state_dict({name: torch.as_tensor(value) for name, value in weights.items()})
    return module.eval()


def field_at(scorenet: nn.Module, points: dict[str, torch.Tensor]) -> dict:
    """In the worker: scorenet(x, σ) at each σ's points of field_points."""
    with torch.no_grad():
        return {sigma: as_points(scorenet(x, float(sigma))) for sigma, x in points.items()}


def received_by_stand_in(loss, levels: tuple, samples: int, batch: int) -> dict:
    """In the worker: every x̃ and σ a stand-in network receives from a student's loss(scorenet, points, levels) at
    x = 0, called with `batch` points at a time until `samples` points; per call of the loss."""
    received: dict = {"inputs": [], "sigmas": []}
    for _ in range(samples // batch):
        stand_in = ZeroScore()
        with_levels(lambda given: loss(stand_in, torch.zeros(batch, 2), given), torch.tensor(levels))
        received["inputs"].append(torch.cat(stand_in.inputs) if stand_in.inputs else torch.zeros(0, 2))
        received["sigmas"].append(torch.cat(stand_in.sigmas_seen) if stand_in.sigmas_seen else torch.zeros(0))
    return received


# ----------------------------------------------------------------------------------------------------
# In the grader: the verdicts' measures, on the data the probes return


def field_points(n: int = 4000) -> dict[str, torch.Tensor]:
    """Where a trained network's field is compared with the exact one: n points x ~ p_σ for each σ of FIELD_LEVELS,
    keyed by σ as text."""
    generator = torch.Generator().manual_seed(0)
    return {repr(sigma): DATA.draw(n, generator) + sigma * torch.randn(n, 2, generator=generator)
            for sigma in FIELD_LEVELS.tolist()}


def judge_field(learned: dict, points: dict[str, torch.Tensor], deduct) -> None:
    """Grade the field of a network trained on DATA, learned at field_points (field_at): fail when it does not point
    toward the data at all, deduct 'field' when it does not resemble the exact blurred score's (mean cosine over
    FIELD_LEVELS)."""
    agreements = []
    for sigma, x in points.items():
        scores = torch.as_tensor(learned[sigma], dtype=torch.float32)
        assert scores.shape == x.shape, f"the score network gives shape {tuple(scores.shape)} for {tuple(x.shape)}"
        exact = DATA.score(x, float(sigma))
        agreements.append(nn.functional.cosine_similarity(scores, exact, dim=1).mean().item())
    agreement = sum(agreements) / len(agreements)
    found = "mean cosine with the exact score " + ", ".join(f"{a:.2f} at σ = {float(s):.2g}"
                                                            for a, s in zip(agreements, points))
    assert agreement > FIELD_ZERO, f"the learned score does not point toward the data: {found}"
    if not agreement >= FIELD_FULL:
        deduct("field", f"the learned score field does not resemble the data's: {found}")


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
    generator = torch.Generator().manual_seed(0)
    fresh = [DATA.draw(len(samples), generator) for _ in range(draws)]
    others = [DATA.draw(len(samples), generator) for _ in range(draws)]
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


def judge_samples(samples: np.ndarray, match_ratio: float, spreads: tuple[float, float], lost_spread: float,
                  deduct) -> None:
    """Grade samples (n, 2) of DATA: fail when they are nowhere near it, deduct 'distance' when they do not match
    it (distances over the floor above match_ratio), 'modes' when they miss a mode or their spread around the modes,
    over the data's, is outside `spreads` (correct files: 0.93-1.45)."""
    samples = torch.as_tensor(samples, dtype=torch.float32)
    ratios = distances_to_floor(samples)
    shares, spread = mode_shares_and_spread(samples)
    found = (f"energy distance {ratios['energy_distance']:.2f}x and sliced W2 {ratios['sliced_w2']:.2f}x the "
             f"real-vs-real floor; mode shares {[round(s, 2) for s in shares.tolist()]} (data "
             f"{DATA.weights.tolist()}); spread around the modes {spread:.2f}x the data's")
    assert spread < lost_spread, f"the samples are nowhere near the data: {found}"
    if not max(ratios.values()) < match_ratio:
        deduct("distance", f"the samples do not match the data: {found}")
    if bool((shares < 0.5 * DATA.weights).any()) or not spreads[0] < spread < spreads[1]:
        deduct("modes", f"the samples miss a mode, or sit too tightly on the modes or too loosely around them: "
                        f"{found}")


def check_noise_std(received: dict) -> None:
    """x̃ = x + σ z with z ~ N(0, I): what a stand-in network received at x = 0 and σ = NOISE_SIGMA
    (received_by_stand_in), whatever the loss does with it afterwards."""
    inputs = np.concatenate([np.asarray(x, dtype=np.float64).reshape(-1) for x in received["inputs"]])
    assert len(inputs), "the loss never called the score network"
    mean, std, sigma = inputs.mean(), inputs.std(ddof=1), NOISE_SIGMA
    assert abs(mean) < 0.02 and 0.97 * sigma < std < 1.03 * sigma, (
        f"at x = 0 and σ = {sigma} the score network received x̃ of mean {mean:.3f} and standard deviation {std:.3f}: "
        f"x̃ = x + σ z with z ~ N(0, I) has mean 0 and standard deviation σ")


def check_sigma_per_sample(received: dict) -> None:
    """Each sample draws its own σ, uniformly from the levels: the σ a stand-in network received with each x̃ for
    PER_SAMPLE_SAMPLES samples and the levels PER_SAMPLE_LEVELS (received_by_stand_in): both levels in every call of
    the loss (one σ for the whole batch has one), half of the samples each."""
    calls = [np.asarray(s, dtype=np.float64).reshape(-1) for s in received["sigmas"]]
    seen = np.concatenate(calls)
    values, n, levels = sorted(np.unique(seen).tolist()), PER_SAMPLE_SAMPLES, PER_SAMPLE_LEVELS
    assert len(seen) == n and len(values) == 2 and all(min(abs(v - s) for s in levels) < 1e-6 for v in values), (
        f"the network received {len(seen)} σ values taking {[round(v, 4) for v in values][:5]} for {n} samples and the "
        f"levels {levels}: one σ per sample, drawn from the levels")
    shares = [float((call < 1).mean()) for call in calls]
    assert all(0 < share < 1 for share in shares), (f"each call of the loss gave all its samples the same σ (shares of "
                                                    f"σ = {levels[0]}: {shares}): one σ per sample, not per batch")
    share = float((seen < 1).mean())
    assert abs(share - 0.5) < 0.04, (f"{share:.2f} of the samples drew σ = {levels[0]} of the levels {levels}: each "
                                     f"level must be drawn with equal probability")
