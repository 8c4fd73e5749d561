"""Shared code of the hw5 scripts (hw5_vae.py, hw5_diffusion.py, hw5_gan.py), by audience, top to bottom:

1. The course's helpers: every name the course's starter files import (`load_mnist`, `concat_images`,
   `GANDataset`, `create_samples`, ...), with the course's signatures and results, working offline.
2. Image grids and figures the scripts draw.
3. MNIST as the trainers load it (`read_mnist`: a .npz or torchvision folder, binarized as asked).
4. The MNIST judge: a cached digit classifier that scores generated digits (Fréchet distance, class coverage).
5. Run plumbing for the command lines: one-line errors, seeds and devices, atomic files, checkpoints, Ctrl-C.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import gzip
import hashlib
import inspect
import json
import math
import os
import random
import shlex
import shutil
import struct
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, NamedTuple, Optional, Sequence, get_args, get_type_hints

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.data
import typer
from torch import nn
from tqdm import tqdm
from typer.core import TyperGroup

try:  # click's UsageError: newer typer versions ship their own copy of click
    from typer._click.exceptions import UsageError
except ImportError:
    from click.exceptions import UsageError


# ====================================================================================================
# The course's helpers: the names both editions' starter files import from hw5_utils, with the course's
# signatures and results. The course's download host no longer serves MNIST: `download` falls back to
# torchvision's mirrors and, offline, to the local copy (`offline_mnist`).

BASE_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's MNIST mirror
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
               "t10k-labels-idx1-ubyte.gz")
MNIST_ENV = "HW5_MNIST"  # a local MNIST (.npz or torchvision root) that replaces the download
SHARED_MNIST = Path(__file__).resolve().parent.parent / "shared" / "data" / "mnist10k.npz"


def download(url: str, filename: str) -> None:
    """The course's download: save `url` as ./data/<filename>, unless that file is there already.

    When `url` fails, torchvision's MNIST mirrors are tried for the same file name; offline, the file is written
    from the local MNIST copy (`offline_mnist`). With none of these, a one-line `UserError` says where to put it.
    """
    target = Path("data") / filename
    if target.is_file():
        return
    from torchvision.datasets import MNIST as TorchvisionMNIST
    from torchvision.datasets.utils import download_url

    errors = []
    for source in dict.fromkeys([url] + [mirror + filename for mirror in TorchvisionMNIST.mirrors]):
        try:
            with contextlib.redirect_stdout(sys.stderr):  # torchvision prints "Downloading ..." to stdout
                download_url(source, "data", filename)
            return
        except Exception as error:  # URLError, HTTPError, a timeout, ...
            errors.append(f"{source}: {error}")
            target.unlink(missing_ok=True)  # no half-written file
    local = offline_mnist()
    require(local is not None and filename in MNIST_FILES,
            f"cannot download {filename} ({errors[-1]}): put the file in {Path('data').absolute()}, or set "
            f"{MNIST_ENV} to a Keras-layout .npz such as ../shared/data/mnist10k.npz")
    images, labels = course_arrays(local)[0 if filename.startswith("train") else 2:][:2]
    note(f"offline: writing {target} from {local} ({len(images)} digits)")
    write_idx(images if "images" in filename else labels, target)


def offline_mnist() -> Path | None:
    """The local MNIST used instead of a download: $HW5_MNIST if set, else ../shared/data/mnist10k.npz if it
    exists, else None."""
    if os.environ.get(MNIST_ENV):
        return Path(os.environ[MNIST_ENV])
    return SHARED_MNIST if SHARED_MNIST.exists() else None


def course_arrays(source: Path) -> tuple[np.ndarray, ...]:
    """A local MNIST (.npz or torchvision root) as the course's `mnist()` returns it: uint8 train_images
    (N, 28, 28), train_labels (N,), test_images, test_labels.

    A file of fewer than 10000 training digits (the 8000/2000 split of the shared 10k file) gives all its digits
    as both sets: the course's code takes the first 10000 training images.
    """
    x_train, y_train, x_test, y_test = _read_source(source)
    if len(x_train) < 10000:
        x_train = x_test = np.concatenate([x_train, x_test])
        y_train = y_test = np.concatenate([y_train, y_test])
    images = lambda x: (x if x.dtype == np.uint8 else (x * 255).round()).astype(np.uint8).reshape(-1, 28, 28)  # noqa: E731
    return images(x_train), y_train.astype(np.uint8), images(x_test), y_test.astype(np.uint8)


def write_idx(array: np.ndarray, path: Path) -> None:
    """Write uint8 images (N, 28, 28) or labels (N,) as a gzipped IDX file, MNIST's own format (quickly: level 1)."""
    header = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    _atomic_write(path, lambda tmp: tmp.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), 1)))


def _read_idx(path: Path) -> np.ndarray:
    """A gzipped IDX file (MNIST's format) -> its uint8 array: images (N, 28, 28) or labels (N,)."""
    try:
        data = gzip.decompress(Path(path).read_bytes())
        ndim = data[3]
        shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
        return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)
    except (OSError, EOFError, IndexError, ValueError, struct.error) as error:
        raise UserError(f"cannot read {path} ({type(error).__name__}): delete it and download it again") from None


def mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The course's MNIST: uint8 train_images (60000, 28, 28), train_labels (60000,), test_images (10000, 28, 28),
    test_labels (10000,), from the four files in ./data/ (downloaded first). With $HW5_MNIST set, read from there
    instead (see `course_arrays`)."""
    if os.environ.get(MNIST_ENV):
        return course_arrays(Path(os.environ[MNIST_ENV]))
    for filename in MNIST_FILES:
        download(BASE_URL + filename, filename)
    return tuple(_read_idx(Path("data") / filename) for filename in MNIST_FILES)


def load_mnist() -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The course's data for the VAE: N_data, train_images, train_labels, test_images, test_labels.

    N_data: the size of the training set `mnist()` returned; train_images: its first 10000, (10000, 784) float32,
    scaled to [0, 1] and rounded to {0, 1}; train_labels: (10000, 10) float32 one-hot; test_images: the first 10000
    test images alike; test_labels (10000, 10) one-hot int64 (the course converts only the training labels to float).
    """
    train_images, train_labels, test_images, test_labels = mnist()
    binary = lambda x: torch.from_numpy(x.reshape(len(x), 784) / 255.0).round().float()  # noqa: E731
    one_hot = lambda y: F.one_hot(torch.from_numpy(y.astype(np.int64)), 10)  # noqa: E731
    return (len(train_images), binary(train_images[:10000]), one_hot(train_labels[:10000]).float(),
            binary(test_images[:10000]), one_hot(test_labels[:10000]))


