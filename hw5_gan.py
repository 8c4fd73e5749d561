"""Generative adversarial network on MNIST (homework 5, GAN question).

    python hw5_gan.py train --epochs 100             # the course's networks; writes outputs/gan/
    python hw5_gan.py train --arch dcgan --epochs 30 # a DCGAN pair: much better digits
    python hw5_gan.py sample --n 64                  # a grid of new digits from outputs/gan/gan.pt
    python hw5_gan.py evaluate                       # Fréchet distance and class coverage (metrics.json)

A generator G maps noise z ~ U[-1, 1]^zdim to a 28x28 image in [0, 1]; a discriminator D maps an image to
a logit, D(x) = sigmoid(logit) being its belief that x is real. They play the minimax game
min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))]. D maximizes it (binary cross-entropy with real -> 1,
fake -> 0). G would minimize log(1 - D(G(z))), whose gradient vanishes while D rejects G's samples
confidently (early training), so by default it minimizes -log D(G(z)) instead (the non-saturating loss);
`--loss minimax` keeps the original to show the difference.

The course's Spring-2024 template is solved here too (question 4): `DNet`, `GNet`, `GAN()` with `_get_loss_d`,
`_get_loss_g` and the course's own `train()`, and `main()`, as its starter calls them. The command line trains
the same networks through the same two losses with a faster loop (`fit`), and adds figures and metrics.
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
import torch.nn.functional as F
import typer
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.utils import make_grid, save_image
from tqdm import tqdm

from hw5_utils import (App, BASE_URL, Checkpointer, DEVICE, GANDataset, MNIST, MNIST_HELP, OVERWRITE, RESUME, Run,
                       config_options, download, get_rng_state, judge_digits, load_judge, load_weights, note,
                       pick_device, plot_image_grid, progress, read_mnist, require, save_figure, save_gif,
                       seed_everything, setting, typed_options, write_metrics)

# ----------------------------------------------------------------------------------------------------
# Hyperparameters (the command line's defaults)


@dataclass
class Config:
    zdim: int = setting(64, "Dimension of the noise z ~ U[-1, 1]^zdim.", min=1)
    arch: str = setting("course", "course: the handout's DNet/GNet; dcgan: a DCGAN pair (better digits).",
                        choices=("course", "dcgan"))
    loss: str = setting("nonsaturating", "G's loss: -log D(G(z)), or the original log(1 - D(G(z))) that saturates.",
                        choices=("nonsaturating", "minimax"))
    epochs: int = setting(100, "Epochs to train (with --resume: the total, by default the saved run's).", min=1)
    batch_size: int = setting(256, "Images per training batch.", min=1)
    lr: float = setting(2e-4, "Adam learning rate.", positive=True)
    iter_d: int = setting(1, "Discriminator steps per batch.", min=1)
    iter_g: int = setting(1, "Generator steps per batch.", min=1)
    train_size: int = setting(0, "Use the first N training images; 0 = all.", min=0)
    data: Optional[str] = setting(None, MNIST_HELP)
    seed: int = setting(2, "Seed of every random number generator (the course seeds torch with 2).")


ARCHS = Config.__dataclass_fields__["arch"].metadata["choices"]
LOSSES = Config.__dataclass_fields__["loss"].metadata["choices"]
ADAM_BETAS = {"course": (0.9, 0.999), "dcgan": (0.5, 0.999)}  # the course's Adam defaults; DCGAN's beta1 = 0.5
DCGAN_WIDTH = 64       # channels of the DCGAN pair's first (D) and last (G) hidden layer
CHECKPOINT = "gan.pt"
CHECKPOINT_KEYS = ("gen", "disc", "config")
RESUME_KEYS = ("opt_gen", "opt_disc", "epoch", "rng", "history", "fixed_z", "frames")
OPTIONS_RESUME_USES = ("epochs", "data", "out_dir", "device", "resume", "overwrite")  # others typed get a note
GRID_EVERY = 10        # the course's test_{epoch}.png: at epoch 0 and every 10 epochs (and the last)
N_FIXED = 64           # fixed noise vectors: the 8x8 grids and the progression GIF
EVAL_SAMPLES = 2000    # generated digits scored by the judge (against as many real test digits)
D_PROBE = 512          # real and generated digits on which D's mean outputs are followed, epoch by epoch

# ----------------------------------------------------------------------------------------------------
# The course's code (Spring 2024, question 4): DNet, GNet, their losses, GAN and main


class DNet(nn.Module):
    """The course's discriminator: images (N, 1, 28, 28) -> logits (N, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, kernel_size=3, stride=1, padding=1)  # (2, 28, 28)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)                                       # (2, 14, 14)
        self.conv2 = nn.Conv2d(2, 4, kernel_size=3, stride=1, padding=1)  # (4, 14, 14)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)                                       # (4, 7, 7)
        self.conv3 = nn.Conv2d(4, 8, kernel_size=3, stride=1, padding=0)  # (8, 5, 5)
        self.relu3 = nn.ReLU()
        self.fc = nn.Linear(200, 1)
        self._weight_init()

    def _weight_init(self) -> None:
        """Kaiming-uniform weights and zero biases for every convolution and linear layer."""
        for layer in self.children():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.relu3(self.conv3(x))
        return self.fc(x.flatten(1))


