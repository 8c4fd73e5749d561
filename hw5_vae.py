"""Variational autoencoder on binarized MNIST (homework 5, question 2).

    python hw5_vae.py train --epochs 200     # about 3 minutes on a laptop CPU; writes outputs/vae/
    python hw5_vae.py plot                   # redraw the figures from outputs/vae/vae.pt
    python hw5_vae.py evaluate               # test ELBO and importance-weighted log-likelihood

The course's Fall-2022 template is solved here too: `VAE(parse_args())`, `vae.train()`, the three
`visualize_*()` figures and `main()`, as its starter calls them.

The course's model: an encoder q(z|x) = N(mu(x), diag sigma_square(x)) (MLP 784-500-2x2, tanh), the prior
p(z) = N(0, I) and a decoder p(x|z) = Bernoulli(p(z)) (MLP 2-500-784, tanh then sigmoid). Training maximizes
the ELBO  E_q[log p(x|z) + log p(z) - log q(z|x)], estimated with one reparameterized z per image (Eq. 2).
All log-probabilities are in nats, summed over the 784 pixels.

Training defaults differ from the course's in two ways, both measured (README): the KL term is computed in
closed form (Eq. 1: the same objective with lower-variance gradients), and Adam's learning rate starts at
3e-3 and decays along a cosine. In 200 epochs that reaches a test ELBO of -145 nats instead of -148.
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import typer
from matplotlib.ticker import MaxNLocator
from torch import nn
from tqdm import tqdm

from hw5_utils import (App, Checkpointer, DEVICE, MATMUL_PRECISIONS, MNIST, MNIST_HELP, OVERWRITE, RESUME, Run,
                       batch_indices, config_options, get_rng_state, judge_digits, load_judge, load_mnist, load_weights,
                       matmul_precision, note, pick_device, plot_image_grid, progress, read_mnist, require, save_figure,
                       seed_everything, setting, typed_options, write_metrics)

# ----------------------------------------------------------------------------------------------------
# Hyperparameters (the command line's defaults)


@dataclass
class Config:
    latent_dim: int = setting(2, "Latent dimensions (at least 2: the figures plot two).", min=2)
    hidden_units: int = setting(500, "Hidden units of the encoder and of the decoder.", min=1)
    data_dim: int = setting(784, min=1, option=False)
    epochs: int = setting(200, "Epochs to train (with --resume: the total, by default the saved run's).", min=1)
    batch_size: int = setting(100, "Images per training batch.", min=1)
    lr: float = setting(3e-3, "Peak Adam learning rate, decayed along a cosine to 0.", positive=True)
    kl: str = setting("analytic", "analytic: Eq. 1, KL in closed form; monte-carlo: Eq. 2, the course's elbo_loss.",
                      choices=("analytic", "monte-carlo"))
    train_size: int = setting(10000, "Use the first N training images (the course's 10000); 0 = all.", min=0)
    binarize: str = setting("dynamic", "dynamic: a fresh Bernoulli draw of every image each epoch; round: the "
                                       "course's fixed rounding.", choices=("dynamic", "round"))
    data: Optional[str] = setting(None, MNIST_HELP)
    seed: int = setting(1234, "Seed of every random number generator.")
    matmul_precision: str = setting("medium", "Float32 matrix products in training (torch's "
                                              "set_float32_matmul_precision): medium uses bfloat16 hardware where "
                                              "a CPU has it (2x faster on an AVX512-BF16 CPU) and TF32 on CUDA; "
                                              "highest is plain float32.", choices=MATMUL_PRECISIONS)


CHECKPOINT = "vae.pt"
CHECKPOINT_KEYS = ("encoder", "decoder", "config")
RESUME_KEYS = ("optimizer", "epoch", "rng", "history")
OPTIONS_RESUME_USES = ("epochs", "data", "out_dir", "device", "resume", "iw_samples", "overwrite")  # others: a note
INTERPOLATION_PAIRS = ((0, 1), (2, 7), (3, 6))  # (from digit, to digit) for the 2.e.iii figure
ALPHAS = [k / 10 for k in range(11)]            # alpha = 0, 0.1, ..., 1

# ----------------------------------------------------------------------------------------------------
# The course's code (Fall 2022, question 2): Encoder (given), Decoder, VAE, parse_args and main, in the handout's
# order


class Encoder(nn.Module):
    """q(z|x): x (B, data_dimension) -> mu (B, latent_dimension), sigma_square (B, latent_dimension)."""

    def __init__(self, latent_dimension: int, hidden_units: int, data_dimension: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(data_dimension, hidden_units)
        self.fc2_mu = nn.Linear(hidden_units, latent_dimension)
        self.fc2_sigma = nn.Linear(hidden_units, latent_dimension)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = torch.tanh(self.fc1(x))
        # The network outputs log sigma^2, so the variance is positive without any constraint.
        return self.fc2_mu(hidden), torch.exp(self.fc2_sigma(hidden))


class Decoder(nn.Module):
    """p(x|z): z (B, latent_dimension) -> p (B, data_dimension), each pixel's probability of being 1."""

    def __init__(self, latent_dimension: int, hidden_units: int, data_dimension: int) -> None:
        super().__init__()
        self.fc1_dec = nn.Linear(latent_dimension, hidden_units)
        self.fc2_dec = nn.Linear(hidden_units, data_dimension)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z))

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dimension) -> logits (B, data_dimension), p = sigmoid(logits): what training uses."""
        return self.fc2_dec(torch.tanh(self.fc1_dec(z)))


class VAE(nn.Module):
    """The encoder-decoder pair with the course's sampling, density and ELBO functions, its training and figures."""

    def __init__(self, args: argparse.Namespace | None = None, load_data: bool = True) -> None:
        """args: the settings of `parse_args()` (its defaults when None). As in the course, the course's data
        (`load_mnist()`: 10000 rounded training images, one-hot labels) are kept as self.train_images and
        self.train_labels, and the weights in e_path and d_path are loaded when resume_training is set.
        load_data=False skips the data (the command line reads its own)."""
        super().__init__()
        args = args if args is not None else parse_args([])
        self.latent_dimension, self.hidden_units = args.latent_dimension, args.hidden_units
        self.data_dimension, self.resume_training = args.data_dimension, args.resume_training
        self.batch_size, self.num_epoches = args.batch_size, args.num_epoches
        self.e_path, self.d_path = args.e_path, args.d_path
        self.train_images = self.train_labels = self.test_images = None
        if load_data:
            N_data, self.train_images, self.train_labels, self.test_images, test_labels = load_mnist()  # noqa: N806
        self.encoder = Encoder(self.latent_dimension, self.hidden_units, self.data_dimension)
        self.decoder = Decoder(self.latent_dimension, self.hidden_units, self.data_dimension)
        if self.resume_training:
            self.encoder.load_state_dict(torch.load(self.e_path, weights_only=True))
            self.decoder.load_state_dict(torch.load(self.d_path, weights_only=True))

    @staticmethod
    def sample_diagonal_gaussian(mu: torch.Tensor, sigma_square: torch.Tensor) -> torch.Tensor:
        """z ~ N(mu, diag sigma_square): mu, sigma_square (B, L) -> z (B, L).

        Reparameterized (z = mu + sigma * eps, eps ~ N(0, I)), so gradients flow into mu and sigma_square.
        """
        eps = torch.randn(torch.broadcast_shapes(mu.shape, sigma_square.shape), dtype=mu.dtype, device=mu.device)
        return mu + torch.sqrt(sigma_square) * eps

    @staticmethod
    def sample_Bernoulli(p: torch.Tensor) -> torch.Tensor:  # noqa: N802 - the course's name
        """x ~ Bernoulli(p): p (B, D) in [0, 1] -> x (B, D) float32 in {0, 1}."""
        return torch.bernoulli(p).to(torch.float32)

    @staticmethod
    def logpdf_diagonal_gaussian(z: torch.Tensor, mu: torch.Tensor, sigma_square: torch.Tensor) -> torch.Tensor:
        """log N(z; mu, diag sigma_square): z (B, L); mu, sigma_square (B, L) or (L,) (broadcast) -> (B,)."""
        return -0.5 * (torch.log(2 * math.pi * sigma_square) + (z - mu) ** 2 / sigma_square).sum(-1)

    @staticmethod
    def logpdf_bernoulli(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """log Bernoulli(x; p) = sum_j x_j log p_j + (1 - x_j) log(1 - p_j): x, p (B, D) -> (B,).

        Both logs are clamped at the smallest positive float, so p = 0 or 1 (a saturated sigmoid) stays
        finite: exactly 0 where x agrees, a large finite penalty (about -87 per pixel) where it does not.
        """
        tiny = torch.finfo(p.dtype).tiny
        return (x * torch.log(p.clamp_min(tiny)) + (1 - x) * torch.log((1 - p).clamp_min(tiny))).sum(-1)

    def sample_z(self, mu: torch.Tensor, sigma_square: torch.Tensor) -> torch.Tensor:
        """z ~ q(z|x) given its parameters: mu, sigma_square (B, L) -> z (B, L)."""
        return self.sample_diagonal_gaussian(mu, sigma_square)

    def elbo_loss(self, sampled_z: torch.Tensor, mu: torch.Tensor, sigma_square: torch.Tensor, x: torch.Tensor,
                  p: torch.Tensor) -> torch.Tensor:
        """The ELBO (Eq. 2), to be maximized: batch mean of log p(x|z) + log p(z) - log q(z|x).

        sampled_z, mu, sigma_square (B, L); x, p (B, D) -> a scalar, in nats per image.
        """
        log_q = self.logpdf_diagonal_gaussian(sampled_z, mu, sigma_square)
        prior_mu, prior_var = torch.zeros_like(sampled_z[0]), torch.ones_like(sampled_z[0])  # (L,), broadcast
        log_p_z = self.logpdf_diagonal_gaussian(sampled_z, prior_mu, prior_var)
        log_p_x = self.logpdf_bernoulli(x, p)
        return (log_p_x + log_p_z - log_q).mean()

    def train(self, mode: bool | None = None):
        """The course's training (2.d): Adam on -ELBO, num_epoches epochs of batch_size-image minibatches of
        self.train_images, then the encoder's weights saved to e_path and the decoder's to d_path.

        train(True) or train(False), which nn.Module.eval() calls, only sets the module's training mode. The
        command line trains with `fit` instead: the same ELBO, twice as fast and to a better optimum (README).
        """
        if mode is not None:
            return super().train(mode)
        optimizer = torch.optim.Adam(self.parameters())
        num_batches = math.ceil(len(self.train_images) / self.batch_size)
        bar = tqdm(range(self.num_epoches * num_batches), desc="VAE", unit="batch")
        for i in bar:
            x_minibatch = self.train_images[batch_indices(i, num_batches, self.batch_size)]
            mu, sigma_square = self.encoder(x_minibatch)
            zs = self.sample_z(mu, sigma_square)
            elbo = self.elbo_loss(zs, mu, sigma_square, x_minibatch, self.decoder(zs))
            optimizer.zero_grad()
            (-elbo).backward()
            optimizer.step()
            if i % 100 == 0:
                bar.set_postfix(epoch=i // num_batches, elbo=f"{elbo.item():.1f}")
        torch.save(self.encoder.state_dict(), self.e_path)
        torch.save(self.decoder.state_dict(), self.d_path)
        return self

    # ------------------------------------------------------------------------------------------------
    # Figures (2.e): each saves a PNG and returns the images or points it drew

    @torch.no_grad()
    def visualize_data_space(self, path: Path | str = "data_space.png", n_samples: int = 10) -> torch.Tensor:
        """Decode n_samples prior draws z ~ N(0, I): p(x|z) beside one Bernoulli sample x ~ p(x|z).

        Saves an (n_samples x 2) grid; returns images (n_samples, 2, 784).
        """
        device = next(self.parameters()).device
        p = self.decoder(torch.randn(n_samples, self.latent_dimension, device=device))
        images = torch.stack([p, self.sample_Bernoulli(p)], dim=1)
        plot_image_grid(images, path, "Samples from the prior z ~ N(0, I)", col_labels=["p(x|z)", "x ~ p(x|z)"],
                        row_labels=[f"z{i + 1}" for i in range(n_samples)], cell_inches=0.7)
        return images

    def training_images(self, images: torch.Tensor | None, labels: torch.Tensor | None) -> tuple:
        """images (N, 784) and digit labels (N,) on this model's device: the given ones, else self.train_images
        and self.train_labels (one-hot labels become digits)."""
        images = self.train_images if images is None else images
        labels = self.train_labels if labels is None else labels
        require(images is not None and labels is not None, "no images to draw: pass images and labels")
        labels = labels.argmax(1) if labels.ndim == 2 else labels
        device = next(self.parameters()).device
        return images.to(device), labels.to(device)

    @torch.no_grad()
    def visualize_latent_space(self, images: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                               path: Path | str = "latent_space.png") -> torch.Tensor:
        """Scatter the means of q(z|x) of images (N, 784), coloured by labels (N,) or one-hot (N, 10) (default:
        the training images); returns the means (N, L).

        Beyond two latent dimensions, the plot shows the means' first two principal components.
        """
        images, labels = self.training_images(images, labels)
        mu, _ = self.encoder(images)
        points, axis = mu.cpu(), "z"
        if points.shape[1] > 2:
            centered = points - points.mean(0)
            points, axis = centered @ torch.linalg.svd(centered, full_matrices=False).Vh[:2].T, "principal component "
        labels = labels.cpu()
        fig, ax = plt.subplots(figsize=(7, 6))
        for digit in range(10):
            chosen = labels == digit
            ax.scatter(points[chosen, 0], points[chosen, 1], s=3, alpha=0.6, color=plt.cm.tab10(digit),
                       label=str(digit), rasterized=True)
        ax.legend(title="digit", markerscale=4, loc="center left", bbox_to_anchor=(1.0, 0.5))
        ax.set_xlabel(f"{axis}1")
        ax.set_ylabel(f"{axis}2")
        ax.set_title(f"Means of q(z|x) for {len(labels)} training images, coloured by digit")
        save_figure(fig, path)
        return mu

    @staticmethod
    def interpolate_mu(mua: torch.Tensor, mub: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
        """z_alpha = alpha * mua + (1 - alpha) * mub: mua, mub (L,) or (B, L) -> same shape."""
        return alpha * mua + (1 - alpha) * mub

    @torch.no_grad()
    def visualize_inter_class_interpolation(self, images: torch.Tensor | None = None,
                                            labels: torch.Tensor | None = None,
                                            path: Path | str = "interpolation.png",
                                            pairs: tuple = INTERPOLATION_PAIRS) -> torch.Tensor:
        """Decode z_alpha between the latent means of pairs of different digits, alpha = 0, 0.1, ..., 1.

        images (N, 784), labels (N,) or one-hot (N, 10) (default: the training images); pairs: (digit a,
        digit b) per row, a at alpha = 0 and b at alpha = 1. Each digit is represented by its most typical image
        (mean nearest the class's median mean). Returns the decoded means p(x|z_alpha), (len(pairs), 11, 784).
        """
        images, labels = self.training_images(images, labels)
        mu, _ = self.encoder(images)

        def typical_mean(digit: int) -> torch.Tensor:
            class_mu = mu[labels == digit]
            require(len(class_mu) > 0, f"no training image of digit {digit} to interpolate from")
            return class_mu[(class_mu - class_mu.median(0).values).norm(dim=1).argmin()]

        rows = torch.stack([torch.stack([self.interpolate_mu(typical_mean(b), typical_mean(a), alpha)
                                         for alpha in ALPHAS]) for a, b in pairs])
        decoded = self.decoder(rows)
        plot_image_grid(decoded, path, "Interpolating latent means: p(x|z), z = alpha*mu_b + (1-alpha)*mu_a",
                        col_labels=[f"{alpha:.1f}" for alpha in ALPHAS], xlabel="alpha",
                        row_labels=[f"{a} -> {b}" for a, b in pairs], cell_inches=0.6)
        return decoded

    # ------------------------------------------------------------------------------------------------
    # Not part of the homework: the faster ELBO the command line trains with (Eq. 1 from the logits, about 2.6x
    # the usual loop with BernoulliLogLikelihood and fit: README, Speed), the importance-weighted log-likelihood
    # of `evaluate`, and the manifold figure

    @staticmethod
    def logpdf_bernoulli_logits(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """logpdf_bernoulli(x, sigmoid(logits)) computed from the logits: x, logits (B, D) -> (B,).

        Exact where the sigmoid would round p to 0 or 1 (logpdf_bernoulli can only clamp there), and cheaper
        forward and backward: the training step's form (see BernoulliLogLikelihood).
        """
        return BernoulliLogLikelihood.apply(x, logits)

    @staticmethod
    def kl_to_prior(mu: torch.Tensor, sigma_square: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, diag sigma_square) || N(0, I)) in closed form: mu, sigma_square (B, L) -> (B,)."""
        return 0.5 * (mu ** 2 + sigma_square - torch.log(sigma_square) - 1).sum(-1)

    def forward(self, x: torch.Tensor, kl: str = "analytic") -> torch.Tensor:
        """x (B, D) -> the ELBO of the batch (a scalar) with one z per image.

        kl='analytic' (Eq. 1): E_q[log p(x|z)] - KL(q || p(z)), the KL in closed form; kl='monte-carlo' (Eq. 2):
        elbo_loss. Both estimate the same ELBO; Eq. 1 has less variance from the sampled z.
        """
        mu, sigma_square = self.encoder(x)
        z = self.sample_z(mu, sigma_square)
        if kl == "analytic":
            return (self.logpdf_bernoulli_logits(x, self.decoder.logits(z)) - self.kl_to_prior(mu, sigma_square)).mean()
        return self.elbo_loss(z, mu, sigma_square, x, self.decoder(z))

    @torch.no_grad()
    def log_importance_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) for z_1..z_k ~ q(z|x): x (B, D) -> (B, k)."""
        mu, sigma_square = self.encoder(x)
        mu, sigma_square = mu.repeat_interleave(k, 0), sigma_square.repeat_interleave(k, 0)  # (B*k, L)
        z = self.sample_z(mu, sigma_square)
        log_p_x = self.logpdf_bernoulli_logits(x.repeat_interleave(k, 0), self.decoder.logits(z))
        log_p_z = self.logpdf_diagonal_gaussian(z, torch.zeros_like(z[0]), torch.ones_like(z[0]))
        return (log_p_x + log_p_z - self.logpdf_diagonal_gaussian(z, mu, sigma_square)).view(len(x), k)

    @torch.no_grad()
    def visualize_manifold(self, path: Path, n: int = 20) -> torch.Tensor:
        """Decode p(x|z) over an n x n grid of the first two latent dimensions (the others 0).

        The grid follows the prior's quantiles 5%..95%, so it covers where N(0, I) puts its mass.
        Returns images (n, n, 784); rows go from high z2 (top) to low z2.
        """
        device = next(self.parameters()).device
        values = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, n)).to(device)
        z = torch.zeros(n, n, self.latent_dimension, device=device)
        z[..., 0], z[..., 1] = values.view(1, n), values.flip(0).view(n, 1)
        images = self.decoder(z)
        labels = [f"{v:.1f}" if i % 3 == 0 else "" for i, v in enumerate(values.tolist())]
        plot_image_grid(images, path, "Latent manifold: p(x|z) over a grid of z", col_labels=labels,
                        row_labels=labels[::-1], xlabel="z1", ylabel="z2", cell_inches=0.35)
        return images


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The course's settings (its starter's parse_args), read from argv (default: the command line)."""
    parser = argparse.ArgumentParser(description="The course's VAE (Fall 2022, question 2).")
    parser.add_argument("--e_path", type=str, default="./e_params.pkl", help="Path to the encoder parameters.")
    parser.add_argument("--d_path", type=str, default="./d_params.pkl", help="Path to the decoder parameters.")
    parser.add_argument("--hidden_units", type=int, default=500, help="Hidden units of the encoder and decoder.")
    parser.add_argument("--latent_dimension", type=int, default=2, help="Dimensionality of the latent space.")
    parser.add_argument("--data_dimension", type=int, default=784, help="Dimensionality of the data space.")
    parser.add_argument("--resume_training", action="store_true", help="Whether to resume training.")
    parser.add_argument("--seed", type=int, default=1234, help="Random seed.")
    parser.add_argument("--num_epoches", type=int, default=200, help="Number of epochs for training.")
    parser.add_argument("--batch_size", type=int, default=100, help="Batch size.")
    return parser.parse_args(argv)


def main() -> None:
    """The course's main(): seed, train VAE(args), draw the three figures of 2.e (saved in the working folder)."""
    args = parse_args()
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    vae = VAE(args)
    vae.train()
    vae.visualize_data_space()
    vae.visualize_latent_space()
    vae.visualize_inter_class_interpolation()