def batch_indices(iter: int, num_batches: int, batch_size: int) -> slice:  # noqa: A002 - the course's name
    """The course's minibatch slice: batch `iter % num_batches` of size `batch_size`."""
    idx = iter % num_batches
    return slice(idx * batch_size, (idx + 1) * batch_size)


def array_to_image(array: Any) -> np.ndarray:
    """A 784-vector (tensor, array or list) -> a (28, 28) numpy image."""
    return np.reshape(np.asarray(torch.as_tensor(array).detach().cpu()), (28, 28))


def concat_images(images: Any, row: int, col: int, padding: int = 3) -> np.ndarray:
    """The course's tiling: the first row*col images (a tensor, an array or a list of (784,) or (28, 28) images) in
    one numpy array (28*row + (row-1)*padding, 28*col + (col-1)*padding), zero between them.

    As in the course, the images fill the grid column by column (image i + j*row in row i, column j), images past
    row*col are left out, and fewer than row*col are an error.
    """
    tiles = [array_to_image(image) for image in images[:row * col]]
    if len(tiles) < row * col:
        raise ValueError(f"concat_images: {len(tiles)} images for a {row} x {col} grid, which needs {row * col}")
    framed = np.pad(np.stack(tiles).astype(np.float64).reshape(col, row, 28, 28),
                    ((0, 0), (0, 0), (0, padding), (0, padding)))  # each image with its gap below and to its right
    grid = framed.transpose(1, 2, 0, 3).reshape(row * (28 + padding), col * (28 + padding))
    return grid[:grid.shape[0] - padding, :grid.shape[1] - padding]


class GANDataset(torch.utils.data.Dataset):
    """The course's GAN data: the images of the gzipped IDX file `data_f` as float tensors (N, 1, 28, 28) on
    `dev`, values 0-255 before `transform` (applied to each image, as in the course); item idx -> (1, 28, 28)."""

    def __init__(self, data_f: str | Path, dev: torch.device | str, transform: Callable | None = None) -> None:
        self.transform, self._dev = transform, dev
        images = torch.from_numpy(_read_idx(Path(data_f)).astype(np.float32)).unsqueeze(1)
        if transform is not None:
            images = torch.stack([transform(image) for image in images])
        self._data = images.to(dev)

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, idx: int) -> torch.Tensor:
        return self._data[idx]


def create_samples(noise: float = 0.01) -> np.ndarray:
    """The Spring-2024 diffusion data: the pixels of "CS446" drawn by OpenCV into a 64 x 128 image, as points
    (x right, y up) centred on their mean and divided by the text's height in pixels (21), plus N(0, noise^2)
    jitter from NumPy's global generator -> float32 (1169, 2), x in about [-2.14, 2.15], y in [-0.49, 0.51]."""
    try:
        import cv2
    except ImportError:
        raise UserError("create_samples draws its text with OpenCV: pip install opencv-python-headless") from None
    image = np.zeros((64, 128), np.uint8)
    cv2.putText(image, "CS446", (17, 45), cv2.FONT_HERSHEY_SIMPLEX, 1, 255, 3)
    rows, cols = np.nonzero(image)
    points = np.stack([cols, -rows], 1).astype(np.float64)
    points = (points - points.mean(0)) / (rows.max() - rows.min())
    return (points + noise * np.random.randn(*points.shape)).astype(np.float32)


def generate_sigmas(sigma_begin: float, sigma_end: float, num_levels: int) -> np.ndarray:
    """The Spring-2024 noise levels: num_levels values, geometric from sigma_begin to sigma_end (numpy float64)."""
    return np.exp(np.linspace(np.log(sigma_begin), np.log(sigma_end), num_levels))


@torch.no_grad()
def plot_score(scorenet: Callable, data: Any, path: str | Path | None = None, sigma: float = 0.1) -> None:
    """The Spring-2024 score plot: arrows of scorenet(grid, sigma) on x in [-2.5, 2.5], y in [-0.6, 0.6] over a
    scatter of data (N, 2). Shown with plt.show(), as in the course, or saved to `path` when given."""
    xs, ys = np.meshgrid(np.linspace(-2.5, 2.5, 60), np.linspace(-0.6, 0.6, 16))
    grid = torch.tensor(np.stack([xs.ravel(), ys.ravel()], 1), dtype=torch.float32)
    scores = torch.as_tensor(scorenet(grid.to(device_of(scorenet)), sigma))
    scores = scores.detach().cpu().double()
    length = scores.norm(dim=1, keepdim=True)
    arrows = scores / length.clamp_min(1e-12) * torch.log1p(length)  # direction, and a length that grows slowly
    fig, ax = plt.subplots(figsize=(14, 4.5))
    ax.scatter(*np.asarray(torch.as_tensor(data).detach().cpu()).T, s=12, alpha=0.3, color="tab:red", label="data")
    ax.quiver(*grid.T, *arrows.T, angles="xy", width=0.0015, color="black")
    ax.set(xlim=(-2.5, 2.5), ylim=(-0.6, 0.6), aspect="equal", xlabel="x1", ylabel="x2",
           title=f"Score s(x, σ = {sigma:g}): direction, length log(1 + ‖s‖)")
    ax.legend(loc="upper right")
    if path is None:
        plt.show()
    else:
        save_figure(fig, Path(path))



# ====================================================================================================
# Image grids and figures