class GNet(nn.Module):
    """The course's generator: z (N, zdim) -> images (N, 1, 28, 28) in [0, 1]."""

    def __init__(self, zdim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(zdim, 1568)                                    # viewed as (32, 7, 7)
        self.lrelu1 = nn.LeakyReLU(0.2)
        self.up1 = nn.Upsample(scale_factor=2)                             # (32, 14, 14)
        self.conv1 = nn.Conv2d(32, 16, kernel_size=3, stride=1, padding=1)  # (16, 14, 14)
        self.lrelu2 = nn.LeakyReLU(0.2)
        self.up2 = nn.Upsample(scale_factor=2)                             # (16, 28, 28)
        self.conv2 = nn.Conv2d(16, 8, kernel_size=3, stride=1, padding=1)  # (8, 28, 28)
        self.lrelu3 = nn.LeakyReLU(0.2)
        self.conv3 = nn.Conv2d(8, 1, kernel_size=3, stride=1, padding=1)   # (1, 28, 28)
        self.sigmoid = nn.Sigmoid()
        self._weight_init()

    _weight_init = DNet._weight_init

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.lrelu1(self.fc(z)).view(-1, 32, 7, 7)
        x = self.lrelu2(self.conv1(self.up1(x)))
        x = self.lrelu3(self.conv2(self.up2(x)))
        return self.sigmoid(self.conv3(x))


# ----------------------------------------------------------------------------------------------------
# Losses, on the discriminator's logits (BCE-with-logits is the numerically safe form of log sigmoid)


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """-(mean log D(x) + mean log(1 - D(G(z)))): BCE with real -> 1 plus BCE with fake -> 0; logits (B, 1)."""
    return (F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
            + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake)))


def generator_loss(logits_fake: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """The generator's loss on D's logits for G(z), (B, 1) -> a scalar.

    nonsaturating: mean -log D(G(z)) (BCE with fake -> 1); its gradient -(1 - D(G(z))) per logit is largest
      where D rejects the fake. minimax: mean log(1 - D(G(z))) (minus BCE with fake -> 0); its gradient
      -D(G(z)) per logit vanishes there, so G learns little while D wins.
    """
    if kind == "minimax":
        return -F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
    return F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake))