# ----------------------------------------------------------------------------------------------------
# Faster versions, not part of the homework: the likelihood the command line's training uses


class BernoulliLogLikelihood(torch.autograd.Function):
    """log Bernoulli(x; sigmoid(logits)) = sum_j x_j l_j - softplus(l_j): x, logits (B, D) -> (B,).

    The value of torch's binary_cross_entropy_with_logits (negated), without its log1p, whose AVX-512 kernel is
    slow on some CPUs: softplus from sigmoid and log, and the gradients in closed form. Measured (README, Speed):
    0.20 ms a batch forward and backward against 0.68 ms for the logits loss and 1.17 ms for
    F.binary_cross_entropy on the probabilities; 12% of a float32 training epoch.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, logits)
        softplus = logits.clamp_min(0) - torch.log(torch.sigmoid(logits.abs()))  # log(1 + e^l), no overflow
        return (x * logits - softplus).sum(-1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], torch.Tensor]:
        x, logits = ctx.saved_tensors
        grad = grad.unsqueeze(-1)
        grad_x = grad * logits if ctx.needs_input_grad[0] else None  # x is data: usually no gradient wanted
        grad_logits = grad * (x - torch.sigmoid(logits))
        return grad_x, grad_logits


# ----------------------------------------------------------------------------------------------------
# Training


def training_state(vae: VAE, optimizer: torch.optim.Optimizer, cfg: Config, epoch: int, history: dict,
                   train_seconds: float) -> dict:
    """Everything a checkpoint holds: weights, optimizer, settings, progress and RNG states (for --resume)."""
    return {"encoder": vae.encoder.state_dict(), "decoder": vae.decoder.state_dict(),
            "optimizer": optimizer.state_dict(), "config": asdict(cfg), "epoch": epoch, "history": history,
            "train_seconds": train_seconds, "rng": get_rng_state()}


def bernoulli_sampler(images: torch.Tensor):
    """images (N, D) in [0, 1] -> a function returning a fresh draw x ~ Bernoulli(images), (N, D) float32, per call.

    Only grey pixels (0 < p < 1, a fifth of MNIST's) need a random number; drawing those alone is 2x faster on CPU
    than comparing every pixel with torch.rand, and 8x faster than torch.bernoulli.
    """
    grey = ((images > 0) & (images < 1)).flatten().nonzero().squeeze(1)
    p_grey, ones = images.flatten()[grey], (images == 1).float()

    def draw() -> torch.Tensor:
        x = ones.clone()
        x.view(-1)[grey] = (torch.rand_like(p_grey) < p_grey).float()
        return x
    return draw


def fit(vae: VAE, optimizer: torch.optim.Optimizer, data: MNIST, cfg: Config, checkpointer: Checkpointer,
        state: dict) -> dict:
    """Train from state['epoch'] to cfg.epochs (minibatches by index from one tensor); returns the final state."""
    x_train, n = data.train_images, len(data.train_images)
    # 'dynamic': a fresh binary image each epoch, which overfits less than the fixed rounding of 'round'
    binarized = bernoulli_sampler(x_train) if cfg.binarize == "dynamic" else lambda: x_train
    epoch, history, seconds = state["epoch"], state["history"], state["train_seconds"]
    bar = progress(range(epoch, cfg.epochs), initial=epoch, total=cfg.epochs, desc="VAE", unit="epoch")
    with checkpointer.guard(), matmul_precision(cfg.matmul_precision):
        for epoch in bar:
            tic = time.perf_counter()
            for group in optimizer.param_groups:  # cosine decay, a function of the epoch alone: resumes exactly
                group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * epoch / cfg.epochs))
            # Each batch is gathered by index: with a shuffled copy of all the images (31 MB of freshly mapped
            # memory each time), drawing and shuffling took 24 ms an epoch on a 2-core CPU instead of 8.
            x_epoch, order = binarized(), torch.randperm(n, device=x_train.device)
            elbo_sum = torch.zeros((), device=x_train.device)
            for start in range(0, n, cfg.batch_size):
                x = x_epoch.index_select(0, order[start:start + cfg.batch_size])
                elbo = vae(x, cfg.kl)
                optimizer.zero_grad(set_to_none=True)
                (-elbo).backward()
                optimizer.step()
                elbo_sum += elbo.detach() * len(x)
            train_elbo = elbo_sum.item() / n
            checkpointer.check_finite(train_elbo, epoch)
            with torch.no_grad():
                test_elbo = vae(data.test_images).item()
            history.setdefault("train_elbo", []).append(train_elbo)
            history.setdefault("test_elbo", []).append(test_elbo)
            seconds += time.perf_counter() - tic
            checkpointer.snapshot(training_state(vae, optimizer, cfg, epoch + 1, history, seconds))
            bar.set_postfix(elbo=f"{train_elbo:.1f}", test_elbo=f"{test_elbo:.1f}")
    checkpointer.save()
    return checkpointer.state


# ----------------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def evaluate(vae: VAE, images: torch.Tensor, iw_samples: int = 1000, seed: int = 0,
             rows_per_chunk: int = 20000) -> dict:
    """Test ELBO and importance-weighted log-likelihood (IWAE bound), nats per image, of binary images (N, D).

    With K = iw_samples draws z_k ~ q(z|x) per image: ELBO = mean_k log w_k (Eq. 2, averaged over K) and
    log p(x) >= log (1/K) sum_k w_k, which tightens as K grows.
    """
    seed_everything(seed)
    chunk = max(1, rows_per_chunk // iw_samples)            # images per pass...
    samples_per_pass = min(iw_samples, rows_per_chunk)      # ...and, for a huge K, samples per pass
    elbo, iwae = [], []
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk]
        log_w = torch.cat([vae.log_importance_weights(x, min(samples_per_pass, iw_samples - done))
                           for done in range(0, iw_samples, samples_per_pass)], 1)  # (B, K)
        elbo.append(log_w.mean(1))
        iwae.append(torch.logsumexp(log_w, 1) - math.log(iw_samples))
    return {"test_elbo": torch.cat(elbo).mean().item(), "test_iwae_ll": torch.cat(iwae).mean().item(),
            "iw_samples": iw_samples}


# ----------------------------------------------------------------------------------------------------
# Figures


def plot_learning_curve(history: dict, path: Path) -> Path:
    """Train and test ELBO per epoch (the test one on the rounded test images, one z per image)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = range(1, len(history.get("train_elbo", [])) + 1)
    ax.plot(epochs, history.get("train_elbo", []), label="train (binarized as trained)")
    ax.plot(epochs, history.get("test_elbo", []), label="test (rounded)")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5 on short runs
    ax.set_ylabel("ELBO (nats per image)")
    ax.set_title("VAE learning curve")
    if len(epochs) > 10:
        settled = len(epochs) // 10
        ax.set_ylim(bottom=min(history["test_elbo"][settled:] + history["train_elbo"][settled:]) - 5)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def check_figure_digits(data: MNIST) -> None:
    """The interpolation figure needs a training image of each digit in INTERPOLATION_PAIRS: a one-line
    `UserError` up front when some are missing (a tiny --train-size), rather than after training."""
    missing = sorted({digit for pair in INTERPOLATION_PAIRS for digit in pair} - set(data.train_labels.tolist()))
    require(not missing, f"the {len(data.train_images)} training images have no digit {', '.join(map(str, missing))} "
                         f"for the interpolation figure: use a larger --train-size")


def make_figures(vae: VAE, data: MNIST, history: dict, out_dir: Path, seed: int) -> list[Path]:
    """Write every figure of the question (2.e.i-iii), the latent manifold and the learning curve."""
    check_figure_digits(data)  # before the first figure is written
    seed_everything(seed)
    images, labels = data.train_images.round(), data.train_labels  # binary, as the encoder is trained
    vae.visualize_data_space(out_dir / "data_space.png")
    vae.visualize_latent_space(images, labels, out_dir / "latent_space.png")
    vae.visualize_inter_class_interpolation(images, labels, out_dir / "interpolation.png")
    vae.visualize_manifold(out_dir / "manifold.png")
    plot_learning_curve(history, out_dir / "learning_curve.png")
    return [out_dir / name for name in ("data_space.png", "latent_space.png", "interpolation.png", "manifold.png",
                                        "learning_curve.png")]


# ----------------------------------------------------------------------------------------------------
# Plain functions behind the commands (the tests call these too)


def run_in(out_dir: Path | str) -> Run:
    # a run saved before --matmul-precision existed trained in float32
    return Run("hw5_vae.py", out_dir, CHECKPOINT, CHECKPOINT_KEYS, RESUME_KEYS, Config, "epoch",
               old_defaults={"matmul_precision": "highest"})


def sized_vae(cfg: Config) -> VAE:
    """A VAE of cfg's sizes, without the course's data (the command line reads its own)."""
    return VAE(parse_args([f"--latent_dimension={cfg.latent_dim}", f"--hidden_units={cfg.hidden_units}",
                           f"--data_dimension={cfg.data_dim}"]), load_data=False)


def restore(out_dir: Path, data: Path | str | None = None, device: str = "auto") -> tuple[VAE, dict, MNIST]:
    """The VAE saved in out_dir/vae.pt, the whole checkpoint, and its data (from `data` if given)."""
    dev = pick_device(device)
    path = Path(out_dir) / CHECKPOINT
    state, cfg = run_in(out_dir).load()
    vae = sized_vae(cfg)
    load_weights(vae.encoder, state["encoder"], path)
    load_weights(vae.decoder, state["decoder"], path)
    mnist = read_mnist(data or cfg.data, cfg.train_size, cfg.binarize, dev)
    return vae.to(dev), state, mnist


@torch.no_grad()
def judge_prior_samples(vae: VAE, source: str, n: int = 2000, seed: int = 0) -> dict:
    """Score n decoded prior samples p(x|z), z ~ N(0, I), with the MNIST judge (hw5_utils.judge_digits) against
    n grey test digits of `source`: Fréchet distance and its real-vs-real floor, classes covered, confidence."""
    device = next(vae.parameters()).device
    grey = read_mnist(source, 0, "none", device)
    seed_everything(seed)
    return judge_digits(load_judge(grey), vae.decoder(torch.randn(n, vae.latent_dimension, device=device)), grey, n)


def evaluate_and_save(vae: VAE, data: MNIST, state: dict, out_dir: Path, iw_samples: int) -> dict:
    """Compute the test metrics of a trained VAE and write them to out_dir/metrics.json."""
    cfg = state["config"]
    metrics = evaluate(vae, data.test_images, iw_samples, seed=cfg["seed"])
    metrics.update(epochs=state.get("epoch", 0), train_seconds=round(state.get("train_seconds", 0.0), 2),
                   binarize=cfg["binarize"], train_size=len(data.train_images), test_size=len(data.test_images),
                   latent_dim=cfg["latent_dim"], data=data.source,
                   prior_samples=judge_prior_samples(vae, data.source, seed=cfg["seed"]))
    write_metrics(metrics, Path(out_dir) / "metrics.json")
    prior = metrics["prior_samples"]
    note(f"test ELBO {metrics['test_elbo']:.2f} nats, IWAE log-likelihood (K={iw_samples}) "
         f"{metrics['test_iwae_ll']:.2f} nats, on {len(data.test_images)} test images; prior samples: judge's "
         f"Fréchet distance {prior['frechet_distance']:.1f} (real digits {prior['floor_frechet_distance']:.1f}), "
         f"{prior['classes_covered']} of 10 digits, mean confidence {prior['mean_confidence']:.2f}")
    return metrics


def run_training(cfg: Config, out_dir: Path, device: str = "auto", resume: bool = False,
                 iw_samples: int = 1000, ignored_on_resume: Sequence[str] = (), overwrite: bool = False) -> dict:
    """Train (or resume) a VAE, then write out_dir/vae.pt, the figures and metrics.json; returns the metrics.

    Everything the user gave is checked before anything in out_dir is written.
    """
    run = run_in(out_dir)
    cfg, saved = run.begin(cfg, resume, overwrite, epochs=cfg.epochs, data=cfg.data)
    dev = pick_device(device)
    data = read_mnist(cfg.data, cfg.train_size, cfg.binarize, dev)
    check_figure_digits(data)
    cfg.data = data.source
    seed_everything(cfg.seed)
    vae = sized_vae(cfg).to(dev)
    optimizer = torch.optim.Adam(vae.parameters(), lr=cfg.lr, fused=dev.type in ("cpu", "cuda"))  # one kernel a step
    state = {"epoch": 0, "history": {}, "train_seconds": 0.0}
    if saved is not None:
        state = run.resume(saved, {"encoder": vae.encoder, "decoder": vae.decoder}, {"optimizer": optimizer},
                           cfg.epochs, ignored_on_resume)
    note(f"training on {len(data.train_images)} images from {data.source} ({cfg.binarize} binarization), "
         f"device {dev}, out-dir {run.out_dir}")
    checkpointer = run.checkpointer(cfg, saved, f"--iw-samples {iw_samples}")
    state = fit(vae, optimizer, data, cfg, checkpointer, state)
    with checkpointer.guard():  # Ctrl-C from here on: the printed resume command redoes the figures and metrics
        figures = make_figures(vae, data, state["history"], run.out_dir, cfg.seed)
        note(f"figures: {', '.join(str(path) for path in figures)}")
        return evaluate_and_save(vae, data, state, run.out_dir, iw_samples)


# ----------------------------------------------------------------------------------------------------
# Command line

app = App(help="Variational autoencoder on binarized MNIST (hw5 question 2).")
OUT_DIR = typer.Option(Path("outputs/vae"), help="Folder for vae.pt, the figures and metrics.json.")
DATA = typer.Option(None, help=MNIST_HELP)
IW_SAMPLES = typer.Option(1000, min=1, help="Importance samples per test image for the log-likelihood estimate.")


@app.command()
@config_options(Config, length="epochs")
def train(ctx: typer.Context, settings: dict, out_dir: Path = OUT_DIR, device: str = DEVICE, resume: bool = RESUME,
          overwrite: bool = OVERWRITE, iw_samples: int = IW_SAMPLES) -> None:
    """Train the VAE, then save vae.pt, the figures and metrics.json in --out-dir."""
    run_training(run_in(out_dir).settings(settings, resume=resume), out_dir, device, resume, iw_samples,
                 ignored_on_resume=typed_options(ctx, but=OPTIONS_RESUME_USES), overwrite=overwrite)


@app.command()
def plot(out_dir: Path = OUT_DIR, data: Optional[Path] = DATA, device: str = DEVICE) -> None:
    """Redraw the figures from --out-dir/vae.pt."""
    vae, state, mnist = restore(out_dir, data, device)
    figures = make_figures(vae, mnist, state.get("history", {}), out_dir, state["config"]["seed"])
    note(f"figures: {', '.join(str(path) for path in figures)}")


@app.command("evaluate")
def evaluate_command(out_dir: Path = OUT_DIR, iw_samples: int = IW_SAMPLES, data: Optional[Path] = DATA,
                     device: str = DEVICE) -> None:
    """Recompute the test ELBO and IWAE log-likelihood of --out-dir/vae.pt into metrics.json."""
    vae, state, mnist = restore(out_dir, data, device)
    evaluate_and_save(vae, mnist, state, out_dir, iw_samples)


if __name__ == "__main__":
    app()