def plot_image_grid(images: torch.Tensor, path: Path, title: str, col_labels: list[str] | None = None,
                    row_labels: list[str] | None = None, xlabel: str = "", ylabel: str = "",
                    cell_inches: float = 0.45) -> Path:
    """Draw images (rows, cols, 784) or (rows, cols, 28, 28) in [0, 1] as one labelled grid; save a PNG.

    Column labels go on top, row labels on the left; empty labels hide the ticks.
    """
    from torchvision.utils import make_grid

    rows, cols = images.shape[:2]
    pad = 2
    grid = make_grid(images.detach().float().cpu().reshape(rows * cols, 1, 28, 28), nrow=cols, padding=pad,
                     pad_value=1.0)[0]
    fig, ax = plt.subplots(figsize=(cols * cell_inches + 1.4, rows * cell_inches + 1.0))
    ax.imshow(grid.numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    centers = lambda n: [pad + 14 + k * (28 + pad) for k in range(n)]  # noqa: E731
    ax.set_xticks(centers(cols) if col_labels else [], col_labels or [])
    ax.set_yticks(centers(rows) if row_labels else [], row_labels or [])
    ax.xaxis.set_ticks_position("top")
    ax.xaxis.set_label_position("top")
    ax.tick_params(length=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, pad=12)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return save_figure(fig, path)



def save_figure(fig: plt.Figure, path: Path, dpi: int = 100) -> Path:
    """Save a matplotlib figure as a PNG (atomically) and close it; returns the path."""
    _atomic_write(path, lambda tmp: fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png",
                                                dpi=dpi, bbox_inches="tight"))
    plt.close(fig)
    return Path(path)



# ====================================================================================================
# MNIST as the trainers load it

BINARIZATIONS = ("dynamic", "round", "none")


class MNIST(NamedTuple):
    """Flattened MNIST: images (N, 784) float32 in [0, 1], labels (N,) int64."""
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str


def default_mnist_source() -> Path:
    """Where MNIST is read from when `--data` is not given.

    $HW5_MNIST if set; else the course's offline copy `../shared/data/mnist10k.npz` when it exists; else
    `data/`, a torchvision root (torchvision downloads MNIST there when online).
    """
    if os.environ.get(MNIST_ENV):
        return Path(os.environ[MNIST_ENV])
    return SHARED_MNIST if SHARED_MNIST.exists() else Path("data")


def _read_npz(path: Path) -> tuple[np.ndarray, ...]:
    """A Keras-layout .npz -> (x_train, y_train, x_test, y_test) as numpy arrays."""
    layout = "a Keras-layout .npz with x_train, y_train, x_test, y_test"
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ("x_train", "y_train", "x_test", "y_test") if key not in archive]
            require(not missing, f"{path} is not {layout} (missing {', '.join(missing)})")
            arrays = tuple(archive[key] for key in ("x_train", "y_train", "x_test", "y_test"))
    except UserError:
        raise
    except Exception as error:
        raise UserError(f"cannot read {path} ({type(error).__name__}): expected {layout}") from None
    x_train, y_train, x_test, y_test = arrays
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        require(x.ndim in (2, 3) and y.ndim >= 1 and len(x) > 0 and x[0].size == 784 and y.size == len(y) == len(x),
                f"{path}: x_{name} must hold 28x28 images, one label each in y_{name} (got {x.shape} and {y.shape})")
        require(y.dtype.kind in "iuf" and np.isin(y, np.arange(10)).all(), f"{path}: y_{name} must hold digits 0-9")
    return arrays


def _read_torchvision(root: Path, origin: str = "") -> tuple[np.ndarray, ...]:
    """A torchvision MNIST root (downloading into it when online) -> (x_train, y_train, x_test, y_test).

    origin: where the root came from, for the error message (e.g. " (from $HW5_MNIST)").
    """
    from torchvision.datasets import MNIST as TorchvisionMNIST

    # the outermost folder torchvision will create, removed again if the download fails
    created = next((folder for folder in (root, root / "MNIST") if not folder.exists()), None)
    try:
        train, test = (TorchvisionMNIST(str(root), train=flag, download=True) for flag in (True, False))
    except Exception as error:
        if created is not None:  # leave no empty folders behind
            shutil.rmtree(created, ignore_errors=True)
        reason = " ".join(str(error).split()) or type(error).__name__  # one line
        reason = reason if len(reason) <= 160 else reason[:160].rsplit(" ", 1)[0] + " …"
        raise UserError(
            f"MNIST is not in {root}/MNIST/raw{origin} and could not be downloaded ({reason}). Put the four MNIST .gz "
            f"files there, or pass --data FILE.npz (a Keras-layout file, e.g. ../shared/data/mnist10k.npz), "
            f"or set {MNIST_ENV}") from None
    return train.data.numpy(), train.targets.numpy(), test.data.numpy(), test.targets.numpy()


def _read_source(path: Path, origin: str = "") -> tuple[np.ndarray, ...]:
    """A Keras-layout .npz, a folder holding the four MNIST .gz files (the course's ./data/) or a torchvision
    root -> (x_train, y_train, x_test, y_test) as numpy arrays. origin: where `path` came from, for messages."""
    if path.is_file() or path.suffix.lower() == ".npz":  # a torchvision root is a folder
        require(path.is_file(), f"no data file {path}{origin}: pass --data with a Keras-layout .npz or a "
                                f"torchvision MNIST folder, or set {MNIST_ENV}")
        return _read_npz(path)
    if all((path / filename).is_file() for filename in MNIST_FILES):
        return tuple(_read_idx(path / filename) for filename in MNIST_FILES)
    return _read_torchvision(path, origin)


def read_mnist(source: Path | str | None = None, train_size: int = 10000, binarize: str = "dynamic",
               device: torch.device | str = "cpu") -> MNIST:
    """Load MNIST as float tensors on `device` (the trainers' loader; the course's is `load_mnist`).

    source: a Keras-layout .npz file, a folder with the four MNIST .gz files, or a torchvision root folder
      (default: `default_mnist_source()`).
    train_size: keep the first `train_size` training images (the course uses 10000); 0 keeps all. A source
      with fewer images gives what it has and says so.
    binarize: 'dynamic' (default) returns grey training images in [0, 1]; the trainer draws a fresh
      Bernoulli image from them every epoch. 'round' rounds them to {0, 1} once (the course's static
      choice). For both, test images are rounded, so test likelihoods are deterministic. 'none' keeps
      every image grey (for the GAN).
    Returns MNIST(train_images (N, 784), train_labels (N,), test_images (M, 784), test_labels (M,), source).
    """
    require(binarize in BINARIZATIONS, f"unknown binarization '{binarize}': use {', '.join(BINARIZATIONS)}")
    require(train_size >= 0, f"--train-size must be >= 0 (0 = all), got {train_size}")
    path = Path(source) if source is not None else default_mnist_source()
    origin = f" (from ${MNIST_ENV})" if source is None and os.environ.get(MNIST_ENV) else ""
    x_train, y_train, x_test, y_test = _read_source(path, origin)
    if train_size > len(x_train):
        note(f"note: {path} has {len(x_train)} training images, fewer than --train-size {train_size}; using all")
    if train_size:
        x_train, y_train = x_train[:train_size], y_train[:train_size]

    def images(x: np.ndarray, round_: bool) -> torch.Tensor:
        scale = 255.0 if x.dtype == np.uint8 else 1.0
        x = torch.as_tensor(x.reshape(len(x), 784), dtype=torch.float32) / scale
        require(bool(((x >= 0) & (x <= 1)).all()), f"{path}: images must be uint8 or floats in [0, 1]")
        return (x.round() if round_ else x).to(device)

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(y.astype(np.int64)).reshape(-1).to(device)

    return MNIST(images(x_train, binarize == "round"), labels(y_train),
                 images(x_test, binarize != "none"), labels(y_test),
                 str(path.absolute()))  # checkpoints keep it: later commands may run from another folder


