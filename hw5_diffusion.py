"""Score-based diffusion on 2-D points: denoising score matching + annealed Langevin dynamics (hw5).

    python hw5_diffusion.py train                 # about 35 s on a laptop CPU; writes outputs/diffusion/model.pt
    python hw5_diffusion.py sample                # samples, figures and metrics.json (trains first if needed)
    python hw5_diffusion.py sample --sampler langevin   # the course's annealed Langevin dynamics at every level
    python hw5_diffusion.py train --data my.npy   # your own (N, 2) points instead of the "CS446" cloud
    python hw5_diffusion.py plot-score --sigma 0.05
    python hw5_diffusion.py evaluate              # sliced W2 and energy distance next to the real-vs-real floor
                                                  # (for --data, against the fifth of the file held out)
    python hw5_diffusion.py train --recipe sp24 --out-dir outputs/diffusion-sp24   # the Spring-2024 handout's
                                                  # ScoreNet, loss and sampler on create_samples()

Both editions of the course's question are solved here, on one implementation: Fall 2022 (question 4,
`DiffusionModel` and `ScoreMatching`) and Spring 2024 (question 5, `ScoreNet`, `compute_denoising_loss`,
`langevin_dynamics_sample`). A noise-conditional score network s_θ(x, σ) ≈ ∇_x log p_σ(x), where p_σ is the
data blurred by N(0, σ² I), is trained at noise levels σ_1 > ... > σ_L with the denoising loss
    L(θ) = Σ_x ‖ s_θ(x̃, σ) + (x̃ − x) / σ² ‖²,   x̃ ~ N(x, σ² I),   one σ drawn per sample
(Spring 2024 weighs each term by λ(σ) = σ²/2 and averages), then sampled with annealed Langevin dynamics: at
each level, from the largest to the smallest, T steps x ← x + a_i s_θ(x, σ_i) + √(2 a_i) z with a step a_i
proportional to σ_i² (Fall 2022 writes a_i = α_i / 2, α_i = ε σ_i² / σ_L²; Spring 2024 a_i = ε σ_i² / σ_L²).
What makes the default recipe good in a minute of CPU (see the README for measurements): inputs and noise levels
measured in units of the data's spread, random Fourier features, the EDM/NCSNv2 output scaling, the
σ²-weighted loss, a high learning rate decayed to zero, an EMA of the weights, one final denoising step, and
by default (`--sampler pc`, `predictor_corrector`) reverse diffusion between the levels, which keeps a mixture's
weights where annealed Langevin dynamics evens them out (`--sampler langevin`: the course's sampler).
"""
from __future__ import annotations

import argparse
import functools
import math
import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
import typer
from matplotlib.font_manager import FontProperties
from matplotlib.path import Path as PolygonPath
from matplotlib.textpath import TextPath
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from hw5_utils import (App, Checkpointer, DEVICE, OVERWRITE, RESUME, Run, UserError, check_out_dir, config_options,
                       create_samples, device_of, generate_sigmas, get_rng_state, load_weights, note, pick_device,
                       progress, require, save_array, save_figure, save_gif, seed_everything, setting,
                       typed_options, write_metrics)
from hw5_utils import plot_score as plot_course_score

# ----------------------------------------------------------------------------------------------------
# Hyperparameters (the command line's defaults)


DATASET_NAMES = ("cs446", "cs446-sp24", "moons", "8gaussians", "swissroll", "checkerboard", "rings", "mixture")


@dataclass
class Config:
    recipe: str = setting("ours", "ours: this script's recipe on --dataset; sp24: the Spring-2024 handout's (ScoreNet "
                                  "of 8 layers, its loss, σ from 0.3 to 0.01, create_samples() data, and its sampler; "
                                  "Adam at 2e-3, 20000 iterations): options typed replace its values.",
                          choices=("ours", "sp24"))
    dataset: str = setting("cs446", f"Built-in data: {', '.join(DATASET_NAMES)}.")
    data: Optional[str] = setting(None, "Your own data: a .npy file of shape (N, 2) (replaces --dataset).")
    n_points: int = setting(2000, "Points drawn from a built-in data set (the course's cs446.npy had 2000).", min=2)
    iterations: int = setting(4000, "Training iterations (with --resume: the total, by default the saved run's).",
                              min=1)
    batch_size: int = setting(2000, "Points per training batch (a set this small is one batch: every point, fresh "
                                    "noise each time).", min=1)
    lr: float = setting(5e-3, "Peak Adam learning rate (warmed up over 100 iterations, then cosine-decayed to 0).",
                        positive=True)
    ema_decay: float = setting(0.999, min=0, below=1, option=False)  # the saved model: an average of the weights
    sigma_max: Optional[float] = setting(None, "Largest noise level [default: the data's diameter].", positive=True)
    sigma_min: Optional[float] = setting(None, "Smallest noise level [default: 1% of the data's spread].",
                                         positive=True)
    num_levels: int = setting(10, "Number of noise levels, geometric from --sigma-max to --sigma-min (1: "
                                  "--sigma-max alone).", min=1)
    sigma_weighted: bool = setting(True, "Train on the σ²-weighted loss (NCSN; see `fit`); --no-sigma-weighted: "
                                         "the handout's.")
    hidden_units: int = setting(128, "Width of the score network's hidden layers.", min=1)
    num_layers: int = setting(3, min=1, option=False)
    fourier_features: int = setting(32, min=0, option=False)
    fourier_scale: float = setting(1.0, option=False)  # frequencies ~ N(0, scale²) cycles per unit of data spread
    seed: int = setting(1234, "Seed of every random number generator.")


CHECKPOINT = "model.pt"
CHECKPOINT_KEYS = ("model", "config", "noise_levels", "data")
RESUME_KEYS = ("online_model", "ema_count", "optimizer", "iteration", "history", "rng", "train_seconds")
OPTIONS_RESUME_USES = ("iterations", "out_dir", "device", "resume", "overwrite")  # others typed get a note
WARMUP_ITERATIONS = 100
SNAPSHOT_EVERY = 100                    # iterations between in-memory checkpoints (Ctrl-C loses at most these)
SIGMA_MIN_FRACTION = 0.01               # default σ_min, as a fraction of the data's spread
LANGEVIN_STEP_RATIO = 0.5               # default ε = this × σ_L²: the step at level i is α_i = 0.5 σ_i²
SAMPLING_ITERATIONS = 100               # Langevin steps per noise level (10 levels: 1000 steps)
SAMPLERS = ("langevin", "pc")           # the course's annealed Langevin; reverse diffusion between the levels
SAMPLER = "pc"                          # the default recipe's: it keeps a mixture's weights, and on average is
                                        # as close to fresh data as langevin or closer on every data set (README);
                                        # the Spring-2024 recipe samples with its handout's Langevin dynamics
SNAPSHOT_STEPS = (0, 200, 400, 600, 800)  # the Spring-2024 handout's snapshot figure, plus the final samples
TRACKED_POINTS = 2000                   # the trajectory (for the figures) is kept for this many samples
EVAL_SIZE = 2000                        # evaluation compares batches of 2000 samples with 2000 fresh data points,
EVAL_BATCHES = 5                        # five such batches (10 000 samples),
EVAL_DRAWS = 40                         # against 40 fresh data draws; the floor averages 40 pairs of data draws
HOLDOUT_FRACTION = 0.2                  # of a --data file's points, held out for evaluation: training never sees them
HOLDOUT_SEED = 0                        # the split's seed: one split per file, whatever --seed
MIN_FILE_POINTS = 10                    # a --data file needs this many points (2 of them held out)
# The Spring-2024 handout's recipe (question 5): ScoreNet(8 layers, 128 wide) on create_samples(), its loss, σ from
# 0.3 to 0.01, and its sampler (x_0 ~ N(0, I), ε = 2e-5); the options typed replace these values. Two changes, both
# measured (README): Adam at 2e-3 with this script's warm-up and cosine decay, where the handout's constant 0.01
# leaves the network at the trivial solution (loss 0.98 after 5000 iterations) and a constant rate leaves the last
# weights noisy; and SP24_ITERATIONS instead of the handout's 50000.
SP24_ITERATIONS = 20000
SP24 = dict(recipe="sp24", dataset="cs446-sp24", n_points=1169, iterations=SP24_ITERATIONS, lr=2e-3, ema_decay=0.0,
            sigma_max=0.3, sigma_min=0.01, num_levels=10, num_layers=8, hidden_units=128)
RECIPES = {"ours": {}, "sp24": SP24}
SP24_EPS = 2e-5                         # the Spring-2024 sampler's ε: its steps are α_i = ε σ_i² / σ_L²

# ====================================================================================================
# The course's code. Both editions share the mathematics: the denoising residual and annealed Langevin dynamics.


