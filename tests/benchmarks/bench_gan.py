"""Speed benchmark: one epoch of the course-architecture GAN at batch 256, the course's loop vs ours.

    python tests/benchmarks/bench_gan.py [--rounds 5] [--train-size 0] [--threads 0]   # after `pip install -e .`

The course's loop: `GANDataset` + a shuffled `DataLoader` (drop_last), and the reference losses, which
compute G(z) anew for the D and the G step and back-propagate D's loss through G as well. Ours:
`hw5_gan.train_epoch` (one G(z) per batch, D's parameters frozen during the G step, fused Adam), the
function `hw5_gan.py train` runs. Both start from the same networks and alternate epoch by epoch, so a
busy machine slows both alike. Printed per loop: the fastest and the median wall-clock seconds per epoch
(the fastest is the least disturbed by other processes) and the median CPU seconds (all threads), and the
speed-ups. Not collected by pytest (no test_ prefix).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

import hw5_gan
from hw5_utils import read_mnist


class GANDataset(Dataset):
    """The course's dataset: images (N, 1, 28, 28) in [0, 1], one per index."""

    def __init__(self, images: torch.Tensor) -> None:
        self.d = images

    def __len__(self) -> int:
        return len(self.d)

    def __getitem__(self, idx: int) -> torch.Tensor:
        return self.d[idx]


def course_epoch(gan: hw5_gan.GAN, loader: DataLoader, dopt, gopt, batch_size: int) -> None:
    """The course's `GAN.train` inner loop with the reference losses (G(z) not detached in D's loss)."""
    for data in loader:
        z = 2 * torch.rand(data.size()[0], gan._zdim, device=gan._dev) - 1
        dopt.zero_grad()
        logits_real, logits_fake = gan.disc(data), gan.disc(gan.gen(z))
        loss_d = (F.binary_cross_entropy_with_logits(logits_real, torch.ones(batch_size, 1))
                  + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros(batch_size, 1)))
        loss_d.backward()
        dopt.step()
        dopt.zero_grad()
        gopt.zero_grad()
        loss_g = F.binary_cross_entropy_with_logits(gan.disc(gan.gen(z)), torch.ones(batch_size, 1))
        loss_g.backward()
        gopt.step()
        gopt.zero_grad()
    print(f"    course: DLoss {loss_d.item():.3f}, GLoss {loss_g.item():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs of each loop (after one warm-up)")
    parser.add_argument("--train-size", type=int, default=0, help="training images (0 = all)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for both loops (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images = read_mnist(None, args.train_size, "none").train_images.view(-1, 1, 28, 28)
    cfg = hw5_gan.Config()
    print(f"{len(images)} images, batch {cfg.batch_size}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, load average before {os.getloadavg()}")

    course = hw5_gan.GAN(cfg.zdim)
    loader = DataLoader(GANDataset(images), batch_size=cfg.batch_size, shuffle=True, num_workers=0, drop_last=True)
    dopt = torch.optim.Adam(course.disc.parameters(), lr=cfg.lr, weight_decay=0.0)
    gopt = torch.optim.Adam(course.gen.parameters(), lr=cfg.lr, weight_decay=0.0)
    ours = hw5_gan.ConfiguredGAN(cfg.zdim)
    opt_gen, opt_disc = hw5_gan.make_optimizers(ours, cfg.lr)

    wall, cpu = {"course": [], "ours": []}, {"course": [], "ours": []}
    for round_ in range(args.rounds + 1):
        for name, run in (("course", lambda: course_epoch(course, loader, dopt, gopt, cfg.batch_size)),
                          ("ours", lambda: hw5_gan.train_epoch(ours, opt_gen, opt_disc, images, cfg))):
            tic, cpu_tic = time.perf_counter(), time.process_time()
            run()
            seconds, cpu_seconds = time.perf_counter() - tic, time.process_time() - cpu_tic
            print(f"round {round_} {name}: {seconds:.2f} s, CPU {cpu_seconds:.2f} s" + " (warm-up)" * (round_ == 0))
            if round_:
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
    print(f"load average after {os.getloadavg()}")
    print(f"seconds per epoch over {args.rounds} rounds   fastest   median   median CPU")
    for name, label in (("course", "course loop (GANDataset + DataLoader)"), ("ours", "hw5_gan.train_epoch")):
        print(f"{label:<38}{min(wall[name]):>8.2f}{statistics.median(wall[name]):>9.2f}"
              f"{statistics.median(cpu[name]):>13.2f}")
    print(f"{'speed-up':<38}{min(wall['course']) / min(wall['ours']):>7.2f}x"
          f"{statistics.median(wall['course']) / statistics.median(wall['ours']):>8.2f}x"
          f"{statistics.median(cpu['course']) / statistics.median(cpu['ours']):>12.2f}x")


if __name__ == "__main__":
    main()