# ====================================================================================================
# MNIST judge: a small classifier, trained once and cached, that scores generated digits (GAN, VAE)
#
# The Fréchet distance between judge features of generated and real test digits is FID with a digit
# classifier in place of Inception: 0 for identical distributions, larger the further apart. The same
# distance between two sets of real digits, of the same sizes, is the floor a perfect generator reaches.

JUDGE_VERSION = 1          # bump when the judge's network or recipe changes: older cached judges are ignored
JUDGE_MIN_ACCURACY = 0.98  # on the held-out real test digits
CACHE_ENV = "HW5_CACHE"    # where the trained judge is cached [default: $XDG_CACHE_HOME/hw5, else ~/.cache/hw5]


class MNISTJudge(nn.Module):
    """A small CNN digit classifier: images (N, 784) or (N, 1, 28, 28) in [0, 1] -> logits (N, 10).

    Strided convolutions keep it fast on a CPU; `features` gives the 128-d activations before the
    classifier, the space in which generated and real digits are compared.
    """

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(),   # (16, 14, 14)
            nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),  # (32, 7, 7)
            nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU())   # (128,) features
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, 10))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images (N, 784) or (N, 1, 28, 28) -> features (N, 128)."""
        return self.body(images.reshape(-1, 1, 28, 28))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def judge_cache_dir() -> Path:
    """$HW5_CACHE if set, else $XDG_CACHE_HOME/hw5, else ~/.cache/hw5."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hw5"


def _jitter(images: torch.Tensor) -> torch.Tensor:
    """Random small rotations (±10°), scalings (±10%) and shifts (±2 px): (N, 1, 28, 28) -> same shape."""
    n, dev = len(images), images.device
    angle, scale = (torch.rand(n, device=dev) * 2 - 1) * math.radians(10), 1 + (torch.rand(n, device=dev) * 2 - 1) * 0.1
    shift = (torch.rand(n, 2, device=dev) * 2 - 1) * (2 / 14)  # affine_grid coordinates span 2 per 28 pixels
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    return F.grid_sample(images, F.affine_grid(theta, list(images.shape), align_corners=False), align_corners=False)