def denoising_residuals(scorenet: Callable, samples: torch.Tensor, sigmas: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Denoising score matching, per sample: one σ drawn uniformly from sigmas (L,) for each of samples (N, 2),
    x̃ = x + σ z with z ~ N(0, I) -> the residuals ‖s(x̃, σ) + (x̃ − x) / σ²‖², (N,), and the σ drawn, (N,).

    −(x̃ − x) / σ² is the score of N(x̃; x, σ² I); averaged over the data it is the score of the data blurred by
    σ, so the residual is smallest, on average, for the blurred data's score (Vincent 2011).
    """
    levels = torch.as_tensor(np.asarray(sigmas) if not torch.is_tensor(sigmas) else sigmas,
                             dtype=samples.dtype, device=samples.device).flatten()
    sigma_chosen = levels[torch.randint(len(levels), (len(samples),), device=samples.device)]  # (N,)
    sigma = sigma_chosen[:, None]
    perturbed = samples + sigma * torch.randn_like(samples)
    residuals = (scorenet(perturbed, sigma_chosen) + (perturbed - samples) / sigma ** 2).square().sum(1)
    return residuals, sigma_chosen


def annealed_langevin(scorenet: Callable, x: torch.Tensor, sigmas: Any, iterations: int, eps: float,
                      trajectory: Optional[list] = None) -> torch.Tensor:
    """Annealed Langevin dynamics from x (N, 2) -> (N, 2): for each noise level σ_i, from the largest to the
    smallest, `iterations` steps
        x ← x + a_i s(x, σ_i) + √(2 a_i) z,   z ~ N(0, I),   a_i = eps · σ_i² / σ_L²   (σ_L the smallest level).
    At each level this is Langevin dynamics of the data blurred by σ_i; a step shrinking with σ_i² explores every
    level's own scale alike (NCSN). Annealing only works from coarse to fine, so the levels are sorted largest
    first whatever order they come in. trajectory: a list that receives every new state (N, 2).
    """
    levels = torch.as_tensor(np.asarray(sigmas) if not torch.is_tensor(sigmas) else sigmas,
                             dtype=x.dtype).flatten().sort(descending=True).values
    sigma_min = levels[-1].item()
    for sigma in levels.tolist():
        step = eps * (sigma / sigma_min) ** 2
        for _ in range(iterations):
            x = x + step * scorenet(x, sigma) + math.sqrt(2 * step) * torch.randn_like(x)
            if trajectory is not None:
                trajectory.append(x)
    return x


# ----------------------------------------------------------------------------------------------------
# Fall 2022 (question 4): DiffusionModel and ScoreMatching


def generate_noise_levels(sigma_max: float, sigma_min: float, num_levels: int) -> torch.Tensor:
    """The geometric sequence from sigma_max to sigma_min -> (num_levels,) float32, largest first.

    (Given the other way round, the sequence runs from the first argument to the second, smallest first.)
    """
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), num_levels))


class DiffusionModel(nn.Module):
    """The noise-conditional score network s_θ(x, σ): x (N, 2), σ a float or (N,) / (N, 1) tensor -> (N, 2).

    With c = `center` and s = `scale`, the data's mean and spread (buffers, saved with the weights; by default
    those of the course's data, the unit square):
        s_θ(x, σ) = −(x − c) / (σ² + s²)  +  s F_θ(x, σ) / (σ √(σ² + s²)).
    The first term is the exact score of the data seen as one blob N(c, s² I), blurred by σ; the network F only
    adds the data's shape, and the 1/σ factor (NCSNv2; EDM's preconditioning, Karras et al. 2022) keeps F's
    output of unit size at every noise level. F is an MLP on random Fourier features of x / √(σ² + s²)
    measured from c (Tancik et al. 2020: they let a small MLP draw sharp edges) and on sin/cos of log σ.
    """

    def __init__(self, hidden_units: int = 128, num_layers: int = 3, fourier_features: int = 32,
                 fourier_scale: float = 1.0, center: tuple[float, float] = (0.5, 0.5), scale: float = 1 / 3) -> None:
        super().__init__()
        self.register_buffer("center", torch.tensor(center, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        self.register_buffer("fourier", 2 * math.pi * fourier_scale * torch.randn(2, fourier_features))
        self.register_buffer("sigma_frequencies", torch.arange(1.0, 5.0))
        layers, width = [], 2 + 2 * fourier_features + 2 * len(self.sigma_frequencies)
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_units), nn.SiLU()]
            width = hidden_units
        self.net = nn.Sequential(*layers, nn.Linear(width, 2))

    def measure(self, points: torch.Tensor) -> None:
        """Take `center` and `scale` from the data points (N, 2) (before training)."""
        center, scale = data_spread(points)
        self.center.copy_(center)
        self.scale.copy_(scale)

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(len(x), 1)
        x, sigma = (x - self.center) / self.scale, sigma / self.scale  # in units of the data's spread
        total = sigma ** 2 + 1  # the variance of x̃ = x + σz, were the data N(0, I)
        inputs = x / total.sqrt()
        angles, log_sigma = inputs @ self.fourier, torch.log(sigma) / 4 * self.sigma_frequencies
        features = torch.cat([inputs, angles.sin(), angles.cos(), log_sigma.sin(), log_sigma.cos()], 1)
        return (-x / total + self.net(features) / (sigma * total.sqrt())) / self.scale


class ScoreMatching:
    """The course's score-matching object: a score network `scorenet` and its noise levels (L,), largest first."""

    def __init__(self, scorenet: Optional[nn.Module] = None, noise_levels: Optional[torch.Tensor] = None) -> None:
        self.scorenet = scorenet if scorenet is not None else DiffusionModel()
        self.noise_levels = generate_noise_levels(1.0, 0.01, 10) if noise_levels is None else \
            torch.as_tensor(noise_levels, dtype=torch.float32)
        self.data: Optional[torch.Tensor] = None  # the points `train` saw, drawn under plot_score's arrows

    generate_noise_levels = staticmethod(generate_noise_levels)  # the starter code called it on the class

    def denoising_loss(self, samples: torch.Tensor, noise_levels: torch.Tensor,
                       sigma_weighted: bool = False) -> torch.Tensor:
        """The denoising score matching loss of 4.a: samples (N, 2), noise_levels (L,) -> a scalar.

        L(θ) = Σ_x ‖ s_θ(x̃, σ) + (x̃ − x) / σ² ‖² with x̃ = x + σ z, z ~ N(0, I), and one σ per sample
        (`sigma_chosen`, (N,)) drawn uniformly from the noise levels. A sum over the samples, as in the
        handout. sigma_weighted=True multiplies each term by σ² (NCSN's λ(σ) = σ²).
        """
        residuals, sigma_chosen = denoising_residuals(self.scorenet, samples, noise_levels)
        return (residuals * sigma_chosen ** 2 if sigma_weighted else residuals).sum()

    def prior_spread(self) -> torch.Tensor:
        """√(s² + σ_max²), a scalar: the spread of p_σmax, the data blurred by the largest noise level."""
        scale = torch.as_tensor(getattr(self.scorenet, "scale", 1 / 3))
        return torch.sqrt(scale ** 2 + self.noise_levels.max().to(scale) ** 2)

    def initial_random_samples(self, n: int = 2000) -> torch.Tensor:
        """n starting points for Langevin dynamics, the data seen as one blob: N(c, s² I) -> (n, 2). With the
        course's data (c = (0.5, 0.5), s = 1/3) that is the course's randn(2000, 2) / 3 + 0.5."""
        center = torch.as_tensor(getattr(self.scorenet, "center", (0.5, 0.5)))
        scale = torch.as_tensor(getattr(self.scorenet, "scale", 1 / 3))
        return center + scale * torch.randn(n, 2, device=center.device)

    @torch.no_grad()
    def langevin_dynamics_sample(self, x_mod: torch.Tensor, noise_levels: torch.Tensor, iterations: int, lr: float,
                                 denoise: bool = False, return_trajectory: bool = False):
        """Annealed Langevin dynamics (Algorithm 1): x_mod (N, 2) -> samples (N, 2).

        For each noise level σ_i, from the largest to the smallest, `iterations` steps
            x ← x + (α_i / 2) s_θ(x, σ_i) + √α_i z,   z ~ N(0, I),   α_i = lr · σ_i² / σ_L²,
        `annealed_langevin` with a_i = α_i / 2. The handout writes σ_1 < ... < σ_L but anneals i = 1, ..., L;
        annealing only works from coarse to fine (NCSN), so σ_L in α_i is the smallest level: the last level
        steps with α = lr.
        denoise: end with one step of Tweedie's formula x ← x + σ_L² s_θ(x, σ_L), which removes the noise of
          the last level (Jolicoeur-Martineau et al. 2020); not part of Algorithm 1, so off by default.
        return_trajectory: also return every iterate, (L · iterations + 1, N, 2) on the CPU (x_mod first).
        """
        trajectory = [x_mod] if return_trajectory else None
        x_mod = annealed_langevin(self.scorenet, x_mod, noise_levels, iterations, lr / 2, trajectory)
        if denoise:
            sigma_min = torch.as_tensor(noise_levels).min().item()
            x_mod = x_mod + sigma_min ** 2 * self.scorenet(x_mod, sigma_min)
        return (x_mod, torch.stack([x.cpu() for x in trajectory])) if return_trajectory else x_mod

    def train(self, data: Any, noise_levels: Any, learning_rate: float, iterations: int) -> list[float]:
        """The course's training: `iterations` Adam steps at `learning_rate` on the denoising loss of all of data
        (N, 2) at noise_levels (L,). Returns the loss per iteration, per sample.

        The command line trains with `fit` instead: a σ²-weighted loss, a learning-rate schedule and an average
        of the weights (README, Diffusion).
        """
        device = next(self.scorenet.parameters()).device
        points = torch.as_tensor(data, dtype=torch.float32).to(device)
        self.noise_levels = torch.as_tensor(noise_levels, dtype=torch.float32).flatten().to(device)
        if isinstance(self.scorenet, DiffusionModel):
            self.scorenet.measure(points)
        self.data = points
        optimizer = torch.optim.Adam(self.scorenet.parameters(), lr=learning_rate)
        losses = []
        for _ in tqdm(range(iterations), desc="ScoreMatching", unit="iteration"):
            loss = self.denoising_loss(points, self.noise_levels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item() / len(points))
        return losses

    @torch.no_grad()
    def plot_score(self, path: Path | str = "score_field.png", sigma: Optional[float] = None,
                   data: Optional[torch.Tensor] = None, grid_size: int = 32,
                   bounds: Optional[tuple] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw the score field s_θ(x, σ) as arrows on a grid over the data (4.b); save a PNG.

        sigma: default 10% of the data's spread, where the field outlines the data. data (N, 2): default the
        points `train` saw; drawn underneath, and sets the grid's extent unless bounds ((x0, y0), (x1, y1)) is
        given ([0, 1]² without either). Arrows show the direction, their colour the length ‖s_θ‖ (log scale).
        Returns the grid points (M, 2) and the scores there (M, 2).
        """
        data = self.data if data is None else data
        sigma = 0.1 * float(getattr(self.scorenet, "scale", 1 / 3)) if sigma is None else sigma
        low, high = padded_bounds(data) if bounds is None else (np.asarray(bounds[0]), np.asarray(bounds[1]))
        step = (high - low).max() / grid_size
        xs, ys = np.arange(low[0], high[0] + step / 2, step), np.arange(low[1], high[1] + step / 2, step)
        grid = torch.tensor(np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2), dtype=torch.float32)
        device = next(self.scorenet.parameters()).device
        scores = self.scorenet(grid.to(device), sigma).cpu()
        length = scores.norm(dim=1)
        fig, ax = data_axes(low, high)
        if data is not None:
            ax.scatter(*data.cpu().T, s=2, color="0.75", rasterized=True, label="data")
        arrows = ax.quiver(*grid.T, *(scores / length.clamp_min(1e-12)[:, None]).T, length.log10(), cmap="viridis",
                           angles="xy", pivot="mid", scale=1.2 / step, scale_units="xy", width=0.0025)
        fig.colorbar(arrows, ax=ax, label="log10 ‖s_θ(x, σ)‖ (arrows: its direction)", location="bottom",
                     shrink=0.6, aspect=40)
        ax.set_title(f"Learned score s_θ(x, σ = {sigma:.3g}) over the data")
        save_figure(fig, Path(path))
        return grid, scores


# ----------------------------------------------------------------------------------------------------
# Spring 2024 (question 5): ScoreNet, compute_denoising_loss, langevin_dynamics_sample


class ScoreNet(nn.Module):
    """The Spring-2024 score network: s(x, σ) = net(cat[x, σ]) / σ, x (N, 2) -> (N, 2).

    net: n_layers Linear layers, 3 -> latent_dim -> ... -> latent_dim -> 2, with a Softplus between each two.
    """

    def __init__(self, n_layers: int = 8, latent_dim: int = 128) -> None:
        super().__init__()
        widths = [3] + [latent_dim] * (n_layers - 1) + [2]
        layers = []
        for k in range(n_layers):
            layers += [nn.Linear(widths[k], widths[k + 1])] + [nn.Softplus()] * (k < n_layers - 1)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, sigmas: float | torch.Tensor) -> torch.Tensor:
        """x (N, 2); sigmas a float, a 0-d tensor, (N,) or (N, 1) -> (N, 2)."""
        sigmas = torch.as_tensor(sigmas, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(len(x), 1)
        return self.net(torch.cat([x, sigmas], dim=-1)) / sigmas


def compute_denoising_loss(scorenet: Callable, training_data: torch.Tensor, sigmas: Any) -> torch.Tensor:
    """The Spring-2024 loss: training_data (N, 2), sigmas (L,) -> a scalar, the mean over the samples of
    1/2 λ(σ) ‖s(x̃, σ) + (x̃ − x) / σ²‖² with λ(σ) = σ², one σ drawn uniformly per sample, x̃ = x + σ z."""
    residuals, sigma_chosen = denoising_residuals(scorenet, training_data, sigmas)
    return (0.5 * sigma_chosen ** 2 * residuals).mean()


@torch.no_grad()
def langevin_dynamics_sample(scorenet: Callable, n_samples: int, sigmas: Any, iterations: int = 100,
                             eps: float = 0.00002, return_traj: bool = False) -> torch.Tensor:
    """The Spring-2024 sampler: x_0 ~ N(0, I), (n_samples, 2), then for each σ_i in turn, largest first,
    `iterations` steps x ← x + α s(x, σ_i) + √(2α) z with α = eps σ_i² / σ_L² (`annealed_langevin`).
    Returns the samples (n_samples, 2), or with return_traj every state after each step, (n_samples, L·T, 2).
    """
    device = device_of(scorenet)
    trajectory = [] if return_traj else None
    x = annealed_langevin(scorenet, torch.randn(n_samples, 2, device=device), sigmas, iterations, eps, trajectory)
    return torch.stack(trajectory, dim=1) if return_traj else x


# ----------------------------------------------------------------------------------------------------
# The course's main() of each edition (figures saved in the working folder)


def main_fa22() -> None:
    """The Fall-2022 main(): train ScoreMatching() on cs446.npy (2000 points in the unit square, handed out
    with the starter), draw the score field, sample with annealed Langevin dynamics and scatter the samples."""
    parser = argparse.ArgumentParser(description="The course's score matching on 2-D points (Fall 2022, question 4).")
    parser.add_argument("--iterations", type=int, default=5000, help="Adam steps of training.")
    parser.add_argument("--learning_rate", type=float, default=1e-3, help="Adam's learning rate.")
    parser.add_argument("--sampling_iterations", type=int, default=SAMPLING_ITERATIONS, help="Langevin steps per σ.")
    args = parser.parse_args()
    torch.manual_seed(0)
    data = torch.tensor(np.load("cs446.npy"), dtype=torch.float32)
    noise_levels = ScoreMatching.generate_noise_levels(1.0, 0.01, 10)
    sm = ScoreMatching()
    sm.train(data, noise_levels, args.learning_rate, args.iterations)
    sm.plot_score()
    lr = LANGEVIN_STEP_RATIO * noise_levels.min().item() ** 2
    samples = sm.langevin_dynamics_sample(sm.initial_random_samples(), noise_levels, args.sampling_iterations, lr)
    plot_samples(samples, data, Path("samples.png"), f"{len(samples)} samples of annealed Langevin dynamics")


def main_sp24() -> None:
    """The Spring-2024 main(): train ScoreNet() on create_samples() with sigmas generate_sigmas(0.3, 0.01, 10),
    save model.ckpt, draw the score field (plot_score), the samples at steps 0, 200, 400, 600, 800 and the final
    ones, and the trajectories of two samples."""
    parser = argparse.ArgumentParser(description="The course's ScoreNet on the CS446 points (Spring 2024, question 5).")
    parser.add_argument("--iterations", type=int, default=SP24_ITERATIONS, help="Adam steps of training.")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam's first learning rate (decayed to 0).")
    args = parser.parse_args()
    torch.manual_seed(0)
    np.random.seed(0)
    data = torch.tensor(create_samples())
    sigmas = torch.tensor(generate_sigmas(0.3, 0.01, 10), dtype=torch.float32)
    scorenet = ScoreNet()
    optimizer = torch.optim.Adam(scorenet.parameters(), lr=args.lr)
    # The handout's constant 0.01 leaves the network at the trivial solution; a decaying rate trains it.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.iterations)
    for _ in tqdm(range(args.iterations), desc="ScoreNet", unit="iteration"):
        loss = compute_denoising_loss(scorenet, data, sigmas)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    torch.save(scorenet.state_dict(), "model.ckpt")
    plot_course_score(scorenet, data, "score_field.png")
    trajectory = langevin_dynamics_sample(scorenet, 1000, sigmas, return_traj=True)  # (1000, L·T, 2)
    steps = list(SNAPSHOT_STEPS) + [trajectory.shape[1] - 1]
    fig, axes = plt.subplots(2, 3, figsize=(15, 5), sharex=True, sharey=True)
    for ax, step in zip(axes.flat, steps):
        ax.scatter(*data.T, s=1, color="0.8")
        ax.scatter(*trajectory[:, step].T, s=1)
        ax.set_title("final samples" if step == steps[-1] else f"step {step}")
    fig.suptitle("Annealed Langevin dynamics: samples (blue) over the data (grey)")
    save_figure(fig, Path("samples.png"))
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.scatter(*data.T, s=1, color="0.8")
    for path in trajectory[:2]:
        ax.plot(*path.T, linewidth=0.5)
        ax.scatter(*path[-1], marker="*", s=80)
    ax.set(title="Trajectories of two samples (stars: where they end)", xlabel="x", ylabel="y")
    save_figure(fig, Path("trajectories.png"))


# ----------------------------------------------------------------------------------------------------
# Not part of the homework: the default sampler, a predictor-corrector, which keeps a mixture's weights


@torch.no_grad()
def predictor_corrector(sm: ScoreMatching, x: torch.Tensor, iterations: int, lr: float,
                        return_trajectory: bool = False):
    """Predictor-corrector sampling (Song et al. 2021) from x (N, 2), drawn from the data blurred by the largest of
    sm's noise levels -> samples (N, 2). Predictor: the reverse diffusion from each level σ_i to the next, in
    `iterations` geometrically spaced steps σ -> σ' of
        x ← x + (σ² − σ'²) s_θ(x, σ) + √(σ² − σ'²) z,   z ~ N(0, I),
    which undo the adding of noise of variance σ² − σ'². Corrector: the course's `langevin_dynamics_sample` at
    the smallest level (`iterations` steps at step size lr), with its denoising step.
    return_trajectory: also every iterate, (L · iterations + 1, N, 2) on the CPU (x first).

    Annealed Langevin dynamics has to move samples between a mixture's modes at every level, which it cannot once
    the modes part: finitely many steps leave the modes' shares where a coarser level had them, nearer to equal
    (README, Diffusion). The predictor moves every sample as the blurred data changes, so the samples follow the
    blurred data at every σ without crossing between modes by chance; at the smallest level, where the modes are
    far apart, Langevin dynamics only sharpens each mode's shape.
    """
    levels = sm.noise_levels.sort(descending=True).values
    steps = torch.cat([levels[:1]] + [generate_noise_levels(high, low, iterations + 1)[1:]
                                      for high, low in zip(levels[:-1].tolist(), levels[1:].tolist())]).tolist()
    trajectory = [x.cpu()] if return_trajectory else []
    for sigma, lower in zip(steps[:-1], steps[1:]):
        variance = sigma ** 2 - lower ** 2
        x = x + variance * sm.scorenet(x, sigma) + math.sqrt(variance) * torch.randn_like(x)
        if return_trajectory:
            trajectory.append(x.cpu())
    corrected = sm.langevin_dynamics_sample(x, levels[-1:], iterations, lr, denoise=True,
                                            return_trajectory=return_trajectory)
    if not return_trajectory:
        return corrected
    samples, corrector_path = corrected  # which starts where the predictor ended
    return samples, torch.cat([torch.stack(trajectory), corrector_path[1:]])


# ----------------------------------------------------------------------------------------------------
# Data: the "CS446" glyph cloud, classic 2-D sets, or the user's (N, 2) .npy file

GLYPH_TEXT = "CS446"
GLYPH_FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"  # ships with matplotlib


@functools.lru_cache(maxsize=None)
def glyph_polygons(text: str = GLYPH_TEXT) -> tuple[PolygonPath, ...]:
    """The outlines of `text` (every letter's outer contour and the contours of its holes)."""
    outline = TextPath((0, 0), text, size=1, prop=FontProperties(fname=GLYPH_FONT))
    return tuple(PolygonPath(polygon) for polygon in outline.to_polygons())


def sample_glyphs(n: int, generator: torch.Generator, text: str = GLYPH_TEXT) -> torch.Tensor:
    """n points uniform inside the letters of `text`, centred at 0 and 4 units wide -> (n, 2).

    Rejection sampling in the text's bounding box; the even-odd rule keeps the holes of 4 and 6 empty.
    """
    polygons = glyph_polygons(text)
    vertices = np.concatenate([polygon.vertices for polygon in polygons])
    low, high = vertices.min(0), vertices.max(0)
    accepted, count = [], 0
    while count < n:
        candidates = low + (high - low) * torch.rand(2 * n, 2, generator=generator, dtype=torch.float64).numpy()
        inside = sum(polygon.contains_points(candidates).astype(int) for polygon in polygons) % 2 == 1
        accepted.append(candidates[inside])
        count += int(inside.sum())
    points = (np.concatenate(accepted)[:n] - (low + high) / 2) * (4 / (high - low)[0])
    return torch.as_tensor(points, dtype=torch.float32)


def sample_moons(n: int, generator: torch.Generator) -> torch.Tensor:
    """Two interleaving half circles (scikit-learn's make_moons, noise 0.05) -> (n, 2)."""
    angle = math.pi * torch.rand(n, generator=generator)
    upper = torch.rand(n, generator=generator) < 0.5
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    return torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2, generator=generator)


def sample_swissroll(n: int, generator: torch.Generator) -> torch.Tensor:
    """A spiral arm of 1.5 turns (the swiss roll seen from above), noise 0.05 -> (n, 2)."""
    turn = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator))
    return torch.stack([turn * torch.cos(turn), turn * torch.sin(turn)], 1) / 5 + \
        0.05 * torch.randn(n, 2, generator=generator)


