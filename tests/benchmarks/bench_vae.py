"""VAE training speed: our epoch vs the matmul-FLOP bound and vs a DataLoader(MNIST(ToTensor())) loop.

    python tests/benchmarks/bench_vae.py [--epochs 10] [--threads N]

All run the same network (784-500-2 / 2-500-784) on 10,000 MNIST images at batch 100:
- bound: the time of the five large matrix products of every step (2 forward, 3 backward), nothing else, in
  float32 and at `--matmul-precision medium` (bfloat16 hardware where the CPU has it);
- ours: `hw5_vae.fit` (one tensor on the device, index batches, dynamic binarization, log p(x|z) from the
  logits, fused Adam) at its default `--matmul-precision medium`, and at `highest` (plain float32);
- DataLoader: the usual loop, pytorch/examples' vae/main.py: torchvision's MNIST with transform=ToTensor() (its
  per-item PIL + ToTensor path, over the same 10k images), shuffled, rounded to {0, 1}, the loss
  F.binary_cross_entropy of the decoder's probabilities plus the analytic KL, plain Adam, in float32.
Last, the cost of log p(x|z) alone in four forms: ours from the logits, torch's from the logits, the course's and
pytorch/examples'.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import hw5_vae  # noqa: E402
from hw5_utils import MNIST, Checkpointer, matmul_precision, read_mnist  # noqa: E402

BATCH, HIDDEN, PIXELS = 100, 500, 784


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return min(times)


def gemm_bound_epoch(n_images: int, precision: str) -> tuple[float, float]:
    """Seconds per epoch spent in the five big matmuls alone at `precision`, and the GFLOP/s they reach."""
    x, h = torch.rand(BATCH, PIXELS), torch.rand(BATCH, HIDDEN)
    w1, w2 = torch.rand(HIDDEN, PIXELS), torch.rand(PIXELS, HIDDEN)
    g_out, g_hid = torch.rand(BATCH, PIXELS), torch.rand(BATCH, HIDDEN)

    def step() -> None:
        for _ in range(50):
            x @ w1.T, h @ w2.T, g_hid.T @ x, g_out.T @ h, g_out @ w2  # fwd fc1, fwd fc2_dec, dW1, dW2, dh

    with matmul_precision(precision):
        per_step = best_of(step, 20) / 50
    return per_step * n_images / BATCH, 5 * 2 * BATCH * PIXELS * HIDDEN / per_step / 1e9


def likelihood_milliseconds() -> dict[str, float]:
    """log p(x|z) of one batch, forward and backward, in ms: ours (from the logits) and three other forms."""
    x, logits = (torch.rand(BATCH, PIXELS) < 0.2).float(), torch.randn(BATCH, PIXELS)
    forms = {"from the logits (ours)": lambda l: hw5_vae.VAE.logpdf_bernoulli_logits(x, l).mean(),
             "F.binary_cross_entropy_with_logits":
                 lambda l: -F.binary_cross_entropy_with_logits(l, x, reduction="sum") / BATCH,
             "logpdf_bernoulli(x, p)": lambda l: hw5_vae.VAE.logpdf_bernoulli(x, torch.sigmoid(l)).mean(),
             "F.binary_cross_entropy": lambda l: -F.binary_cross_entropy(torch.sigmoid(l), x, reduction="sum") / BATCH}

    def hundred_batches(form) -> None:
        for _ in range(100):
            form(logits.clone().requires_grad_()).backward()

    return {name: best_of(lambda: hundred_batches(form), 5) * 10 for name, form in forms.items()}


def ours_loop(images: torch.Tensor, precision: str):
    """One epoch of `hw5_vae.fit` per call -> its seconds (fit's own per-epoch clock: shuffling, binarization,
    training and the test ELBO; not the checkpoint file, written once every few minutes in a real run)."""
    cfg = hw5_vae.Config(epochs=0, binarize="dynamic", matmul_precision=precision)
    data = MNIST(images, torch.zeros(len(images), dtype=torch.long), images[:100].round(), torch.zeros(100), "bench")
    torch.manual_seed(0)
    vae = hw5_vae.sized_vae(hw5_vae.Config())
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3, fused=True)
    state = {"epoch": 0, "history": {}, "train_seconds": 0.0}
    folder = tempfile.TemporaryDirectory()

    def one_epoch() -> float:
        cfg.epochs, before = state["epoch"] + 1, state["train_seconds"]
        state.update(hw5_vae.fit(vae, optimizer, data, cfg, Checkpointer(Path(folder.name) / "vae.pt", ""), state))
        return state["train_seconds"] - before

    return one_epoch


def dataloader_loop(images: torch.Tensor):
    """One epoch of the usual loop per call -> its seconds: torchvision's MNIST (uint8 -> PIL -> ToTensor per
    item) in a shuffled DataLoader, images rounded to {0, 1}, the same network, pytorch/examples' loss, Adam."""
    from torch.utils.data import DataLoader
    from torchvision.datasets import MNIST as TorchvisionMNIST
    from torchvision.datasets import VisionDataset
    from torchvision.transforms import ToTensor

    class InMemoryMNIST(TorchvisionMNIST):
        """torchvision's MNIST (same __getitem__: uint8 -> PIL -> ToTensor) over images already in memory."""

        def __init__(self, data: torch.Tensor) -> None:
            VisionDataset.__init__(self, "", transform=ToTensor())
            self.train, self.data, self.targets = False, data, torch.zeros(len(data), dtype=torch.long)

    uint8_images = (images * 255).round().to(torch.uint8).view(-1, 28, 28)
    loader = DataLoader(InMemoryMNIST(uint8_images), batch_size=BATCH, shuffle=True)
    torch.manual_seed(0)
    vae = hw5_vae.sized_vae(hw5_vae.Config())
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)

    def one_epoch() -> float:
        tic = time.perf_counter()
        for batch, _ in loader:  # pytorch/examples' vae/main.py: BCE on the decoder's probabilities + analytic KL
            x = batch.view(len(batch), -1).round()
            mu, sigma_square = vae.encoder(x)
            p = vae.decoder(vae.sample_z(mu, sigma_square))
            loss = (F.binary_cross_entropy(p, x, reduction="sum") + vae.kl_to_prior(mu, sigma_square).sum()) / len(x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return time.perf_counter() - tic

    return one_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10, help="timed epochs per loop, alternating (after a warm-up)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    mnist = read_mnist(None, 0, "dynamic")
    images = torch.cat([mnist.train_images, mnist.test_images])[:10000]
    load = os.getloadavg()[0]
    bounds = {precision: gemm_bound_epoch(len(images), precision) for precision in ("highest", "medium")}
    loops = {"hw5_vae.fit": ours_loop(images, "medium"), "hw5_vae.fit, highest": ours_loop(images, "highest"),
             "DataLoader(ToTensor)": dataloader_loop(images)}
    times = {name: [] for name in loops}
    for round_ in range(args.epochs + 1):  # alternate, so that a busy machine slows both alike; round 0 warms up
        for name, one_epoch in loops.items():
            seconds = one_epoch()
            if round_:
                times[name].append(seconds)
    ours, ours_float32, baseline = (min(times[name]) for name in loops)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load:.2f} -> "
          f"{os.getloadavg()[0]:.2f}; fastest of {args.epochs} epochs (median in brackets)")
    for precision, (seconds, gflops) in bounds.items():
        print(f"{'bound, ' + precision:22s} {seconds:6.3f} s/epoch  ({gflops:.0f} GFLOP/s in the five big matmuls)")
    for name in loops:
        print(f"{name:22s} {min(times[name]):6.3f} s/epoch  ({statistics.median(times[name]):.3f})")
    print(f"ours: {ours / bounds['highest'][0]:.2f}x the float32 bound, {baseline / ours:.2f}x faster than the "
          f"DataLoader loop ({baseline / ours_float32:.2f}x at highest); 200 epochs of 10k images: {200 * ours:.0f} s "
          f"of training")
    print("log p(x|z) of a batch, forward and backward: " +
          ", ".join(f"{name} {ms:.2f} ms" for name, ms in likelihood_milliseconds().items()))

if __name__ == "__main__":
    main()