class GAN:
    """The course's GAN: a discriminator `disc`, a generator `gen`, their losses and the course's training."""

    def __init__(self, zdim: int = 64) -> None:
        """zdim: dimension of the noise z ~ U[-1, 1]^zdim."""
        torch.manual_seed(2)
        self._dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self._zdim = zdim
        self.disc = DNet().to(self._dev)
        self.gen = GNet(self._zdim).to(self._dev)

    def _get_loss_d(self, batch_size: int, batch_data: torch.Tensor, z: torch.Tensor,
                    fake: torch.Tensor | None = None) -> torch.Tensor:
        """The discriminator's loss on real images batch_data (B, 1, 28, 28) and fakes G(z), z (B, zdim).

        batch_size is the course's argument (B); the labels follow the logits' shapes. G(z) is detached:
        this loss trains D only. fake: G(z) when the caller has computed it already (the fast training loop
        does, once per batch).
        """
        fake = self.gen(z) if fake is None else fake
        return discriminator_loss(self.disc(batch_data), self.disc(fake.detach()))

    def _get_loss_g(self, batch_size: int, z: torch.Tensor, fake: torch.Tensor | None = None) -> torch.Tensor:
        """The generator's non-saturating loss -log D(G(z)) for z (B, zdim); fake: G(z) when the caller has
        computed it already."""
        return generator_loss(self.disc(self.gen(z) if fake is None else fake))

    def train(self, iter_d: int = 1, iter_g: int = 1, n_epochs: int = 100, batch_size: int = 256,
              lr: float = 0.0002) -> None:
        """The course's training: the MNIST training images (downloaded into ./data), shuffled batches of
        batch_size, z ~ U[-1, 1]; per batch iter_d Adam steps of D on _get_loss_d, then iter_g of G on
        _get_loss_g; 64 samples saved as test_{epoch}.png every 10 epochs. (The command line trains with
        `fit`, the same steps about twice as fast, and writes figures and metrics.)"""
        f_name = "train-images-idx3-ubyte.gz"
        download(BASE_URL + f_name, f_name)
        train_data = GANDataset(f"./data/{f_name}", self._dev, transform=transforms.Normalize((0.0,), (255.0,)))
        train_loader = DataLoader(train_data, batch_size=batch_size, shuffle=True, drop_last=True)
        dopt = torch.optim.Adam(self.disc.parameters(), lr=lr)
        gopt = torch.optim.Adam(self.gen.parameters(), lr=lr)
        for epoch in tqdm(range(n_epochs), desc="GAN", unit="epoch"):
            for batch_idx, data in enumerate(train_loader):
                z = 2 * torch.rand(data.size(0), self._zdim, device=self._dev) - 1
                if batch_idx == 0 and epoch % 10 == 0:
                    with torch.no_grad():
                        save_image(self.gen(z)[:64].cpu(), f"test_{epoch}.png", nrow=8, normalize=True)
                for _ in range(iter_d):
                    loss_d = self._get_loss_d(batch_size, data, z)
                    dopt.zero_grad()
                    loss_d.backward()
                    dopt.step()
                for _ in range(iter_g):
                    loss_g = self._get_loss_g(batch_size, z)
                    gopt.zero_grad()
                    loss_g.backward()
                    gopt.step()
            tqdm.write(f"E: {epoch}; DLoss: {loss_d.item()}; GLoss: {loss_g.item()}")


def main() -> None:
    """The course's main(): GAN() trained by its own train() in the working folder, both networks saved."""
    parser = argparse.ArgumentParser(description="The course's GAN on MNIST (Spring 2024, question 4).")
    parser.add_argument("--n_epochs", type=int, default=100, help="Epochs of training.")
    parser.add_argument("--batch_size", type=int, default=256, help="Images per batch.")
    parser.add_argument("--lr", type=float, default=0.0002, help="Adam's learning rate.")
    parser.add_argument("--iter_d", type=int, default=1, help="Discriminator steps per batch.")
    parser.add_argument("--iter_g", type=int, default=1, help="Generator steps per batch.")
    args = parser.parse_args()
    gan = GAN()
    gan.train(args.iter_d, args.iter_g, args.n_epochs, args.batch_size, args.lr)
    torch.save(gan.gen.state_dict(), "gen.pt")
    torch.save(gan.disc.state_dict(), "disc.pt")


# ----------------------------------------------------------------------------------------------------
# Not part of the homework: a DCGAN pair for 28x28 digits (strided and transposed convolutions, BatchNorm)


def _dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's initialization: weights ~ N(0, 0.02); BatchNorm scales ~ N(1, 0.02); biases 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(layer.weight, 1.0, 0.02)
        if getattr(layer, "bias", None) is not None:
            nn.init.zeros_(layer.bias)


