"""Benchmark of hw5_diffusion.py's defaults: train and evaluate on every built-in data set and on an (N, 2) file in
[0, 1]² given with --data, then print each run's distances next to the real-vs-real floor, with the times.

    python tests/benchmarks/bench_diffusion.py                       # all data sets, seed 1234 (~10 minutes)
    python tests/benchmarks/bench_diffusion.py --datasets cs446 file --seeds 1 2 3
    python tests/benchmarks/bench_diffusion.py --threads 2           # torch threads (default: torch's choice)

Not collected by pytest (no test_ prefix). Timings depend on the machine's load: the load average is printed
with every run; measure on a quiet machine. Everything is written to a temporary folder.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import hw5_diffusion  # noqa: E402

FILE = "file"  # the CS446 cloud rescaled into [0, 1]², saved as .npy and given with --data


def unit_square_cloud(n: int, seed: int, folder: Path) -> str:
    """The CS446 cloud moved and shrunk into [0, 1]² (as the course's cs446.npy was), saved as a .npy file."""
    points = hw5_diffusion.sample_glyphs(n, torch.Generator().manual_seed(seed)) / 4.4 + 0.5
    path = folder / "cs446_unit_square.npy"
    np.save(path, points.numpy())
    return str(path)


def bench(dataset: str, seed: int, folder: Path, verbose: bool) -> dict:
    """Train with the defaults (changing only the data and the seed), sample, evaluate: the metrics and times."""
    cfg = hw5_diffusion.Config(seed=seed)
    if dataset == FILE:
        cfg.data = unit_square_cloud(cfg.n_points, seed, folder)
    else:
        cfg.dataset = dataset
    out_dir = folder / f"{dataset}-{seed}"
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stderr(io.StringIO())
    load_before = os.getloadavg()[0]
    with quiet:
        hw5_diffusion.run_training(cfg, out_dir, device="cpu")
        tic = time.perf_counter()
        sm, state, cloud = hw5_diffusion.restore(out_dir, device="cpu")
        lr, _ = hw5_diffusion.sampling_defaults(sm, state, None, None)
        metrics = hw5_diffusion.evaluate_and_save(sm, cloud, state, out_dir, hw5_diffusion.SAMPLING_ITERATIONS, lr,
                                                  seed)
    metrics.update(sample_seconds=time.perf_counter() - tic, load=(load_before, os.getloadavg()[0]))
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=[*hw5_diffusion.DATASETS, FILE],
                        help=f"built-in names and/or '{FILE}' (the [0, 1]² .npy file)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[hw5_diffusion.Config.seed])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--verbose", action="store_true", help="show the trainer's progress output")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = hw5_diffusion.Config()
    print(f"defaults: {cfg.iterations} iterations, batch {cfg.batch_size}, lr {cfg.lr}, {cfg.num_levels} levels, "
          f"{hw5_diffusion.SAMPLING_ITERATIONS} Langevin steps per level; torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs")
    header = (f"{'data':>12} {'seed':>5} {'SW2':>8} {'floor':>8} {'ratio':>6} {'energy':>8} {'floor':>8} "
              f"{'ratio':>6} {'train s':>8} {'sample+eval s':>13} {'load avg':>11}  mode weights")
    print(header)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            for seed in args.seeds:
                m = bench(dataset, seed, Path(tmp), args.verbose)
                rows.append(m)
                modes = f"{m['mode_weights']} (max error {m['mode_weight_error']:.3f})" if "mode_weights" in m else ""
                print(f"{dataset:>12} {seed:>5} {m['sliced_w2']:8.4f} {m['floor_sliced_w2']:8.4f} "
                      f"{m['sliced_w2_vs_floor']:6.2f} {m['energy_distance']:8.4f} {m['floor_energy_distance']:8.4f} "
                      f"{m['energy_distance_vs_floor']:6.2f} {m['train_seconds']:8.1f} {m['sample_seconds']:13.1f} "
                      f"{m['load'][0]:5.2f}-{m['load'][1]:<5.2f}  {modes}", flush=True)
    worst = max(max(m["sliced_w2_vs_floor"], m["energy_distance_vs_floor"]) for m in rows)
    print(f"worst ratio to the floor: {worst:.2f}; slowest training: {max(m['train_seconds'] for m in rows):.1f} s")


if __name__ == "__main__":
    main()
