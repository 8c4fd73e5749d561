"""Shared helpers for the hw5 trainers (hw5_vae.py, hw5_diffusion.py, hw5_gan.py).

Sections, top to bottom: command line and errors · runtime (seeds, devices, RNG state) · files
(checkpoints, metrics, figures) · the training guard (Ctrl-C and NaN safety) · MNIST data · image helpers.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple

import matplotlib

matplotlib.use("Agg")  # figures are always written to files; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import typer  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402
from tqdm import tqdm  # noqa: E402

# ----------------------------------------------------------------------------------------------------
# Command line and errors


class UserError(Exception):
    """A problem the user can fix (a bad option, a missing or unreadable file).

    The command line prints it as one line, `Error: <message>`, and exits with code 2.
    """


class App(typer.Typer):
    """A typer app whose commands report a `UserError` as one line on stderr with exit code 2.

    Plain help (no boxes) keeps errors to a single line; tracebacks are reserved for real bugs.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                         rich_markup_mode=None, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable:
        register = super().command(*args, **kwargs)

        def decorator(fn: Callable) -> Callable:
            @functools.wraps(fn)
            def reporting_user_errors(*fn_args: Any, **fn_kwargs: Any) -> Any:
                try:
                    return fn(*fn_args, **fn_kwargs)
                except UserError as error:
                    typer.echo(f"Error: {error}", err=True)
                    raise typer.Exit(2) from None

            register(reporting_user_errors)
            return fn

        return decorator


def require(condition: bool, message: str) -> None:
    """Raise `UserError(message)` unless `condition` holds (for validating user input)."""
    if not condition:
        raise UserError(message)


def note(message: str) -> None:
    """Print a status line to stderr without breaking an active tqdm bar."""
    tqdm.write(message, file=sys.stderr)


# ----------------------------------------------------------------------------------------------------
# Runtime: seeds, devices, RNG state


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
    require(device.type in ("cpu", "cuda", "mps"), f"unknown device '{name}': use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        require(torch.cuda.is_available(), f"device '{name}' asked for, but CUDA is not available: use --device cpu")
        require((device.index or 0) < torch.cuda.device_count(),
                f"device '{name}' does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps":
        require(torch.backends.mps.is_available(), "device 'mps' asked for, but MPS is not available: use --device cpu")
    return device


def get_rng_state() -> dict:
    """Every global RNG state, in a form `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `get_rng_state` returned."""
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------------
# Files: checkpoints, metrics, figures (all written atomically: a crash never leaves half a file)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(state: dict, path: Path) -> None:
    """torch.save `state` to `path` atomically (write a temporary file, then rename)."""
    _atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path, required: Iterable[str], train_hint: str) -> dict:
    """Load a checkpoint dict saved by `save_checkpoint`, with a one-line `UserError` for every way it can fail.

    path: the file; required: keys it must have; train_hint: the command that makes one (for the message).
    """
    path = Path(path)
    require(path.is_file(), f"no checkpoint at {path}: train one first with `{train_hint}` (or pass --out-dir)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt file
        raise UserError(f"cannot read checkpoint {path} ({type(error).__name__}): delete it and train again") from None
    missing = [key for key in required if not isinstance(state, dict) or key not in state]
    require(not missing, f"{path} is not a checkpoint of this script (missing {', '.join(missing)}): "
                         f"train one with `{train_hint}`")
    return state


def load_weights(module: torch.nn.Module, weights: dict, path: Path) -> None:
    """`module.load_state_dict(weights)`, reporting an architecture mismatch as a one-line `UserError`."""
    try:
        module.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"checkpoint {path} does not match this model's architecture ({first_line}); "
                        f"train again or pass the --out-dir it was trained in") from None


def write_metrics(metrics: dict, path: Path) -> None:
    """Write `metrics` as pretty JSON (atomically)."""
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(metrics, indent=2) + "\n"))


def save_figure(fig: plt.Figure, path: Path, dpi: int = 100) -> Path:
    """Save a matplotlib figure as a PNG (atomically) and close it; returns the path."""
    _atomic_write(path, lambda tmp: fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png",
                                                dpi=dpi, bbox_inches="tight"))
    plt.close(fig)
    return Path(path)