class DCGANDiscriminator(nn.Module):
    """images (N, 1, 28, 28) -> logits (N, 1): two stride-2 convolutions with LeakyReLU(0.2), then linear."""

    def __init__(self, width: int = DCGAN_WIDTH) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (w, 14, 14)
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2),                                                # (2w, 7, 7)
            nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1))
        _dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DCGANGenerator(nn.Module):
    """z (N, zdim) -> images (N, 1, 28, 28) in [0, 1]: linear to (2w, 7, 7), two stride-2 transposed convs."""

    def __init__(self, zdim: int, width: int = DCGAN_WIDTH) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(zdim, 2 * width * 7 * 7, bias=False), nn.BatchNorm1d(2 * width * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (2 * width, 7, 7)),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(),                                                        # (w, 14, 14)
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1), nn.Sigmoid())  # (1, 28, 28)
        _dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


# ----------------------------------------------------------------------------------------------------
# Not part of the homework: the GAN the command line trains (the course's, with this project's options)


class ConfiguredGAN(GAN):
    """The course's GAN with a choice of networks (arch), of the generator's loss, of the device and the seed.

    Its weights are channels-last (NHWC), which lets oneDNN/cuDNN run the convolutions without reordering.
    """

    def __init__(self, zdim: int = 64, arch: str = "course", loss: str = "nonsaturating",
                 device: torch.device | str = "auto", seed: int = 2) -> None:
        """zdim: noise dimension; arch: 'course' or 'dcgan'; loss: the generator's ('nonsaturating' or
        'minimax'); seed: torch's seed before the networks are initialized (the course's 2)."""
        require(arch in ARCHS, f"unknown architecture '{arch}': use {' or '.join(ARCHS)}")
        require(loss in LOSSES, f"unknown generator loss '{loss}': use {' or '.join(LOSSES)}")
        seed_everything(seed)
        self._dev = pick_device(device) if isinstance(device, str) else device
        self._zdim, self.arch, self.loss, self.seed = zdim, arch, loss, seed
        layout = {"device": self._dev, "memory_format": torch.channels_last}
        self.disc = (DNet() if arch == "course" else DCGANDiscriminator()).to(**layout)
        self.gen = (GNet(zdim) if arch == "course" else DCGANGenerator(zdim)).to(**layout)

    def _get_loss_g(self, batch_size: int, z: torch.Tensor, fake: torch.Tensor | None = None) -> torch.Tensor:
        """The generator's loss of the chosen kind (non-saturating, or minimax) for z (B, zdim)."""
        return generator_loss(self.disc(self.gen(z) if fake is None else fake), self.loss)

    def sample_z(self, n: int) -> torch.Tensor:
        """n noise vectors z ~ U[-1, 1]^zdim, (n, zdim)."""
        return 2 * torch.rand(n, self._zdim, device=self._dev) - 1

    @torch.no_grad()
    def generate(self, z: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
        """G(z) in eval mode (BatchNorm's running statistics): z (N, zdim) -> images (N, 1, 28, 28)."""
        self.gen.eval()
        images = torch.cat([self.gen(part) for part in z.split(chunk)])
        self.gen.train()
        return images


# ----------------------------------------------------------------------------------------------------
# Training


def make_optimizers(gan: ConfiguredGAN, lr: float) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for G and for D (fused into one kernel per step on CPU and CUDA)."""
    fused = gan._dev.type in ("cpu", "cuda")
    return tuple(torch.optim.Adam(net.parameters(), lr=lr, betas=ADAM_BETAS[gan.arch], fused=fused)
                 for net in (gan.gen, gan.disc))


def train_epoch(gan: ConfiguredGAN, opt_gen: torch.optim.Optimizer, opt_disc: torch.optim.Optimizer,
                images: torch.Tensor, cfg: Config) -> torch.Tensor:
    """One pass over images (N, 1, 28, 28) in shuffled full batches (the course drops the last partial one).

    Per batch, as in the course: z ~ U[-1, 1]; iter_d steps of D on `_get_loss_d` of the batch and G(z); iter_g
    steps of G on `_get_loss_g` of the same z. G(z) is computed once: the D steps do not change G, so the first
    G step reuses it (the course recomputes it, and also back-propagates D's loss through G only to discard
    those gradients). Returns per-iteration rows (loss_d, loss_g), (N // batch_size, 2).
    """
    n_batches, size = len(images) // cfg.batch_size, cfg.batch_size
    order = torch.randperm(len(images), device=images.device)[:n_batches * size]
    losses = torch.empty(n_batches, 2, device=images.device)
    for i, batch in enumerate(order.view(n_batches, size)):
        real, z = images[batch], gan.sample_z(size)
        fake = gan.gen(z)
        for _ in range(cfg.iter_d):
            loss_d = gan._get_loss_d(size, real, z, fake)
            opt_disc.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_disc.step()
        gan.disc.requires_grad_(False)  # the G step needs gradients through D, not D's own
        for step in range(cfg.iter_g):
            if step:
                fake = gan.gen(z)  # G changed in the previous step
            loss_g = gan._get_loss_g(size, z, fake)
            opt_gen.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_gen.step()
        gan.disc.requires_grad_(True)
        losses[i] = torch.stack([loss_d, loss_g]).detach()
    return losses


@torch.no_grad()
def mean_d_outputs(gan: ConfiguredGAN, real: torch.Tensor, z: torch.Tensor) -> tuple[float, float]:
    """What D believes: its mean output D(x) on real images (N, 1, 28, 28) and D(G(z)) on G's images of z
    (N, zdim), both networks in eval mode."""
    gan.disc.eval()
    d_real, d_fake = (torch.sigmoid(gan.disc(images)).mean().item() for images in (real, gan.generate(z)))
    gan.disc.train()
    return d_real, d_fake


def training_state(gan: ConfiguredGAN, opt_gen: torch.optim.Optimizer, opt_disc: torch.optim.Optimizer, cfg: Config,
                   epoch: int, history: dict, train_seconds: float, fixed_z: torch.Tensor, frames: dict) -> dict:
    """Everything a checkpoint holds: both networks and optimizers, settings, progress, RNG states, the fixed
    noise and the GIF's frames (uint8 grids by epoch)."""
    return {"gen": gan.gen.state_dict(), "disc": gan.disc.state_dict(), "opt_gen": opt_gen.state_dict(),
            "opt_disc": opt_disc.state_dict(), "config": asdict(cfg), "epoch": epoch, "history": history,
            "train_seconds": train_seconds, "rng": get_rng_state(), "fixed_z": fixed_z, "frames": frames}


def fit(gan: ConfiguredGAN, opt_gen: torch.optim.Optimizer, opt_disc: torch.optim.Optimizer, images: torch.Tensor,
        cfg: Config, checkpointer: Checkpointer, state: dict, out_dir: Path) -> dict:
    """Train from state['epoch'] to cfg.epochs, writing the fixed-noise grids; returns the final state."""
    epoch, history, seconds = state["epoch"], state["history"], state["train_seconds"]
    fixed_z, frames = state["fixed_z"], state["frames"]

    def record_samples(done: int) -> None:
        grid = gan.generate(fixed_z)
        if done % GRID_EVERY == 0 or done == cfg.epochs:
            plot_samples(grid, out_dir / f"test_{done}.png", f"Fixed-noise samples after {done} epochs ({cfg.arch})")
        if done <= GRID_EVERY or done % GRID_EVERY == 0 or done == cfg.epochs:
            frames[done] = (grid * 255).round().to(torch.uint8).cpu()

    if epoch == 0:
        record_samples(0)
    # D's outputs are followed on the same images every epoch: the first real digits and noise of a fixed seed
    probe_real = images[:D_PROBE]
    probe_z = (2 * torch.rand(D_PROBE, cfg.zdim, generator=torch.Generator().manual_seed(0)) - 1).to(images.device)
    bar = progress(range(epoch, cfg.epochs), initial=epoch, total=cfg.epochs, desc=f"GAN ({cfg.arch})",
                   unit="epoch")
    with checkpointer.guard():
        for epoch in bar:
            tic = time.perf_counter()
            loss_d, loss_g = train_epoch(gan, opt_gen, opt_disc, images, cfg).T.tolist()
            seconds += time.perf_counter() - tic
            checkpointer.check_finite(sum(loss_d) + sum(loss_g), epoch)
            d_real, d_fake = mean_d_outputs(gan, probe_real, probe_z)
            for key, values in (("loss_d", loss_d), ("loss_g", loss_g), ("d_real", [d_real]), ("d_fake", [d_fake])):
                history.setdefault(key, []).extend(values)
            record_samples(epoch + 1)
            checkpointer.snapshot(training_state(gan, opt_gen, opt_disc, cfg, epoch + 1, history, seconds, fixed_z,
                                                 frames))
            bar.set_postfix(loss_d=f"{loss_d[-1]:.3f}", loss_g=f"{loss_g[-1]:.3f}",
                            d_real=f"{history['d_real'][-1]:.2f}", d_fake=f"{history['d_fake'][-1]:.2f}")
    checkpointer.save()
    return checkpointer.state


# ----------------------------------------------------------------------------------------------------
# Evaluation


def evaluate(gan: ConfiguredGAN, data: MNIST, n: int = EVAL_SAMPLES, seed: int = 0) -> dict:
    """Score n generated digits with the MNIST judge (hw5_utils.judge_digits) against n real test digits.

    data: grey MNIST, all of it (the judge is trained on its training digits once, then cached).
    """
    judge = load_judge(data)
    seed_everything(seed)
    metrics = judge_digits(judge, gan.generate(gan.sample_z(n)), data, n)
    metrics["judge_test_accuracy"] = judge.test_accuracy
    return metrics


# ----------------------------------------------------------------------------------------------------
# Figures


def plot_samples(images: torch.Tensor, path: Path, title: str) -> Path:
    """Images (N, 1, 28, 28) as a near-square grid (empty cells blank) with a title; saves a PNG."""
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    cells = torch.ones(rows * cols, 784)
    cells[:len(images)] = images.reshape(len(images), 784).cpu()
    return plot_image_grid(cells.view(rows, cols, 784), path, title, cell_inches=0.45)


def plot_losses(history: dict, iters_per_epoch: int, path: Path, loss: str = "nonsaturating") -> Path:
    """D and G losses per iteration (thin) and their epoch means (thick, a dot per epoch), against epochs."""
    fig, ax = plt.subplots(figsize=(7, 4))
    g_loss = "log(1 - D(G(z)))" if loss == "minimax" else "-log D(G(z))"
    for key, label, color in (("loss_d", "D loss (BCE)", "tab:blue"), ("loss_g", f"G loss {g_loss}", "tab:orange")):
        values = torch.tensor(history.get(key, []))
        ax.plot(torch.arange(1, len(values) + 1) / iters_per_epoch, values, color=color, alpha=0.25, lw=0.6)
        means = values[:len(values) // iters_per_epoch * iters_per_epoch].view(-1, iters_per_epoch).mean(1)
        ax.plot(torch.arange(1, len(means) + 1), means, color=color, lw=2, marker="o", ms=3,
                label=f"{label}, epoch mean")
    return _save_epoch_plot(fig, ax, "loss", "GAN losses per iteration", path)


def plot_d_outputs(history: dict, path: Path) -> Path:
    """Mean D(x) on real and D(G(z)) on generated images after each epoch (the same D_PROBE images each time);
    0.5 is D unable to tell them apart."""
    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = range(1, len(history.get("d_real", [])) + 1)
    ax.plot(epochs, history.get("d_real", []), marker="o", ms=3, label="mean D(x), real images")
    ax.plot(epochs, history.get("d_fake", []), marker="o", ms=3, label="mean D(G(z)), generated images")
    ax.axhline(0.5, color="grey", ls="--", lw=1, label="0.5: D cannot tell")
    ax.set_ylim(0, 1)
    return _save_epoch_plot(fig, ax, "discriminator output", "What the discriminator believes, after each epoch", path)


def _save_epoch_plot(fig: plt.Figure, ax: plt.Axes, ylabel: str, title: str, path: Path) -> Path:
    """Label a plot against epochs (grid, legend) and save it as a PNG."""
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5 on short runs
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def save_progress_gif(frames: dict, path: Path, seconds_per_frame: float = 0.5) -> Path:
    """The fixed-noise grids (uint8 (64, 1, 28, 28) by epoch) as an animated GIF, each captioned 'epoch k'.

    16 grey levels (multiples of 17) keep the file small; digits look the same.
    """
    images = []
    for epoch, grid in sorted(frames.items()):
        pixels = ((make_grid(grid, nrow=8, padding=2, pad_value=255)[0] / 17).round() * 17).to(torch.uint8).numpy()
        frame = Image.new("L", (pixels.shape[1], pixels.shape[0] + 14), 255)
        frame.paste(Image.fromarray(pixels), (0, 14))
        ImageDraw.Draw(frame).text((2, 1), f"epoch {epoch}", fill=0)
        images.append(frame)
    return save_gif([np.asarray(image) for image in images], path, fps=1 / seconds_per_frame)


def make_figures(state: dict, images: torch.Tensor, cfg: Config, out_dir: Path) -> list[Path]:
    """The real-data grid, loss curves, D outputs and progression GIF (the fixed-noise grids come from fit)."""
    generator = torch.Generator().manual_seed(cfg.seed)
    real = images[torch.randperm(len(images), generator=generator)[:N_FIXED].to(images.device)]
    iters_per_epoch = max(1, len(images) // cfg.batch_size)
    return [plot_samples(real, out_dir / "real.png", "Real MNIST training digits"),
            plot_losses(state["history"], iters_per_epoch, out_dir / "losses.png", cfg.loss),
            plot_d_outputs(state["history"], out_dir / "d_outputs.png"),
            save_progress_gif(state["frames"], out_dir / "progress.gif")]


# ----------------------------------------------------------------------------------------------------
# Plain functions behind the commands (the tests call these too)


def run_in(out_dir: Path | str) -> Run:
    return Run("hw5_gan.py", out_dir, CHECKPOINT, CHECKPOINT_KEYS, RESUME_KEYS, Config, "epoch")


def restore(out_dir: Path, device: str = "auto") -> tuple[ConfiguredGAN, dict]:
    """The GAN saved in out_dir/gan.pt and the whole checkpoint."""
    dev = pick_device(device)
    path = Path(out_dir) / CHECKPOINT
    state, cfg = run_in(out_dir).load()
    gan = ConfiguredGAN(cfg.zdim, cfg.arch, cfg.loss, dev, cfg.seed)
    load_weights(gan.gen, state["gen"], path)
    load_weights(gan.disc, state["disc"], path)
    return gan, state


def evaluate_and_save(gan: ConfiguredGAN, state: dict, out_dir: Path, data: Path | str | None = None,
                      n: int = EVAL_SAMPLES) -> dict:
    """Score a trained GAN (and the same networks untrained) with the judge; write out_dir/metrics.json."""
    cfg = state["config"]
    mnist = read_mnist(data or cfg["data"], 0, "none", gan._dev)
    metrics = evaluate(gan, mnist, n)
    untrained = ConfiguredGAN(gan._zdim, gan.arch, gan.loss, gan._dev, gan.seed)
    metrics["untrained_frechet_distance"] = evaluate(untrained, mnist, n)["frechet_distance"]
    metrics.update(epochs=state.get("epoch", 0), arch=gan.arch, loss=gan.loss,
                   train_seconds=round(state.get("train_seconds", 0.0), 2), zdim=gan._zdim,
                   batch_size=cfg["batch_size"], lr=cfg["lr"], data=mnist.source)
    write_metrics(metrics, Path(out_dir) / "metrics.json")
    note(f"Fréchet distance {metrics['frechet_distance']:.1f} (untrained {metrics['untrained_frechet_distance']:.1f}, "
         f"real digits {metrics['floor_frechet_distance']:.1f}); {metrics['classes_covered']}/10 digits covered; "
         f"mean judge confidence {metrics['mean_confidence']:.2f}")
    return metrics


def run_training(cfg: Config, out_dir: Path, device: str | torch.device = "auto", resume: bool = False,
                 ignored_on_resume: Sequence[str] = (), overwrite: bool = False) -> dict:
    """Train (or resume) a GAN, then write out_dir/gan.pt, the figures and metrics.json; returns the metrics.

    Everything the user gave is checked before anything in out_dir is written.
    """
    run = run_in(out_dir)
    cfg, saved = run.begin(cfg, resume, overwrite, epochs=cfg.epochs, data=cfg.data)
    dev = pick_device(device) if isinstance(device, str) else device
    require(cfg.arch != "dcgan" or cfg.batch_size >= 2,
            "--arch dcgan needs --batch-size of at least 2 (its batch normalization averages over the batch)")
    data = read_mnist(cfg.data, cfg.train_size, "none", dev)
    cfg.data = data.source
    images = data.train_images.view(-1, 1, 28, 28)
    require(cfg.batch_size <= len(images), f"--batch-size {cfg.batch_size} is larger than the {len(images)} "
                                           f"training images: lower it or raise --train-size")
    gan = ConfiguredGAN(cfg.zdim, cfg.arch, cfg.loss, dev, cfg.seed)
    state = {"epoch": 0, "history": {}, "train_seconds": 0.0, "fixed_z": gan.sample_z(N_FIXED), "frames": {}}
    opt_gen, opt_disc = make_optimizers(gan, cfg.lr)
    if saved is not None:
        state = {**run.resume(saved, {"gen": gan.gen, "disc": gan.disc}, {"opt_gen": opt_gen, "opt_disc": opt_disc},
                              cfg.epochs, ignored_on_resume), "fixed_z": saved["fixed_z"].to(dev)}
    note(f"training the {cfg.arch} GAN ({cfg.loss} G loss) on {len(images)} images from {data.source}, "
         f"device {dev}, out-dir {run.out_dir}")
    checkpointer = run.checkpointer(cfg, saved)
    state = fit(gan, opt_gen, opt_disc, images, cfg, checkpointer, state, run.out_dir)
    with checkpointer.guard():  # Ctrl-C from here on: the printed resume command redoes the figures and metrics
        figures = make_figures(state, images, cfg, run.out_dir)
        note(f"figures: {', '.join(str(path) for path in figures)} and the test_<epoch>.png grids")
        return evaluate_and_save(gan, state, run.out_dir, cfg.data)


# ----------------------------------------------------------------------------------------------------
# Command line

app = App(help="Generative adversarial network on MNIST (hw5 GAN question).")
OUT_DIR = typer.Option(Path("outputs/gan"), help="Folder for gan.pt, the figures and metrics.json.")
DATA = typer.Option(None, help=MNIST_HELP)


@app.command()
@config_options(Config, length="epochs")
def train(ctx: typer.Context, settings: dict, out_dir: Path = OUT_DIR, device: str = DEVICE, resume: bool = RESUME,
          overwrite: bool = OVERWRITE) -> None:
    """Train the GAN, then save gan.pt, the figures and metrics.json in --out-dir."""
    run_training(run_in(out_dir).settings(settings, resume=resume), out_dir, device, resume,
                 ignored_on_resume=typed_options(ctx, but=OPTIONS_RESUME_USES), overwrite=overwrite)


@app.command()
def sample(n: int = typer.Option(64, min=1, max=10000, help="How many digits to draw."), out_dir: Path = OUT_DIR,
           seed: int = 0, device: str = DEVICE) -> None:
    """Draw n new digits from --out-dir/gan.pt into --out-dir/samples.png."""
    gan, state = restore(out_dir, device)
    seed_everything(seed)
    path = plot_samples(gan.generate(gan.sample_z(n)), Path(out_dir) / "samples.png",
                        f"{n} samples after {state.get('epoch', 0)} epochs ({gan.arch})")
    note(f"samples: {path}")


@app.command("evaluate")
def evaluate_command(out_dir: Path = OUT_DIR, data: Optional[Path] = DATA, device: str = DEVICE,
                     n: int = typer.Option(EVAL_SAMPLES, min=500, help="Generated digits to score (from fewer, "
                                                                       "the Fréchet distance of 128-d features is "
                                                                       "mostly small-sample bias).")) -> None:
    """Score --out-dir/gan.pt's digits with the MNIST judge into metrics.json."""
    gan, state = restore(out_dir, device)
    evaluate_and_save(gan, state, out_dir, data, n)


if __name__ == "__main__":
    app()