def sample_checkerboard(n: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform on the 8 dark squares of a 4 x 4 checkerboard on [-4, 4]² -> (n, 2)."""
    x = 4 * torch.rand(n, generator=generator) - 2
    y = torch.rand(n, generator=generator) - 2 * torch.randint(2, (n,), generator=generator) + torch.floor(x) % 2
    return 2 * torch.stack([x, y], 1)


def sample_rings(n: int, generator: torch.Generator) -> torch.Tensor:
    """Three concentric circles of radius 1, 2, 3 (points in proportion to length), noise 0.05 -> (n, 2)."""
    radius = 1.0 + torch.multinomial(torch.tensor([1.0, 2.0, 3.0]), n, replacement=True, generator=generator)
    angle = 2 * math.pi * torch.rand(n, generator=generator)
    circle = torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    return radius[:, None] * circle + 0.05 * torch.randn(n, 2, generator=generator)


def gaussian_mixture(centers: Any, weights: Any, std: Any) -> tuple[Callable, torch.Tensor, torch.Tensor]:
    """A sampler (n, generator) -> (n, 2) of Σ_k w_k N(c_k, std_k² I), with its centers (K, 2) and weights (K,).
    std: one spread for every mode, or one per mode (K,)."""
    centers, weights = torch.as_tensor(centers, dtype=torch.float32), torch.as_tensor(weights, dtype=torch.float32)
    stds = torch.as_tensor(std, dtype=torch.float32).expand(len(centers))

    def sample(n: int, generator: torch.Generator) -> torch.Tensor:
        component = torch.multinomial(weights, n, replacement=True, generator=generator)
        return centers[component] + stds[component, None] * torch.randn(n, 2, generator=generator)

    return sample, centers, weights


EIGHT_ANGLES = [k * math.pi / 4 for k in range(8)]
sample_8gaussians, EIGHT_CENTERS, EIGHT_WEIGHTS = gaussian_mixture(
    [[2 * math.cos(a), 2 * math.sin(a)] for a in EIGHT_ANGLES], [1 / 8] * 8, std=0.1)
# NCSN's example (Song & Ermon 2019, Fig. 3): without annealing, Langevin dynamics gets these weights wrong
sample_mixture, MIXTURE_CENTERS, MIXTURE_WEIGHTS = gaussian_mixture([[5.0, 5.0], [-5.0, -5.0]], [0.8, 0.2], std=1.0)

def sample_course_text(n: int, generator: torch.Generator) -> torch.Tensor:
    """The Spring-2024 data, hw5_utils.create_samples(): each of the 1169 pixels of "CS446" in turn (in a random
    order, again from the start past 1169) plus N(0, 0.01²) jitter -> (n, 2)."""
    pixels = torch.as_tensor(course_text_pixels())
    order = torch.cat([torch.randperm(len(pixels), generator=generator) for _ in range(-(-n // len(pixels)))])[:n]
    return pixels[order] + 0.01 * torch.randn(n, 2, generator=generator)


@functools.lru_cache(maxsize=None)
def course_text_pixels() -> np.ndarray:
    """create_samples' points without their jitter, (1169, 2)."""
    return create_samples(noise=0.0)


DATASETS: dict[str, Callable] = dict(zip(DATASET_NAMES, (sample_glyphs, sample_course_text, sample_moons,
                                                       sample_8gaussians, sample_swissroll, sample_checkerboard,
                                                       sample_rings, sample_mixture)))
MODES = {"8gaussians": (EIGHT_CENTERS, EIGHT_WEIGHTS), "mixture": (MIXTURE_CENTERS, MIXTURE_WEIGHTS)}


@dataclass
class PointCloud:
    """A 2-D data set: its training points (N, 2) and the points evaluation compares samples with.

    A built-in set draws fresh points from its generator, `sampler`. A file keeps `held_out` points (M, 2) that
    training never sees (`hold_out`); a file run saved before hold-out existed can only resample its training points.
    modes: (centers (K, 2), weights (K,)) of a mixture, whose samples' shares evaluation then measures.
    """
    name: str
    points: torch.Tensor
    sampler: Optional[Callable] = None
    modes: Optional[tuple[torch.Tensor, torch.Tensor]] = None
    held_out: Optional[torch.Tensor] = None

    @property
    def floor(self) -> str:
        """What the real-vs-real floor compares, in words (metrics.json's "floor")."""
        if self.sampler is not None:
            return "fresh draws of the built-in set"
        if self.held_out is not None:
            return "training points against the held-out points of the file"
        return "resampled training points of the file (a run saved before hold-out: train again for an honest floor)"

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n points of the data's distribution, independent of `reference`'s -> (n, 2) on the CPU: fresh ones, or
        n distinct training points of a file (resampled ones for a run saved without held-out points)."""
        if self.sampler is not None:
            return self.sampler(n, generator)
        if self.held_out is not None:
            return self.points.cpu()[torch.randperm(len(self.points), generator=generator)[:n]]
        return self.points.cpu()[torch.randint(len(self.points), (n,), generator=generator)]

    def reference(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n points to compare samples with -> (n, 2): fresh draws, or n of a file's held-out points."""
        if self.held_out is None:
            return self.draw(n, generator)
        return self.held_out.cpu()[torch.randperm(len(self.held_out), generator=generator)[:n]]


def builtin_cloud(name: str, points: torch.Tensor) -> PointCloud:
    """A built-in data set's training points (N, 2) with its generator and, for a mixture, its modes."""
    return PointCloud(name, points, DATASETS[name], MODES.get(name))


def hold_out(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A file's points (N, 2) -> training points (N − M, 2) and held-out points (M, 2), M = HOLDOUT_FRACTION · N
    rounded, both in the file's order. The split is seeded by HOLDOUT_SEED alone: the same for every run on the
    file, whatever its --seed."""
    held = torch.zeros(len(points), dtype=torch.bool)
    order = torch.randperm(len(points), generator=torch.Generator().manual_seed(HOLDOUT_SEED))
    held[order[:round(HOLDOUT_FRACTION * len(points))]] = True
    return points[~held], points[held]


def read_points(path: Path) -> torch.Tensor:
    """A user's .npy file -> (N, 2) float32 points, with a one-line `UserError` for every way it can be wrong."""
    expected = "expected a .npy file holding an (N, 2) array of point coordinates"
    require(path.is_file(), f"no data file {path}: pass --data with a .npy file holding an (N, 2) array of "
                            f"point coordinates")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as error:  # numpy raises many types for a file that is not a .npy array
        raise UserError(f"cannot read {path} ({type(error).__name__}): {expected}") from None
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        raise UserError(f"{path} is an .npz archive: {expected}")
    require(array.ndim == 2 and array.shape[1] == 2, f"{path} holds an array of shape {array.shape}: {expected}")
    require(np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating),
            f"{path} holds {array.dtype} values: {expected}")
    require(len(array) >= MIN_FILE_POINTS, f"{path} holds {len(array)} points: at least {MIN_FILE_POINTS} are needed "
                                           f"(a fifth of them is held out for evaluation)")
    points = torch.as_tensor(array.astype(np.float32))
    require(bool(torch.isfinite(points).all()), f"{path} contains NaN or infinite values: remove them first")
    require(bool(points.var(0).sum() > 0), f"all points in {path} are the same: nothing to learn")
    return points


def load_points(cfg: Config) -> PointCloud:
    """The training data the config names: `cfg.data` (a file) if given, else `cfg.n_points` of `cfg.dataset`."""
    if cfg.data:
        points, held_out = hold_out(read_points(Path(cfg.data)))
        return PointCloud(cfg.data, points, held_out=held_out)
    require(cfg.dataset in DATASETS, f"unknown dataset '{cfg.dataset}': use one of {', '.join(DATASETS)}, "
                                     f"or --data FILE.npy")
    require(cfg.n_points >= 2, f"--n-points must be >= 2, got {cfg.n_points}")
    return builtin_cloud(cfg.dataset, DATASETS[cfg.dataset](cfg.n_points, torch.Generator().manual_seed(cfg.seed)))


def data_spread(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """points (N, 2) -> center (2,), the mean, and scale (), the rms distance to it divided by √2."""
    return points.mean(0), points.var(0, unbiased=False).mean().sqrt()


def default_noise_levels(points: torch.Tensor, sigma_max: Optional[float], sigma_min: Optional[float],
                         num_levels: int) -> torch.Tensor:
    """Noise levels (num_levels,), largest first, fitted to the data where a limit is None.

    σ_max is the data's diameter, so that at the first level every point's noise reaches all of the data
    (NCSNv2, technique 1) and the modes' weights are settled there; σ_min is 1% of its spread.
    """
    if sigma_max is None:
        subset = points[torch.randperm(len(points), generator=torch.Generator().manual_seed(0))[:4096]]
        sigma_max = torch.cdist(subset, subset).max().item()
    if num_levels == 1:  # plain Langevin dynamics at a single noise level
        if sigma_min is not None:
            note("with --num-levels 1 the one noise level is --sigma-max: --sigma-min is not used")
        return generate_noise_levels(sigma_max, sigma_max, 1)
    if sigma_min is None:
        sigma_min = SIGMA_MIN_FRACTION * data_spread(points)[1].item()
    require(0 < sigma_min < sigma_max, f"need 0 < sigma-min < sigma-max, got sigma-min {sigma_min:.4g} and "
                                       f"sigma-max {sigma_max:.4g}")
    return generate_noise_levels(sigma_max, sigma_min, num_levels)


# ----------------------------------------------------------------------------------------------------
# Training


def learning_rate(iteration: int, cfg: Config) -> float:
    """Linear warm-up over WARMUP_ITERATIONS, then a cosine decay from cfg.lr to 0 at cfg.iterations."""
    warmup = min(1.0, (iteration + 1) / WARMUP_ITERATIONS)
    return cfg.lr * warmup * 0.5 * (1 + math.cos(math.pi * iteration / cfg.iterations))


def ema_of(scorenet: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of scorenet's weights; its decay ramps up over the first iterations
    (min(decay, (1 + n) / (10 + n))), so the random initial weights are forgotten early."""
    def average(averaged: torch.Tensor, current: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        weight = torch.clamp((1 + count) / (10 + count), max=decay)
        return weight * averaged + (1 - weight) * current

    return AveragedModel(scorenet, avg_fn=average)


def training_state(sm: ScoreMatching, ema: AveragedModel, optimizer: torch.optim.Optimizer, cfg: Config,
                   cloud: PointCloud, iteration: int, history: list, train_seconds: float) -> dict:
    """Everything a checkpoint holds: the EMA weights (`model`, used for sampling), the settings, the noise levels,
    the training points, a file's held-out points (None for a built-in set), and what --resume needs (online
    weights, optimizer, progress, RNG states)."""
    held_out = None if cloud.held_out is None else cloud.held_out.cpu()
    return {"model": ema.module.state_dict(), "config": asdict(cfg), "noise_levels": sm.noise_levels.cpu(),
            "data": cloud.points.cpu(), "held_out": held_out, "online_model": sm.scorenet.state_dict(),
            "ema_count": int(ema.n_averaged), "optimizer": optimizer.state_dict(), "iteration": iteration,
            "history": history, "rng": get_rng_state(), "train_seconds": train_seconds}


def fit(sm: ScoreMatching, ema: AveragedModel, optimizer: torch.optim.Optimizer, cloud: PointCloud, cfg: Config,
        checkpointer: Checkpointer, state: dict) -> dict:
    """Train from state['iteration'] to cfg.iterations; returns the final state.

    Each iteration takes a batch (all points when they fit), draws one σ and one noise per point, and steps Adam
    on the σ²-weighted loss (cfg.sigma_weighted). The Fall-2022 handout's unweighted loss weighs a level by 1/σ²:
    the smallest level would dominate and the coarse levels, which decide how much mass each part of the data
    gets, would hardly be learned. Weighted, every level's residual σ s_θ + z has unit size. The Spring-2024
    recipe trains on its own loss, `compute_denoising_loss` (σ²/2-weighted).
    The loss history records the loss per sample.
    """
    points = cloud.points
    iteration, history, seconds = state["iteration"], state["history"], state["train_seconds"]
    bar = progress(range(iteration, cfg.iterations), initial=iteration, total=cfg.iterations,
                   desc="score matching", unit="it")
    with checkpointer.guard():
        tic = time.perf_counter()
        for iteration in bar:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(iteration, cfg)
            batch = points if len(points) <= cfg.batch_size else \
                points[torch.randint(len(points), (cfg.batch_size,), device=points.device)]
            if cfg.recipe == "sp24":
                loss = compute_denoising_loss(sm.scorenet, batch, sm.noise_levels)
            else:
                loss = sm.denoising_loss(batch, sm.noise_levels, sigma_weighted=cfg.sigma_weighted) / len(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ema.update_parameters(sm.scorenet)
            history.append(loss.item())
            checkpointer.check_finite(history[-1], iteration)
            if (iteration + 1) % SNAPSHOT_EVERY == 0 or iteration + 1 == cfg.iterations:
                seconds += time.perf_counter() - tic
                checkpointer.snapshot(training_state(sm, ema, optimizer, cfg, cloud, iteration + 1, history, seconds))
                bar.set_postfix(loss=f"{np.mean(history[-SNAPSHOT_EVERY:]):.3f}")
                tic = time.perf_counter()
    checkpointer.save()
    return checkpointer.state


# ----------------------------------------------------------------------------------------------------
# Evaluation: distances between point sets, next to the distance between two draws of real data


def sliced_w2(a: torch.Tensor, b: torch.Tensor, directions: int = 90) -> float:
    """Sliced Wasserstein-2 distance of two equal-size point sets a, b (n, 2).

    The root mean square, over `directions` evenly spaced directions, of the exact W2 distance between the
    projections (in 1-D, W2 pairs the sorted values).
    """
    angles = torch.arange(directions, dtype=torch.float64) * math.pi / directions
    unit = torch.stack([angles.cos(), angles.sin()], 1)
    projected_a, projected_b = (a.double() @ unit.T).sort(0).values, (b.double() @ unit.T).sort(0).values
    return (projected_a - projected_b).square().mean().sqrt().item()


def energy_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Energy distance √(2 E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖) of point sets a (n, 2), b (m, 2).

    A metric between distributions that grows as the square root of the data's scale
    (scipy.stats.energy_distance's convention; the expectations are means over all pairs).
    """
    def mean_distance(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.cdist(u, v, compute_mode="donot_use_mm_for_euclid_dist").mean()

    a, b = a.double(), b.double()
    return (2 * mean_distance(a, b) - mean_distance(a, a) - mean_distance(b, b)).clamp_min(0).sqrt().item()


def mode_weights(samples: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """The fraction of samples (n, 2) nearest to each of the centers (K, 2) -> (K,)."""
    nearest = torch.cdist(samples.float(), centers.float()).argmin(1)
    return torch.bincount(nearest, minlength=len(centers)).float() / len(samples)


def evaluate(samples: torch.Tensor, cloud: PointCloud, seed: int = 0, size: int = EVAL_SIZE,
             draws: int = EVAL_DRAWS) -> dict:
    """Distances of samples (n, 2) from the data, and their floor: the same distances between two data draws.

    The samples are cut into batches of `size` (all of them if fewer); each of `draws` references of `size`
    points (`PointCloud.reference`: fresh draws of a built-in set, a file's held-out points) is compared with one
    batch in turn. The floor compares each reference with an independent draw of `size` points (fresh, or
    training points of a file): as close as `size` samples of the true distribution get on average. Both are
    averaged in squares. One batch of 2000 alone would be noisy: in 90% of runs, a perfect sampler (true data)
    scores 0.75x-1.55x the floor; five batches narrow that to 0.85x-1.15x (measured on the CS446 cloud). A file
    compares batches of at most its M held-out points: its floor is higher, and a sampler's faults weigh less
    against it than against fresh draws of 2000. For mixtures, also the share of samples nearest each mode.
    """
    generator = torch.Generator().manual_seed(seed)
    samples = samples.detach().float().cpu()
    size = min(size, len(samples))
    if cloud.held_out is not None:  # every reference is (a subset of) the same held-out points
        size = min(size, len(cloud.held_out))
    batches = samples[:len(samples) // size * size].split(size)
    # each reference is compared both with a batch of samples and with an independent data draw: the two averages
    # share the references' own ups and downs, which steadies their ratio
    references, others = [cloud.reference(size, generator) for _ in range(draws)], \
        [cloud.draw(size, generator) for _ in range(draws)]

    def rms(values: list[float]) -> float:
        return math.sqrt(sum(value ** 2 for value in values) / len(values))

    metrics = {"dataset": cloud.name, "n_samples": len(samples), "comparison_size": size, "floor": cloud.floor}
    for name, distance in (("sliced_w2", sliced_w2), ("energy_distance", energy_distance)):
        metrics[name] = rms([distance(batches[k % len(batches)], ref) for k, ref in enumerate(references)])
        metrics[f"floor_{name}"] = rms([distance(other, ref) for other, ref in zip(others, references)])
        metrics[f"{name}_vs_floor"] = metrics[name] / metrics[f"floor_{name}"]
    if cloud.modes is not None:
        centers, weights = cloud.modes
        found = mode_weights(samples, centers)
        metrics.update(mode_weights=[round(w, 4) for w in found.tolist()], true_mode_weights=weights.tolist(),
                       mode_weight_error=(found - weights).abs().max().item())
    return metrics


# ----------------------------------------------------------------------------------------------------
# Figures


def padded_bounds(points: Optional[torch.Tensor], margin: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """The bounding box of points (N, 2) widened by `margin` of its larger side; [0, 1]² without points."""
    if points is None:
        return np.zeros(2), np.ones(2)
    low, high = points.cpu().min(0).values.numpy(), points.cpu().max(0).values.numpy()
    pad = margin * (high - low).max()
    return low - pad, high + pad


def data_axes(low: np.ndarray, high: np.ndarray, rows: int = 1, cols: int = 1, panel_width: float = 6.0):
    """A figure of rows x cols panels with equal x/y units over the box low..high, axes labelled x1 and x2 on the
    outer panels -> (fig, axes)."""
    aspect = float(np.clip((high[1] - low[1]) / (high[0] - low[0]), 0.25, 1.5))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * panel_width, rows * panel_width * aspect + 0.8),
                             squeeze=False, sharex=True, sharey=True, layout="constrained")
    for ax in axes.flat:
        ax.set(xlim=(low[0], high[0]), ylim=(low[1], high[1]), aspect="equal")
    for ax in axes[-1]:
        ax.set_xlabel("x1")
    for ax in axes[:, 0]:
        ax.set_ylabel("x2")
    return fig, (axes[0, 0] if rows * cols == 1 else axes)


def plot_points(points: torch.Tensor, path: Path, title: str) -> Path:
    """Scatter one point set (the data) (N, 2)."""
    fig, ax = data_axes(*padded_bounds(points))
    ax.scatter(*points.cpu().T, s=3, color="tab:blue", rasterized=True)
    ax.set_title(title)
    return save_figure(fig, path)


def plot_samples(samples: torch.Tensor, data: torch.Tensor, path: Path, title: str) -> Path:
    """Generated samples (n, 2) over the training data (N, 2)."""
    fig, ax = data_axes(*padded_bounds(data))
    ax.scatter(*data.cpu().T, s=4, color="0.7", label="training data", rasterized=True)
    ax.scatter(*samples.cpu().T, s=1.5, color="tab:red", label="generated", rasterized=True)
    fig.legend(loc="outside lower center", ncols=2, markerscale=4)
    ax.set_title(title)
    return save_figure(fig, path)


def snapshot_steps(total_steps: int) -> list[int]:
    """The Langevin steps the snapshot figure shows: the handout's 0, 200, ..., 800 (or 5 even steps of a
    shorter run), then the final samples."""
    return list(SNAPSHOT_STEPS) if total_steps > SNAPSHOT_STEPS[-1] else [round(k * total_steps / 5) for k in range(5)]


def step_title(step: int, levels: torch.Tensor, steps_per_level: int) -> str:
    """'step 400 (σ = 0.51)': a sampling step and the noise level its stage ran at (step 0: the starting noise)."""
    if step == 0:
        return "step 0 (start)"
    sigma = levels.sort(descending=True).values[(step - 1) // steps_per_level].item()
    return f"step {step} (σ = {sigma:.2g})"


def plot_snapshots(trajectory: torch.Tensor, samples: torch.Tensor, levels: torch.Tensor, data: torch.Tensor,
                   path: Path, final: str = "then denoised", method: str = "Annealed Langevin dynamics") -> Path:
    """Samples at steps 0, 200, ..., 800 and the final ones (`final`: what came after the last step, and `method`,
    the sampler, for the titles). trajectory (L · T + 1, n, 2); levels (L,): the level each T steps end at."""
    steps = snapshot_steps(len(trajectory) - 1)
    low, high = padded_bounds(data)
    cols = 2 if (high[0] - low[0]) > 1.8 * (high[1] - low[1]) else 3
    fig, axes = data_axes(low, high, rows=2 if cols == 3 else 3, cols=cols, panel_width=4.0)
    frames = [trajectory[step] for step in steps] + [samples]
    steps_per_level = (len(trajectory) - 1) // len(levels)
    titles = [step_title(step, levels, steps_per_level) for step in steps] + \
        [f"final: step {len(trajectory) - 1}{', ' + final if final else ''}"]
    for ax, points, title in zip(axes.flat, frames, titles):
        ax.scatter(*points.cpu().T, s=1.5, color="tab:red", rasterized=True)
        ax.set_title(title)
    fig.suptitle(f"{method}: the samples as the noise level decreases")
    return save_figure(fig, path)


def plot_trajectories(trajectory: torch.Tensor, samples: torch.Tensor, levels: torch.Tensor, path: Path,
                      count: int = 8, every_step: bool = False) -> Path:
    """Where `count` samples stand at the end of each noise level (dots, larger as σ shrinks), joined in order,
    over the final samples (n, 2); the frame holds every path from its start. trajectory (L · T + 1, n, 2) from
    langevin_dynamics_sample. every_step: also draw each path through every Langevin step (thin lines, as the
    Spring-2024 handout's figure of 2 samples does)."""
    steps_per_level = (len(trajectory) - 1) // len(levels)
    ends, samples = trajectory[::steps_per_level].cpu(), samples.cpu()  # ends (L + 1, n, 2): start, level ends
    count = min(count, trajectory.shape[1])
    paths = trajectory[:, :count].cpu() if every_step else ends[:, :count]
    fig, ax = data_axes(*padded_bounds(torch.cat([samples, paths.reshape(-1, 2)])))
    ax.scatter(*samples.T, s=2, color="0.75", label="final samples", rasterized=True)
    for k, color in zip(range(count), plt.cm.tab10.colors):
        points = torch.cat([ends[:, k], samples[k:k + 1]])
        if every_step:
            ax.plot(*paths[:, k].T, color=color, lw=0.4, alpha=0.6)
        ax.plot(*points.T, color=color, lw=0.8, alpha=0.7)
        ax.scatter(*points[:-1].T, s=np.linspace(2, 30, len(points) - 1), color=color, zorder=3)
        ax.plot(*points[-1], marker="*", ms=12, color=color, mec="black", mew=0.5, zorder=4)
    what = "every step (thin) and the position after each noise level" if every_step else \
        "position after each noise level"
    ax.set_title(f"Paths of {count} samples: {what}, ★ = final")
    return save_figure(fig, path)


def plot_loss_curve(history: list[float], path: Path, sigma_weighted: bool) -> Path:
    """The training loss per iteration (per sample), and its moving average."""
    fig, ax = plt.subplots(figsize=(6, 4))
    losses = np.asarray(history)
    window = max(1, len(losses) // 50)
    ax.plot(np.arange(1, len(losses) + 1), losses, color="tab:blue", alpha=0.3, lw=0.6, label="per iteration")
    if len(losses) >= window:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window, len(losses) + 1), smooth, color="tab:blue", label=f"mean of {window}")
    ax.set(xlabel="iteration", title="Denoising score matching: training loss",
           ylabel="σ²-weighted loss per sample" if sigma_weighted else "loss per sample")
    if not sigma_weighted:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def save_sampling_gif(trajectory: torch.Tensor, samples: torch.Tensor, levels: torch.Tensor, data: torch.Tensor,
                      path: Path, frames: int = 21, points: int = 500, final: str = "then denoised") -> Path:
    """An animated GIF of `points` samples moving through the Langevin steps (then the denoised samples)."""
    fig, ax = data_axes(*padded_bounds(data), panel_width=4.0)
    ax.scatter(*data.cpu().T, s=1, color="0.85", rasterized=True)
    dots = ax.scatter(*trajectory[0, :points].T, s=2, color="tab:red")
    steps_per_level = (len(trajectory) - 1) // len(levels)
    shown = [(step_title(step, levels, steps_per_level), trajectory[step, :points])
             for step in np.linspace(0, len(trajectory) - 1, frames).round().astype(int)]
    images = []
    for title, points_now in shown + [(f"final{', ' + final if final else ''}", samples[:points].cpu())]:
        dots.set_offsets(points_now.numpy())
        ax.set_title(title)
        fig.canvas.draw()
        images.append(np.asarray(fig.canvas.buffer_rgba()).copy())
    plt.close(fig)
    return save_gif(images + [images[-1]] * 5, path, fps=6)  # linger on the result


# ----------------------------------------------------------------------------------------------------
# Plain functions behind the commands (the tests call these too)


def run_in(out_dir: Path | str) -> Run:
    return Run("hw5_diffusion.py", out_dir, CHECKPOINT, CHECKPOINT_KEYS, RESUME_KEYS, Config, "iteration")


def build_model(cfg: Config, points: torch.Tensor) -> nn.Module:
    """A fresh score network sized by cfg: a DiffusionModel measured against the data points (N, 2), or for the
    Spring-2024 recipe a ScoreNet."""
    if cfg.recipe == "sp24":
        return ScoreNet(cfg.num_layers, cfg.hidden_units)
    center, scale = data_spread(points.cpu())
    return DiffusionModel(cfg.hidden_units, cfg.num_layers, cfg.fourier_features, cfg.fourier_scale,
                          tuple(center.tolist()), scale.item())


def run_training(cfg: Config, out_dir: Path, device: str = "auto", resume: bool = False,
                 ignored_on_resume: Sequence[str] = (), overwrite: bool = False) -> dict:
    """Train (or resume) a score model; write out_dir/model.pt, the data, loss and score-field figures.

    Everything the user gave is checked before anything in out_dir is written. Returns the final state.
    """
    run = run_in(out_dir)
    cfg, saved = run.begin(cfg, resume, overwrite, iterations=cfg.iterations)
    out_dir, dev = run.out_dir, pick_device(device)
    cloud = saved_cloud(cfg, saved) if saved is not None else load_points(cfg)
    noise_levels = saved["noise_levels"] if saved is not None else \
        default_noise_levels(cloud.points, cfg.sigma_max, cfg.sigma_min, cfg.num_levels)
    seed_everything(cfg.seed)
    sm = ScoreMatching(build_model(cfg, cloud.points).to(dev), noise_levels.to(dev))
    cloud.points = cloud.points.to(dev)
    ema = ema_of(sm.scorenet, cfg.ema_decay)
    optimizer = torch.optim.Adam(sm.scorenet.parameters(), lr=cfg.lr)
    state = {"iteration": 0, "history": [], "train_seconds": 0.0}
    if saved is not None:
        state = run.resume(saved, {"online_model": sm.scorenet, "model": ema.module}, {"optimizer": optimizer},
                           cfg.iterations, ignored_on_resume)
        ema.n_averaged.fill_(saved["ema_count"])
    levels = sm.noise_levels
    held_out = "" if cloud.held_out is None else f" ({len(cloud.held_out)} more held out for evaluation)"
    note(f"training on {len(cloud.points)} points of {cloud.name}{held_out}, {len(levels)} noise levels "
         f"{levels.max().item():.3g} -> {levels.min().item():.3g}, device {dev}, out-dir {out_dir}")
    checkpointer = run.checkpointer(cfg, saved)
    state = fit(sm, ema, optimizer, cloud, cfg, checkpointer, state)
    note(f"trained {state['iteration']} iterations in {state['train_seconds']:.1f} s; saved {out_dir / CHECKPOINT}")
    with checkpointer.guard():  # Ctrl-C from here on: the printed resume command redoes the figures
        figures = [plot_points(cloud.points, out_dir / "data.png", f"Training data: {len(cloud.points)} points "
                                                                   f"of {cloud.name}"),
                   plot_loss_curve(state["history"], out_dir / "loss_curve.png", cfg.sigma_weighted),
                   draw_score_field(ScoreMatching(ema.module, sm.noise_levels), cloud.points, out_dir, cfg.recipe)]
        note(f"figures: {', '.join(str(path) for path in figures)}")
    return state


def saved_cloud(cfg: Config, state: dict) -> PointCloud:
    """The training data stored in a checkpoint (`cfg`: its settings), with a file's held-out points or a built-in
    set's generator."""
    if cfg.data:
        return PointCloud(cfg.data, state["data"], held_out=state.get("held_out"))
    require(cfg.dataset in DATASETS,
            f"the checkpoint names an unknown dataset {cfg.dataset!r}: train again with --overwrite")
    return builtin_cloud(cfg.dataset, state["data"])


def restore(out_dir: Path, device: str = "auto") -> tuple[ScoreMatching, dict, PointCloud]:
    """The trained model in out_dir/model.pt (the EMA weights), the whole checkpoint, and its data."""
    dev = pick_device(device)
    path = Path(out_dir) / CHECKPOINT
    state, cfg = run_in(out_dir).load()
    try:
        levels = torch.as_tensor(state["noise_levels"], dtype=torch.float32).flatten()
        points = torch.as_tensor(state["data"], dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise UserError(f"{path} has unusable noise levels or data: train again with --overwrite") from None
    require(len(levels) >= 1 and bool((levels > 0).all()),
            f"{path} has invalid noise levels: train again with --overwrite")
    scorenet = build_model(cfg, points)
    load_weights(scorenet, state["model"], path)
    scorenet.eval()
    return ScoreMatching(scorenet.to(dev), levels.to(dev)), state, saved_cloud(cfg, state)


def sampling_defaults(sm: ScoreMatching, state: dict, sampler: Optional[str], lr: Optional[float],
                      seed: Optional[int]) -> tuple[str, float, int]:
    """The sampler, its Langevin ε and the seed to sample with: the given ones, else SAMPLER ("langevin", its
    handout's, for the Spring-2024 recipe), ε = LANGEVIN_STEP_RATIO · σ_L² (each level then steps with
    α_i = LANGEVIN_STEP_RATIO · σ_i²) or the Spring-2024 sampler's SP24_EPS, and the training seed. pc starts from
    the data blurred by σ_max seen as one Gaussian blob, which it is only when σ_max spans the data: not for the
    Spring-2024 recipe (a one-line error)."""
    sp24 = state["config"]["recipe"] == "sp24"
    sampler = ("langevin" if sp24 else SAMPLER) if sampler is None else sampler
    require(not (sp24 and sampler == "pc"), "--sampler pc needs σ_max as large as the data (this script's recipe): "
                                            "the Spring-2024 recipe's σ_max is 0.3; sample it with --sampler langevin")
    default = SP24_EPS if sp24 else LANGEVIN_STEP_RATIO * sm.noise_levels.min().item() ** 2
    return sampler, default if lr is None else lr, state["config"]["seed"] if seed is None else seed


def draw_score_field(sm: ScoreMatching, points: torch.Tensor, out_dir: Path, recipe: str,
                     sigma: Optional[float] = None) -> Path:
    """score_field.png at `sigma` (default: 10% of the data's spread, where the field outlines the data; for the
    Spring-2024 recipe, the course's plot_score at σ = 0.1)."""
    path = Path(out_dir) / "score_field.png"
    if recipe == "sp24":
        plot_course_score(sm.scorenet, points.cpu(), path, 0.1 if sigma is None else sigma)
    else:
        sm.plot_score(path, 0.1 * data_spread(points.cpu())[1].item() if sigma is None else sigma, points)
    return path


def generate(sm: ScoreMatching, n: int, sampler: str, iterations: int, lr: float, seed: int,
             tracked: int = 0, recipe: str = "ours") -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """n samples -> samples (n, 2) on the CPU, and the trajectory of the first `tracked` of them (every state, the
    start first), or None if tracked is 0. A `UserError` if the dynamics diverged (ε too large for the model).

    sampler "langevin": annealed Langevin dynamics, `iterations` steps per level at step size lr. The default
    recipe starts from `initial_random_samples` and ends with the denoising step; the Spring-2024 recipe runs its
    handout's sampler: x_0 ~ N(0, I), steps ε σ_i² / σ_L² (Fall 2022's lr = 2ε), no denoising.
    "pc": `predictor_corrector` (`iterations` steps from each level to the next, then as many Langevin steps at
    the smallest level at step size lr), from the data blurred by σ_max seen as one blob, N(c, (s² + σ_max²) I).
    """
    seed_everything(seed)
    sp24 = recipe == "sp24"
    device = next(sm.scorenet.parameters()).device
    if sampler == "pc":
        start = sm.scorenet.center + sm.prior_spread() * torch.randn(n, 2, device=device)
        run = functools.partial(predictor_corrector, sm, iterations=iterations, lr=lr)
    else:
        start = torch.randn(n, 2, device=device) if sp24 else sm.initial_random_samples(n)
        run = functools.partial(sm.langevin_dynamics_sample, noise_levels=sm.noise_levels, iterations=iterations,
                                lr=2 * lr if sp24 else lr, denoise=not sp24)
    samples, trajectory = run(start[:tracked], return_trajectory=True) if tracked else (run(start), None)
    if n > tracked > 0:
        samples = torch.cat([samples, run(start[tracked:])])
    # Every start lies within a few prior spreads of the center: 100 of them away (or NaN) means ε is too large.
    sigma_max = sm.noise_levels.max().item()
    center, reach = (torch.zeros(2), 100 * math.sqrt(1 + sigma_max ** 2)) if sp24 else \
        (sm.scorenet.center.cpu(), 100 * sm.prior_spread().item())
    paths = [samples] if trajectory is None else [samples, trajectory]  # the trajectory is kept on the CPU
    farthest = torch.stack([(path.cpu() - center).norm(dim=-1).max() for path in paths]).max().item()  # NaN stays
    went = f"{farthest:.3g} from the center" if math.isfinite(farthest) else "to inf or NaN"
    method = "Langevin sampling" if sampler == "langevin" else "Sampling"
    require(farthest < reach, f"{method} diverged (points went {went}, the start's spread is "
                              f"{reach / 100:.3g}) with step size ε = {lr:.3g}: lower --sampling-lr")
    return samples.cpu(), trajectory


def check_sampling_options(n_samples: int, sampler: Optional[str], iterations: int, lr: Optional[float],
                           seed: Optional[int]) -> None:
    """One-line errors for sampling options out of range (before anything is trained or written)."""
    require(n_samples >= 2, f"--n-samples must be >= 2, got {n_samples}")
    require(sampler in (None, *SAMPLERS), f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    require(iterations >= 1, f"--sampling-iterations must be >= 1, got {iterations}")
    require(lr is None or (math.isfinite(lr) and lr > 0), f"--sampling-lr must be > 0, got {lr}")
    if seed is not None:  # generate and evaluate seed torch with seed, seed + 1 and seed + 2
        require(0 <= seed <= 2**64 - 3, f"--seed must be between 0 and 2**64 - 3, got {seed}")


def evaluate_and_save(sm: ScoreMatching, cloud: PointCloud, state: dict, out_dir: Path, sampler: str, iterations: int,
                      lr: float, seed: int, samples: Optional[torch.Tensor] = None) -> dict:
    """Evaluate EVAL_BATCHES x EVAL_SIZE samples (the given ones, topped up with fresh ones) against the data;
    write out_dir/metrics.json and print the summary. Returns the metrics."""
    samples = torch.empty(0, 2) if samples is None else samples
    missing = EVAL_BATCHES * EVAL_SIZE - len(samples)
    if missing > 0:
        samples = torch.cat([samples, generate(sm, missing, sampler, iterations, lr, seed + 1,
                                               recipe=state["config"]["recipe"])[0]])
    metrics = evaluate(samples, cloud, seed=seed + 2)
    metrics.update(train_seconds=round(state.get("train_seconds", 0.0), 2), iterations=state.get("iteration"),
                   noise_levels=[round(s, 6) for s in sm.noise_levels.tolist()], sampler=sampler,
                   sampling_iterations=iterations, sampling_lr=lr)
    write_metrics(metrics, Path(out_dir) / "metrics.json")
    note(summary(metrics))
    return metrics


def summary(metrics: dict) -> str:
    """The metrics as one readable line."""
    text = (f"{metrics['dataset']}: sliced W2 {metrics['sliced_w2']:.4f} ({metrics['sliced_w2_vs_floor']:.2f}x "
            f"the real-vs-real floor {metrics['floor_sliced_w2']:.4f}), energy distance "
            f"{metrics['energy_distance']:.4f} ({metrics['energy_distance_vs_floor']:.2f}x the floor "
            f"{metrics['floor_energy_distance']:.4f}; the floors: {metrics['floor']})")
    if "mode_weights" in metrics:
        text += f", mode weights {metrics['mode_weights']} (true {[round(w, 3) for w in metrics['true_mode_weights']]})"
    return text


def run_sampling(out_dir: Path, n_samples: int = 2000, sampler: Optional[str] = None,
                 iterations: int = SAMPLING_ITERATIONS, lr: Optional[float] = None, seed: Optional[int] = None,
                 device: str = "auto") -> dict:
    """Sample from out_dir/model.pt (training one with the defaults first if there is none); write samples.npy,
    the sampling figures and metrics.json. Returns the metrics."""
    out_dir = check_out_dir(out_dir)
    pick_device(device)
    check_sampling_options(n_samples, sampler, iterations, lr, seed)
    if not (out_dir / CHECKPOINT).exists():
        note(f"no checkpoint at {out_dir / CHECKPOINT}: training one with the default settings first "
             f"(under a minute; or run `{run_in(out_dir).train_command}` with your own settings)")
        run_training(Config(), out_dir, device)
    sm, state, cloud = restore(out_dir, device)
    sampler, lr, seed = sampling_defaults(sm, state, sampler, lr, seed)
    # the figures take the level each stage of `iterations` steps ends at: Langevin dynamics runs at each level;
    # pc's predictor runs from each level to the next, then its corrector at the smallest
    if sampler == "langevin":
        stages, method = sm.noise_levels, "Annealed Langevin dynamics"
        note(f"sampling {n_samples} points: {len(stages)} levels x {iterations} Langevin steps, ε = {lr:.3g}")
    else:
        ordered = sm.noise_levels.sort(descending=True).values
        stages, method = torch.cat([ordered[1:], ordered[-1:]]), "Reverse diffusion, then Langevin dynamics at σ_L"
        note(f"sampling {n_samples} points: {iterations} reverse-diffusion steps from each of {len(stages)} levels "
             f"to the next, then {iterations} Langevin steps at the smallest, ε = {lr:.3g}")
    recipe = state["config"]["recipe"]
    final = "" if recipe == "sp24" else "then denoised"  # the Spring-2024 sampler has no denoising step
    samples, trajectory = generate(sm, n_samples, sampler, iterations, lr, seed, min(n_samples, TRACKED_POINTS),
                                   recipe)
    save_array(samples.numpy(), out_dir / "samples.npy")
    metrics = evaluate_and_save(sm, cloud, state, out_dir, sampler, iterations, lr, seed, samples)
    data = cloud.points
    figures = [plot_samples(samples, data, out_dir / "samples.png",
                            f"{len(samples)} generated samples: sliced W2 {metrics['sliced_w2_vs_floor']:.2f}x, "
                            f"energy distance {metrics['energy_distance_vs_floor']:.2f}x the floor"),
               plot_snapshots(trajectory, samples, stages, data, out_dir / "snapshots.png", final, method),
               plot_trajectories(trajectory, samples, stages, out_dir / "trajectories.png",
                                 *((2, True) if recipe == "sp24" else ())),
               save_sampling_gif(trajectory, samples, stages, data, out_dir / "sampling.gif", final=final)]
    note(f"wrote {out_dir / 'samples.npy'}, {out_dir / 'metrics.json'}, figures: "
         f"{', '.join(str(path) for path in figures)}")
    return metrics


# ----------------------------------------------------------------------------------------------------
# Command line

app = App(help="Score-based diffusion on 2-D points: denoising score matching and annealed Langevin dynamics "
               "(hw5 question 4).")
OUT_DIR = typer.Option(Path("outputs/diffusion"), help="Folder for model.pt, samples.npy, the figures and "
                                                       "metrics.json.")
N_SAMPLES = typer.Option(2000, min=2, help="How many samples to generate.")
SAMPLER_OPTION = typer.Option(None, "--sampler", help="langevin: the course's annealed Langevin dynamics (it evens "
                                                     "out a mixture's weights); pc: reverse diffusion from each "
                                                     "noise level to the next, then Langevin dynamics at the "
                                                     "smallest (it keeps them) [default: pc; langevin for "
                                                     "--recipe sp24].")
SAMPLING_ITERATIONS_OPTION = typer.Option(SAMPLING_ITERATIONS, min=1, help="Steps per noise level (T): Langevin steps "
                                                                           "at each (langevin); reverse-diffusion "
                                                                           "steps to the next, and T Langevin steps "
                                                                           "at the smallest (pc).")
SAMPLING_LR = typer.Option(None, help="Langevin step size ε at the smallest noise level "
                                      "[default: 0.5 σ_min²].")
SAMPLING_SEED = typer.Option(None, help="Seed for sampling [default: the training seed].")


@app.command()
@config_options(Config, length="iterations")
def train(ctx: typer.Context, settings: dict, out_dir: Path = OUT_DIR, device: str = DEVICE, resume: bool = RESUME,
          overwrite: bool = OVERWRITE) -> None:
    """Train the score model; save model.pt and the data, loss-curve and score-field figures in --out-dir."""
    preset = RECIPES[settings.get("recipe", Config.recipe)]  # the typed options go over the recipe's values
    run_training(run_in(out_dir).settings(settings, preset, resume), out_dir, device, resume,
                 ignored_on_resume=typed_options(ctx, but=OPTIONS_RESUME_USES), overwrite=overwrite)
    note(f"next: python hw5_diffusion.py sample --out-dir {shlex.quote(str(out_dir))}")


@app.command()
def sample(n_samples: int = N_SAMPLES, sampler: Optional[str] = SAMPLER_OPTION,
           sampling_iterations: int = SAMPLING_ITERATIONS_OPTION, sampling_lr: Optional[float] = SAMPLING_LR,
           out_dir: Path = OUT_DIR, seed: Optional[int] = SAMPLING_SEED, device: str = DEVICE) -> None:
    """Sample (reverse diffusion, or annealed Langevin dynamics); write samples.npy, the figures and metrics.json.

    Trains a model with the default settings first when --out-dir has none.
    """
    run_sampling(out_dir, n_samples, sampler, sampling_iterations, sampling_lr, seed, device)


@app.command("plot-score")
def plot_score_command(sigma: Optional[float] = typer.Option(None, help="Noise level to draw the score at "
                                                                        "[default: 10% of the data's spread; "
                                                                        "0.1 for --recipe sp24]."),
                       out_dir: Path = OUT_DIR, device: str = DEVICE) -> None:
    """Draw the learned score field over the data: --out-dir/score_field.png."""
    require(sigma is None or (math.isfinite(sigma) and sigma > 0), f"--sigma must be > 0, got {sigma}")
    sm, state, cloud = restore(out_dir, device)
    note(f"wrote {draw_score_field(sm, cloud.points, out_dir, state['config']['recipe'], sigma)}")


@app.command("evaluate")
def evaluate_command(sampler: Optional[str] = SAMPLER_OPTION, sampling_iterations: int = SAMPLING_ITERATIONS_OPTION,
                     sampling_lr: Optional[float] = SAMPLING_LR, out_dir: Path = OUT_DIR,
                     seed: Optional[int] = SAMPLING_SEED, device: str = DEVICE) -> None:
    """Compare 5 x 2000 fresh samples with fresh data, or a --data file's held-out points (sliced W2, energy
    distance, their floors): metrics.json."""
    check_sampling_options(EVAL_SIZE, sampler, sampling_iterations, sampling_lr, seed)
    sm, state, cloud = restore(out_dir, device)
    sampler, lr, seed = sampling_defaults(sm, state, sampler, sampling_lr, seed)
    evaluate_and_save(sm, cloud, state, out_dir, sampler, sampling_iterations, lr, seed)


if __name__ == "__main__":
    app()