def save_array(array: np.ndarray, path: Path) -> Path:
    """np.save `array` to `path` (a .npy file) atomically; returns the path."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:  # a file object: np.save would append .npy to the temporary name
            np.save(file, array)
    _atomic_write(path, write)
    return Path(path)


def save_gif(frames: list[np.ndarray], path: Path, fps: float = 10.0) -> Path:
    """Write RGB(A) frames (H, W, 3 or 4) uint8 as a looping animated GIF (atomically, via Pillow); returns path."""
    from PIL import Image

    images = [Image.fromarray(frame[..., :3]).quantize(colors=16) for frame in frames]
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

    def __init__(self, path: Path, resume_command: str, every_seconds: float = 60.0, unit: str = "epoch") -> None:
        self.path, self.resume_command, self.every_seconds = Path(path), resume_command, every_seconds
        self.unit = unit
        self.state: dict | None = None
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
            raise UserError(f"the loss became {loss} in {self.unit} {epoch + 1}; {kept}. Lower --lr and train again")

    @contextlib.contextmanager
    def guard(self):
        try:
            yield self
        except KeyboardInterrupt:
            self.save()
            if self.state is not None:
                note(f"\nInterrupted. Saved {self.path} after {self.unit} {self.state[self.unit]}; resume with:\n"
                     f"  {self.resume_command}")
            raise


# ----------------------------------------------------------------------------------------------------
# MNIST data

MNIST_ENV = "HW5_MNIST"
SHARED_MNIST = Path(__file__).resolve().parent.parent / "shared" / "data" / "mnist10k.npz"
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
        require(x.ndim in (2, 3) and x[0].size == 784 and len(x) == len(y) > 0,
                f"{path}: x_{name} must hold 28x28 images, one label each in y_{name} (got {x.shape} and {y.shape})")
    return arrays


def _read_torchvision(root: Path) -> tuple[np.ndarray, ...]:
    """A torchvision MNIST root (downloading into it when online) -> (x_train, y_train, x_test, y_test)."""
    from torchvision.datasets import MNIST as TorchvisionMNIST

    try:
        train, test = (TorchvisionMNIST(str(root), train=flag, download=True) for flag in (True, False))
    except Exception as error:
        raise UserError(
            f"MNIST is not in {root}/MNIST/raw and could not be downloaded ({type(error).__name__}). Put the "
            f"four MNIST .gz files there, or pass --data FILE.npz (a Keras-layout file, e.g. "
            f"../shared/data/mnist10k.npz), or set {MNIST_ENV}") from None
    return train.data.numpy(), train.targets.numpy(), test.data.numpy(), test.targets.numpy()


def load_mnist(source: Path | str | None = None, train_size: int = 10000, binarize: str = "dynamic",
               device: torch.device | str = "cpu") -> MNIST:
    """Load MNIST as float tensors on `device`.

    source: a Keras-layout .npz file or a torchvision root folder (default: `default_mnist_source()`).
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
    if path.suffix == ".npz":
        require(path.is_file(), f"no data file {path}: pass --data with a Keras-layout .npz or a torchvision "
                                f"MNIST folder, or set {MNIST_ENV}")
        x_train, y_train, x_test, y_test = _read_npz(path)
    else:
        require(not path.is_file(), f"{path} is neither a .npz file nor a torchvision MNIST folder")
        x_train, y_train, x_test, y_test = _read_torchvision(path)
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
                 images(x_test, binarize != "none"), labels(y_test), str(path))


# ----------------------------------------------------------------------------------------------------
# Image helpers (the course's names kept for students, built on torchvision's make_grid)


def batch_indices(iter: int, num_batches: int, batch_size: int) -> slice:  # noqa: A002 - the course's name
    """The course's minibatch slice: batch `iter % num_batches` of size `batch_size`."""
    idx = iter % num_batches
    return slice(idx * batch_size, (idx + 1) * batch_size)


def array_to_image(array: Any) -> np.ndarray:
    """A 784-vector (tensor, array or list) -> a (28, 28) numpy image."""
    return np.reshape(np.asarray(torch.as_tensor(array).detach().cpu()), (28, 28))


def concat_images(images: Any, row: int, col: int, padding: int = 3) -> np.ndarray:
    """The course's tiling: images (row*col, 784 or 28x28) -> one (28*row + (row-1)*padding, ...) array.

    As in the course, the images fill the grid column by column: image i + j*row lands in row i, column j.
    """
    images = torch.as_tensor(np.asarray(images), dtype=torch.float32).reshape(col, row, 1, 28, 28)
    grid = make_grid(images.transpose(0, 1).reshape(row * col, 1, 28, 28), nrow=col, padding=padding, pad_value=0)
    return grid[0, padding:-padding or None, padding:-padding or None].numpy()


def plot_image_grid(images: torch.Tensor, path: Path, title: str, col_labels: list[str] | None = None,
                    row_labels: list[str] | None = None, xlabel: str = "", ylabel: str = "",
                    cell_inches: float = 0.45) -> Path:
    """Draw images (rows, cols, 784) or (rows, cols, 28, 28) in [0, 1] as one labelled grid; save a PNG.

    Column labels go on top, row labels on the left; empty labels hide the ticks.
    """
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