def train_judge(data: MNIST, steps: int = 1500, batch_size: int = 128, lr: float = 3e-3, seed: int = 0) -> MNISTJudge:
    """Train an MNISTJudge on data's training images (jittered), on their device; returns it in eval mode.

    The global RNGs are left as they were, so scoring inside a training run does not change the run.
    """
    images, labels = data.train_images.reshape(-1, 1, 28, 28), data.train_labels
    device = images.device
    mps_state = torch.mps.get_rng_state() if device.type == "mps" else None  # fork_rng forks the CPU's and CUDA's
    # enable_grad: the judge is first needed inside scoring code that runs under torch.no_grad()
    with torch.enable_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        judge = MNISTJudge().to(device)
        optimizer = torch.optim.AdamW(judge.parameters(), lr=lr, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
        for _ in progress(range(steps), desc="MNIST judge", unit="step", leave=False):
            batch = torch.randint(len(images), (batch_size,), device=device)
            loss = F.cross_entropy(judge(_jitter(images[batch])), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    if mps_state is not None:
        torch.mps.set_rng_state(mps_state)
    return judge.eval()


@torch.no_grad()
def judge_accuracy(judge: MNISTJudge, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of images (N, 784) classified as their labels (N,)."""
    return (judge(images).argmax(1) == labels).float().mean().item()


def _fingerprint(data: MNIST) -> str:
    digest = hashlib.sha256(f"judge v{JUDGE_VERSION}".encode())
    for tensor in data[:4]:
        digest.update(tensor.cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def judge_path(data: MNIST, cache_dir: Path | None = None) -> Path:
    """The file the judge for this data is cached in (keyed by the data's contents); cache_dir: default
    `judge_cache_dir()`."""
    return Path(cache_dir or judge_cache_dir()) / f"mnist_judge_{_fingerprint(data)}.pt"


def load_judge(data: MNIST, cache_dir: Path | None = None) -> MNISTJudge:
    """The MNIST judge for this data, trained on its training digits the first time and cached after.

    data: grey MNIST, all of it (`read_mnist(source, train_size=0, binarize="none")`); the cache file is
    keyed by its contents, so another data set gets its own judge. cache_dir: default `judge_cache_dir()`.
    Returns the judge in eval mode on the data's device, with its `test_accuracy` on data's test digits.
    """
    path = judge_path(data, cache_dir)
    judge = MNISTJudge()
    try:
        cached = torch.load(path, map_location="cpu", weights_only=True)
        judge.load_state_dict(cached["weights"])
        judge.test_accuracy = cached["test_accuracy"]
        return judge.to(data.test_images.device).eval()
    except FileNotFoundError:
        note(f"training the MNIST judge once (under a minute on a CPU); it will be cached as {path}")
    except Exception as error:  # a corrupt or outdated cache file: train a fresh judge over it
        note(f"cannot use the cached MNIST judge {path} ({type(error).__name__}); training it again")
    tic = time.perf_counter()
    judge = train_judge(data)
    judge.test_accuracy = judge_accuracy(judge, data.test_images, data.test_labels)
    seconds = time.perf_counter() - tic
    note(f"MNIST judge: {judge.test_accuracy:.2%} test accuracy on {len(data.test_images)} digits, trained in "
         f"{seconds:.0f} s")
    if judge.test_accuracy < JUDGE_MIN_ACCURACY:
        note(f"warning: the judge's accuracy is below {JUDGE_MIN_ACCURACY:.0%}; its scores are less reliable")
    state = {"weights": {k: v.cpu() for k, v in judge.state_dict().items()}, "test_accuracy": judge.test_accuracy,
             "train_seconds": seconds, "version": JUDGE_VERSION, "data": data.source}
    save_checkpoint(state, path)
    return judge


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) and (M, D).

    |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)); the trace of the square root is the sum of the
    square roots of the eigenvalues of C_a^(1/2) C_b C_a^(1/2), which is symmetric (computed in float64).
    """
    a, b = features_a.detach().cpu().double(), features_b.detach().cpu().double()  # float64: not on MPS
    mean_a, mean_b, cov_a, cov_b = a.mean(0), b.mean(0), torch.cov(a.T), torch.cov(b.T)
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    return ((mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross).item()


@torch.no_grad()
def judge_digits(judge: MNISTJudge, samples: torch.Tensor, data: MNIST, n: int = 2000, seed: int = 0) -> dict:
    """Score generated digits samples (N, 784) or (N, 1, 28, 28) in [0, 1] with the judge.

    Compares them with the first n real test digits of data (all of them when fewer). The floor compares
    n real training digits (a seeded choice) with the same test digits. Returns frechet_distance,
    floor_frechet_distance, class_histogram (fraction of samples per predicted digit 0-9), classes_covered
    (digits with at least 5% of the samples), mean_confidence (mean top softmax probability), n_samples.
    """
    real = data.test_images[:n]
    chosen = torch.randperm(len(data.train_images), generator=torch.Generator().manual_seed(seed))[:len(real)]
    reference = data.train_images[chosen.to(data.train_images.device)]
    features, real_features = judge.features(samples.to(real.device)), judge.features(real)
    probabilities = judge.head(features).softmax(1).cpu()
    histogram = torch.bincount(probabilities.argmax(1), minlength=10).float() / len(features)
    return {"frechet_distance": frechet_distance(features, real_features),
            "floor_frechet_distance": frechet_distance(judge.features(reference), real_features),
            "class_histogram": [round(p, 4) for p in histogram.tolist()],
            "classes_covered": int((histogram >= 0.05).sum()),
            "mean_confidence": probabilities.max(1).values.mean().item(),
            "n_samples": len(features)}


# ====================================================================================================
# Run plumbing for the command lines
# ----------------------------------------------------------------------------------------------------
# Command line and errors


class UserError(Exception):
    """A problem the user can fix (a bad option, a missing or unreadable file).

    The command line prints it as one line, `Error: <message>`, and exits with code 2.
    """


@contextlib.contextmanager
def _usage_errors_in_one_line(ctx: Any = None):
    """Print a click UsageError raised inside as `Error: <message> (see '<command> --help')`, then exit 2."""
    try:
        yield
    except UsageError as error:
        context = error.ctx or ctx  # click leaves out the context of some errors (a missing option value)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        typer.echo(f"Error: {error.format_message()}{hint}", err=True)
        raise typer.Exit(error.exit_code) from None


class _OneLineUsageErrors(TyperGroup):
    """Typer's command group, except that a bad option value or an unknown command prints one `Error:` line
    (exit code 2) without the usage block typer puts above it."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        if not args:  # no arguments at all: typer shows the help (by raising a UsageError, NoArgsIsHelpError)
            return super().make_context(info_name, args, parent, **extra)
        with _usage_errors_in_one_line():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with _usage_errors_in_one_line(ctx):  # the subcommand's options are parsed in here
            return super().invoke(ctx)


class App(typer.Typer):
    """A typer app whose bad options and `UserError`s are each one line on stderr with exit code 2.

    Plain help (no boxes); tracebacks are reserved for real bugs.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=_OneLineUsageErrors, add_completion=False, no_args_is_help=True,
                         pretty_exceptions_enable=False, rich_markup_mode=None, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable:
        register = super().command(*args, **kwargs)

        def decorator(fn: Callable) -> Callable:
            @functools.wraps(fn)
            def reporting_user_errors(*fn_args: Any, **fn_kwargs: Any) -> Any:
                plt.switch_backend("Agg")  # the commands write every figure to a file: no windows
                try:
                    return fn(*fn_args, **fn_kwargs)
                except UserError as error:
                    typer.echo(f"Error: {error}", err=True)
                    raise typer.Exit(2) from None
                except KeyboardInterrupt as interrupt:  # Ctrl-C: exit 130 without a traceback
                    if not getattr(interrupt, "reported", False):  # a Checkpointer has said what it saved
                        typer.echo("\nInterrupted.", err=True)
                    raise typer.Exit(130) from None

            register(reporting_user_errors)
            return fn

        return decorator


# Options every script's commands share
MNIST_HELP = ("MNIST: a Keras-layout .npz or a torchvision root folder [default: $HW5_MNIST, else "
              "../shared/data/mnist10k.npz if present, else data/]")
DEVICE = typer.Option("auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")
RESUME = typer.Option(False, help="Continue the run saved in --out-dir, with its saved settings.")
OVERWRITE = typer.Option(False, help="Start a new run even if --out-dir holds one (replaced when the new run first "
                                     "saves).")


# Hyperparameters: each script's Config field carries its default, its help text and its bounds; the `train`
# command's options and the one validation of every script come from there.


def setting(default: Any, help: str = "", *, min: float | None = None, positive: bool = False,
            below: float | None = None, choices: Sequence[str] = (), option: bool = True,
            show_default: str | None = None) -> Any:
    """A Config field with its command-line option: `help`; the bounds value >= `min` (an int's is also the
    option's range), `positive` (> 0 and finite), `below` (< it); `choices`; option=False: a setting the command
    line does not offer; show_default: the help's default where the option's own is None."""
    return dataclasses.field(default=default, metadata=dict(help=help, min=min, positive=positive, below=below,
                                                            choices=tuple(choices), option=option,
                                                            show_default=show_default))


def flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def check_settings(cfg: Any) -> None:
    """One-line `UserError`s for settings out of their Config field's bounds (None: the default chosen later)."""
    for field in dataclasses.fields(cfg):
        value, rule = getattr(cfg, field.name), field.metadata
        if value is None or not rule:
            continue
        if rule["choices"]:
            require(value in rule["choices"], f"{field.name.replace('_', ' ')} {value!r} is not one of "
                                              f"{', '.join(rule['choices'])}")
        if field.name == "seed":
            check_seed(value)
        elif rule["positive"]:
            require(0 < value < math.inf, f"{flag(field.name)} must be a positive number, got {value}")
        elif rule["below"] is not None:
            require(rule["min"] <= value < rule["below"],
                    f"{flag(field.name)} must be in [{rule['min']:g}, {rule['below']:g}), got {value}")
        elif rule["min"] is not None:
            require(value >= rule["min"], f"{flag(field.name)} must be >= {rule['min']:g}, got {value}")


def config_options(config_type: type, length: str) -> Callable:
    """Give a `train` command the options of config_type's fields, after its own parameters.

    The command is called with `settings`: the options typed on the command line (a dict), which a script lays
    over its defaults (and a preset). `length` names the run's length field (epochs, iterations): its option's
    default is None, so that with --resume it means "the saved run's"."""
    hints = get_type_hints(config_type)

    def decorate(command: Callable) -> Callable:
        own = [p for p in inspect.signature(command).parameters.values() if p.name != "settings"]
        fields = [field for field in dataclasses.fields(config_type) if field.metadata.get("option")]
        options = []
        for field in fields:
            rule, hint = field.metadata, hints[field.name]
            numeric = hint is int and field.name != "seed"  # a seed's range is checked with torch's message
            default = None if field.name == length else field.default
            annotation = Literal[rule["choices"]] if rule["choices"] else hint
            shown = rule["show_default"] or (str(field.default) if field.name == length else True)
            options.append(inspect.Parameter(
                field.name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[annotation] if default is None
                else annotation, default=typer.Option(default, help=rule["help"], show_default=shown,
                                                      min=rule["min"] if numeric else None)))

        @functools.wraps(command)
        def with_options(ctx: typer.Context, **values: Any) -> Any:
            names = {field.name for field in fields}
            typed = {name: value for name, value in values.items()
                     if name in names and ctx.get_parameter_source(name).name == "COMMANDLINE"}
            return command(ctx, settings=typed, **{k: v for k, v in values.items() if k not in names})

        rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[1:]]
        parameters = own[:1] + options + rest  # ctx first, then the settings, then the command's own options
        with_options.__signature__ = inspect.Signature(parameters)
        with_options.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_options

    return decorate


def require(condition: bool, message: str) -> None:
    """Raise `UserError(message)` unless `condition` holds (for validating user input)."""
    if not condition:
        raise UserError(message)


def note(message: str) -> None:
    """Print a status line to stderr without breaking an active tqdm bar."""
    tqdm.write(message, file=sys.stderr)


# ----------------------------------------------------------------------------------------------------
# Runtime: seeds, devices, RNG state


def check_seed(seed: int) -> None:
    """A one-line `UserError` unless torch takes `seed` (0 to 2**64 - 1)."""
    require(0 <= seed < 2**64, f"--seed must be between 0 and 2**64 - 1 (torch's range), got {seed}")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def device_of(network: Any) -> torch.device:
    """Where a network computes: the device of its first parameter; for a network without parameters or a plain
    function (an analytic score, say), torch's default device."""
    parameters = getattr(network, "parameters", None)
    first = next(iter(parameters()), None) if callable(parameters) else None
    return first.device if first is not None else torch.get_default_device()


def pick_device(name: str = "auto") -> torch.device:
    """`auto` -> cuda if available, then mps, then cpu; otherwise the named device, checked to exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device '{name}': use auto, cpu, cuda, cuda:N or mps") from None
    require(device.type in ("cpu", "cuda", "mps") and (device.type == "cuda" or not device.index),
            f"unknown device '{name}': use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        require(torch.cuda.is_available(), f"device '{name}' asked for, but CUDA is not available: use --device cpu")
        require((device.index or 0) < torch.cuda.device_count(),
                f"device '{name}' does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps":
        require(torch.backends.mps.is_available(), "device 'mps' asked for, but MPS is not available: use --device cpu")
    return device


MATMUL_PRECISIONS = ("highest", "high", "medium")


@contextlib.contextmanager
def matmul_precision(precision: str):
    """Run the block with torch.set_float32_matmul_precision(precision), then restore the previous setting.

    'highest' is plain float32. 'medium' lets float32 matrix products use bfloat16 arithmetic where the hardware
    does it fast, and is plain float32 elsewhere; tensors stay float32. On the README's CPU (AVX512-BF16) the
    VAE's products ran 2x faster with relative errors of 2-4e-7 against float32's 1-2.5e-7; on CUDA it means
    TF32 (about 1e-3).
    """
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def get_rng_state() -> dict:
    """Every global RNG state, in a form `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `get_rng_state` returned."""
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        for index, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):  # this machine may have fewer
            torch.cuda.set_rng_state(cuda_state, index)
    if "mps" in state and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])


# ----------------------------------------------------------------------------------------------------
# Files: checkpoints, metrics, figures (all written atomically: a crash never leaves half a file)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """write(tmp) a temporary file, then rename it to `path`: a failed write leaves an earlier file as it was, and
    a full disk or an unwritable path is a one-line `UserError`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}; free some space or pass another "
                        f"--out-dir") from error
    except RuntimeError as error:  # torch.save's way of saying that a write failed
        if "PytorchStreamWriter" not in str(error):
            raise
        raise UserError(f"cannot write {path}: the disk may be full; free some space or pass another "
                        f"--out-dir") from error
    finally:
        with contextlib.suppress(OSError):  # e.g. a read-only folder: the write's own error is the one to report
            tmp.unlink(missing_ok=True)


def check_out_dir(out_dir: Path) -> Path:
    """Fail early, with a one-line `UserError`, when out_dir could not be created or written; returns it.

    Called before any long work, so that a run is never lost to a bad --out-dir at the end.
    """
    out_dir = Path(out_dir)
    nearest = next(folder for folder in (out_dir, *out_dir.absolute().parents) if folder.exists())
    require(nearest.is_dir(), f"--out-dir {out_dir}: {nearest} is a file, not a folder; pass a folder")
    require(os.access(nearest, os.W_OK | os.X_OK), f"--out-dir {out_dir}: cannot write in {nearest}; "
                                                   f"pass a folder you can write to")
    return out_dir


def check_new_run(checkpoint: Path, resume: bool, overwrite: bool) -> None:
    """Keep a saved run from being replaced by accident: training into a folder that holds one needs --resume (to
    continue it) or --overwrite (to start over); a one-line `UserError` otherwise."""
    require(not (resume and overwrite), "--resume continues the saved run and --overwrite replaces it: pass one")
    require(resume or overwrite or not Path(checkpoint).exists(),
            f"{checkpoint} holds an earlier run: continue it with --resume, start over with --overwrite, "
            f"or pass another --out-dir")


def save_checkpoint(state: dict, path: Path) -> None:
    """torch.save `state` to `path` atomically (write a temporary file, then rename)."""
    _atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path, required: Iterable[str], train_hint: str) -> dict:
    """Load a checkpoint dict saved by `save_checkpoint`, with a one-line `UserError` for every way it can fail.

    path: the file; required: keys it must have; train_hint: the command that makes one (for the message).
    """
    path = Path(path)
    require(path.is_file(), f"no checkpoint at {path}: pass the --out-dir you trained into, "
                            f"or train with `{train_hint}`")
    try:
        with warnings.catch_warnings():  # a corrupt file may warn before it fails; the error below says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt file
        raise UserError(f"cannot read checkpoint {path} ({type(error).__name__}): "
                        f"train again with --overwrite") from None
    missing = [key for key in required if not isinstance(state, dict) or key not in state]
    require(not missing, f"{path} is not a checkpoint of this script (missing {', '.join(missing)}): "
                         f"train one with `{train_hint} --overwrite`")
    return state


def typed_options(ctx: typer.Context, but: Iterable[str]) -> list[str]:
    """The options typed on the command line (not defaults), as flags, except the parameters named in `but`."""
    return [f"--{'no-' if value is False else ''}{name.replace('_', '-')}" for name, value in ctx.params.items()
            if name not in but and ctx.get_parameter_source(name).name == "COMMANDLINE"]


def _is_a(value: Any, hint: Any) -> bool:
    """isinstance against a Config field's type hint: int, float (an int is fine), str, bool or Optional[...]."""
    allowed = get_args(hint) or (hint,)  # Optional[str] -> (str, NoneType)
    if isinstance(value, bool):  # a bool is an int to isinstance
        return bool in allowed
    return isinstance(value, allowed) or (float in allowed and isinstance(value, int))


def saved_config(config_type: type, checkpoint: dict, path: Path, **given):
    """The settings of the run saved in `checkpoint` (read from `path`), with the options given again on top.

    given: options of `--resume` (e.g. epochs, data); None or 0 keeps the saved value. A saved config this version
    cannot rebuild (an older or foreign checkpoint, or a hand-edited value of the wrong type) is a one-line
    `UserError`.
    """
    unusable = f"{path} has an unusable config"
    again = "train again with --overwrite"  # a new run in its place
    try:
        config = config_type(**{**checkpoint["config"], **{key: value for key, value in given.items() if value}})
    except TypeError:
        raise UserError(f"{unusable}: {again}") from None
    hints = get_type_hints(config_type)
    wrong = [f"{field.name}={getattr(config, field.name)!r}" for field in dataclasses.fields(config)
             if not _is_a(getattr(config, field.name), hints[field.name])]
    require(not wrong, f"{unusable} ({', '.join(wrong)}): {again}")
    return config


def load_run(path: Path, required: Iterable[str], train_hint: str, config_type: type) -> tuple[dict, Any]:
    """For the commands that use a trained run and write beside it (plot, evaluate, sample): check its folder
    (`check_out_dir`), load the checkpoint at `path` (`load_checkpoint`) and rebuild its settings (`saved_config`).

    Returns the checkpoint, with its "config" completed by this version's default for any setting an older run
    lacks, and that config as a `config_type`.
    """
    check_out_dir(path.parent)
    state = load_checkpoint(path, required, train_hint)
    config = saved_config(config_type, state, path)
    state["config"] = dataclasses.asdict(config)
    for unit in ("epoch", "iteration"):  # a run stopped by Ctrl-C is usable, but the user should know
        done, total = state.get(unit), getattr(config, f"{unit}s", None)
        if isinstance(done, int) and isinstance(total, int) and done < total:
            note(f"note: {path} holds an interrupted run ({unit} {done} of {total}); finish it with:\n"
                 f"  {train_hint} --resume --{unit}s {total}")
    return state, config


def load_weights(module: torch.nn.Module, weights: dict, path: Path) -> None:
    """`module.load_state_dict(weights)`, reporting an architecture mismatch as a one-line `UserError`."""
    try:
        module.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"checkpoint {path} does not match this model's architecture ({first_line}); "
                        f"train again with --overwrite or pass the --out-dir it was trained in") from None


def restore_training(saved: dict, path: Path, modules: dict, optimizers: dict, done: int, total: int,
                     unit: str, option: str, ignored: Sequence[str] = ()) -> None:
    """For --resume: load each module's weights and each optimizer's state from the checkpoint `saved` (read
    from `path`; dicts map its keys to the objects) and the RNG states; say so when `done` units of training
    already reach the `total` asked (`option`: the flag that raises it), and name the `ignored` options typed
    with --resume (the saved run's settings win)."""
    for key, module in modules.items():
        load_weights(module, saved[key], path)
    for key, optimizer in optimizers.items():
        optimizer.load_state_dict(saved[key])
    set_rng_state(saved["rng"])
    if done >= total:
        note(f"{path} already has {done} {unit}s; raise {option} to train more")
    if ignored:
        note(f"note: --resume continues with the saved run's settings; ignoring {', '.join(ignored)}")


def write_metrics(metrics: dict, path: Path) -> None:
    """Write `metrics` as pretty JSON (atomically)."""
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(metrics, indent=2) + "\n"))




def save_array(array: np.ndarray, path: Path) -> Path:
    """np.save `array` to `path` (a .npy file) atomically; returns the path."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:  # a file object: np.save would append .npy to the temporary name
            np.save(file, array)
    _atomic_write(path, write)
    return Path(path)


def save_gif(frames: list[np.ndarray], path: Path, fps: float = 10.0) -> Path:
    """Write uint8 frames, grey (H, W) or RGB(A) (H, W, 3 or 4), as a looping animated GIF of 16 colours
    (atomically, via Pillow); returns path."""
    from PIL import Image

    images = [Image.fromarray(frame if frame.ndim == 2 else frame[..., :3]).quantize(colors=16) for frame in frames]
    _atomic_write(path, lambda tmp: images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                                                   duration=round(1000 / fps), loop=0, optimize=True))
    return Path(path)


def progress(iterable: Iterable, **kwargs: Any) -> tqdm:
    """The trainers' tqdm progress bar (stderr, resizes with the terminal)."""
    return tqdm(iterable, dynamic_ncols=True, mininterval=0.5, file=sys.stderr, **kwargs)


# ----------------------------------------------------------------------------------------------------
# Training guard: the newest consistent state, saved on a timer, on Ctrl-C and when the loss blows up


class Checkpointer:
    """Keeps the newest consistent training state and writes it atomically to `path`.

    A trainer calls `snapshot(state)` at consistent points (the end of an epoch) and runs its loop inside
    `with checkpointer.guard():`. The state reaches the disk every `every_seconds`, on `save()`, on Ctrl-C
    (then the resume command is printed and the KeyboardInterrupt goes on: typer exits with 130), and when
    `check_finite` sees a NaN/inf loss (the last good state is kept; a one-line `UserError` follows).
    `unit` names the trainer's progress counter (`state[unit]`, e.g. 'epoch' or 'iteration') in messages.
    """

    def __init__(self, path: Path, resume_command: str = "", every_seconds: float = 60.0, unit: str = "epoch",
                 state: dict | None = None) -> None:
        """state: the checkpoint a resumed run starts from (kept as a copy: the optimizer shares its tensors)."""
        self.path = Path(path)
        self.resume_command, self.every_seconds = resume_command, every_seconds
        self.unit = unit
        self.state: dict | None = copy.deepcopy(state)
        self._last_write = time.monotonic()

    def snapshot(self, state: dict) -> None:
        """Remember a deep copy of `state` (state_dicts share storage with the live model)."""
        self.state = copy.deepcopy(state)
        if time.monotonic() - self._last_write > self.every_seconds:
            self.save()

    def save(self) -> None:
        if self.state is not None:
            save_checkpoint(self.state, self.path)
            self._last_write = time.monotonic()

    def check_finite(self, loss: float, epoch: int) -> None:
        """Stop with the last good checkpoint kept when `loss` (of 0-based `epoch`, or `unit`) is NaN or infinite."""
        if not math.isfinite(loss):
            self.save()
            kept = f"kept the last good checkpoint {self.path} ({self.unit} {self.state[self.unit]})" if self.state \
                else "no good state to keep"
            raise UserError(f"the loss became {loss} in {self.unit} {epoch + 1}; {kept}. "
                            f"Lower --lr and train again with --overwrite")

    @contextlib.contextmanager
    def guard(self):
        try:
            yield self
        except KeyboardInterrupt as interrupt:
            interrupt.reported = True  # App prints nothing more
            self.save()
            if self.state is not None:
                note(f"\nInterrupted. Saved {self.path} after {self.unit} {self.state[self.unit]}; resume with:\n"
                     f"  {self.resume_command}")
            else:
                note("\nInterrupted before the first checkpoint: nothing was saved" +
                     (f" ({self.path} is an earlier run's)" if self.path.exists() else ""))
            raise


# ----------------------------------------------------------------------------------------------------
# A run's life: train, resume, and use a trained run, written once for the three scripts


class Run:
    """A script's training run in a folder, as its commands see it.

    script: the file ('hw5_vae.py'); checkpoint: the file name in out_dir; keys: what every checkpoint of the script
    holds; resume_keys: what --resume needs besides; config_type: the script's Config, whose run length is the field
    `<unit>s` (unit 'epoch' or 'iteration'); old_defaults: settings a run saved by an older version lacks.
    """

    def __init__(self, script: str, out_dir: Path | str, checkpoint: str, keys: Sequence[str],
                 resume_keys: Sequence[str], config_type: type, unit: str = "epoch",
                 old_defaults: dict | None = None) -> None:
        self.script, self.out_dir, self.checkpoint = script, Path(out_dir), checkpoint
        self.keys, self.resume_keys, self.config_type, self.unit = tuple(keys), tuple(resume_keys), config_type, unit
        self.old_defaults = old_defaults or {}

    @property
    def path(self) -> Path:
        return self.out_dir / self.checkpoint

    @property
    def train_command(self) -> str:
        return f"python {self.script} train --out-dir {shlex.quote(str(self.out_dir))}"

    def settings(self, settings: dict, preset: dict | None = None, resume: bool = False) -> Any:
        """The Config of a `train` command: the options typed (`settings`) over a preset, over the defaults; the run
        length left at 0 ("the saved run's") when resuming without it."""
        length = f"{self.unit}s"
        values = {**dataclasses.asdict(self.config_type()), **(preset or {}), **settings}
        if resume and length not in settings:
            values[length] = 0
        return self.config_type(**values)

    def begin(self, cfg: Any, resume: bool = False, overwrite: bool = False, **given: Any) -> tuple[Any, dict | None]:
        """Start `train`: check the folder and the new-run rule; with resume, load the checkpoint and take its
        settings, with `given` (the options resume takes again: the run length, the data) on top. Then check
        the settings. Returns them and the saved checkpoint (None for a new run)."""
        self.out_dir = check_out_dir(self.out_dir)
        check_new_run(self.path, resume, overwrite)
        saved = None
        if resume:
            saved = load_checkpoint(self.path, self.keys + self.resume_keys, self.train_command)
            if isinstance(saved["config"], dict):
                for key, value in self.old_defaults.items():
                    saved["config"].setdefault(key, value)
            cfg = saved_config(self.config_type, saved, self.path, **given)
        check_settings(cfg)
        return cfg, saved

    def resume(self, saved: dict, modules: dict, optimizers: dict, total: int, ignored: Sequence[str] = ()) -> dict:
        """Restore the modules, optimizers and RNG states from `saved` (see restore_training); returns it as the
        training state to go on from."""
        restore_training(saved, self.path, modules, optimizers, saved[self.unit], total, self.unit,
                         flag(f"{self.unit}s"), ignored)
        return saved

    def checkpointer(self, cfg: Any, saved: dict | None, *resume_flags: str) -> Checkpointer:
        """The Checkpointer of this run; its resume command carries the run length and `resume_flags`."""
        length = f"{self.unit}s"
        command = [self.train_command, "--resume", f"{flag(length)} {getattr(cfg, length)}", *resume_flags]
        return Checkpointer(self.path, " ".join(command), unit=self.unit, state=saved)

    def load(self) -> tuple[dict, Any]:
        """A trained (or interrupted) run, for plot, evaluate and sample: its checkpoint and its settings."""
        state, cfg = load_run(self.path, self.keys, self.train_command, self.config_type)
        check_settings(cfg)
        return state, cfg
