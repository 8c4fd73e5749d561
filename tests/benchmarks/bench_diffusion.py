"""Benchmark of hw5_diffusion.py's defaults and samplers: train with the defaults on every built-in data set, on the
CS446 cloud in [0, 1]² and on mixtures of Gaussians of unequal weights (three drawn from a seed, and the
0.6 / 0.3 / 0.1 mixture of issue 26; these given as an (N, 2) file with --data, as a new user would), sample each
trained model with each sampler, and print the distances to fresh draws of the true distribution next to their
floor, each mode's share next to its weight, and the times. Each run draws 20 000 samples and compares them with 80
references, twice what `evaluate` takes: between two samplers, `evaluate`'s noise (about ±0.15x a run) hid which
was closer.

    python tests/benchmarks/bench_diffusion.py                          # everything, seed 1234 (~30 minutes)
    python tests/benchmarks/bench_diffusion.py --datasets cs446 mixture-1 --samplers pc
    python tests/benchmarks/bench_diffusion.py --sampling-seeds 1 2 3    # each sampler's mean over 3 sampling seeds
    python tests/benchmarks/bench_diffusion.py --threads 1               # torch threads (default: torch's choice)

A file's own `evaluate` compares samples with its held-out points (`held-out` column); the bench compares them
with fresh draws of the distribution the file was drawn from, as for a built-in set. Not collected by pytest (no
test_ prefix). Timings depend on the machine's load: the load average is printed with every run; measure on a
quiet machine. Everything is written to a temporary folder.
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
MIXTURES = ("mixture-1", "mixture-2", "mixture-3")  # random_mixture(1), (2), (3), given with --data
THREE_MODES = "three-modes"  # issue 26's 0.6 / 0.3 / 0.1 mixture, given with --data
THREE_MODES_MIXTURE = ([[0.2, 0.3], [0.8, 0.4], [0.5, 0.85]], [0.6, 0.3, 0.1], [0.05, 0.08, 0.04])
FILES = (FILE, *MIXTURES, THREE_MODES)  # the data sets given as .npy files
POINTS = "points"  # a row for the training points, resampled: what a model that learned them exactly would score


def random_mixture(seed: int) -> tuple:
    """3 to 5 Gaussian modes in [0, 1]², all drawn from `seed`: spreads 0.02-0.06, centres at least 8 of the larger
    spread apart (so that a sample's nearest centre is its mode), weights from a flat Dirichlet, none below 0.05.
    -> hw5_diffusion.gaussian_mixture's (sampler, centers (K, 2), weights (K,))."""
    generator = torch.Generator().manual_seed(seed)
    k = int(torch.randint(3, 6, (1,), generator=generator))
    stds = 0.02 + 0.04 * torch.rand(k, generator=generator)
    apart = 8 * torch.maximum(stds[:, None], stds[None])
    while True:
        centers = 0.1 + 0.8 * torch.rand(k, 2, generator=generator)
        if bool((torch.cdist(centers, centers) + 9 * torch.eye(k) >= apart).all()):
            break
    while True:
        weights = -torch.rand(k, generator=generator).log()  # Exp(1) draws, normalized: a flat Dirichlet
        weights /= weights.sum()
        if weights.min() >= 0.05:
            return hw5_diffusion.gaussian_mixture(centers, weights, stds)


def unit_square_glyphs(n: int, generator: torch.Generator) -> torch.Tensor:
    """The CS446 cloud moved and shrunk into [0, 1]² (as the course's cs446.npy was) -> (n, 2)."""
    return hw5_diffusion.sample_glyphs(n, generator) / 4.4 + 0.5


def truth(dataset: str) -> hw5_diffusion.PointCloud:
    """The distribution a data set is drawn from: its generator and, for a mixture, its modes (no points)."""
    if dataset == FILE:
        return hw5_diffusion.PointCloud(FILE, torch.empty(0, 2), unit_square_glyphs)
    if dataset in (*MIXTURES, THREE_MODES):
        sampler, centers, weights = hw5_diffusion.gaussian_mixture(*THREE_MODES_MIXTURE) \
            if dataset == THREE_MODES else random_mixture(int(dataset.split("-")[1]))
        return hw5_diffusion.PointCloud(dataset, torch.empty(0, 2), sampler, (centers, weights))
    return hw5_diffusion.builtin_cloud(dataset, torch.empty(0, 2))


def config(dataset: str, seed: int, folder: Path) -> hw5_diffusion.Config:
    """The default settings with this data set and seed; a file's points are drawn from its truth with the seed."""
    if dataset not in FILES:
        return hw5_diffusion.Config(dataset=dataset, seed=seed)
    cfg = hw5_diffusion.Config(seed=seed)
    path = folder / f"{dataset}-{seed}.npy"
    np.save(path, truth(dataset).draw(cfg.n_points, torch.Generator().manual_seed(seed)).numpy())
    cfg.data = str(path)
    return cfg


def bench(dataset: str, seed: int, samplers: list[str], sampling_seeds: list[int], folder: Path,
          verbose: bool, batches: int = 2 * hw5_diffusion.EVAL_BATCHES, draws: int = 2 * hw5_diffusion.EVAL_DRAWS
          ) -> list[dict]:
    """Train with the defaults (changing only the data and the seed), then for each sampler and sampling seed draw
    `batches` x EVAL_SIZE samples and evaluate them against `draws` references (twice what `evaluate` takes: half
    the noise of a comparison), and as many of the training points, resampled (sampler POINTS): one dict of ratios,
    shares and times per run."""
    out_dir = folder / f"{dataset}-{seed}"
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stderr(io.StringIO())
    with quiet:
        state = hw5_diffusion.run_training(config(dataset, seed, folder), out_dir, device="cpu")
        sm, saved, cloud = hw5_diffusion.restore(out_dir, device="cpu")
    runs = []
    n = batches * hw5_diffusion.EVAL_SIZE
    for sampler in (POINTS, *samplers):
        for sampling_seed in sampling_seeds:
            load_before = os.getloadavg()[0]
            tic = time.perf_counter()
            if sampler == POINTS:
                generator = torch.Generator().manual_seed(sampling_seed)
                samples = cloud.points[torch.randint(len(cloud.points), (n,), generator=generator)]
            else:
                _, lr, _ = hw5_diffusion.sampling_defaults(sm, saved, sampler, None, None)
                samples, _ = hw5_diffusion.generate(sm, n, sampler, hw5_diffusion.SAMPLING_ITERATIONS, lr,
                                                    sampling_seed)
            seconds = time.perf_counter() - tic
            metrics = hw5_diffusion.evaluate(samples, truth(dataset), seed=sampling_seed + 2, draws=draws)
            run = dict(dataset=dataset, seed=seed, sampler=sampler, sliced_w2=metrics["sliced_w2_vs_floor"],
                       energy=metrics["energy_distance_vs_floor"], train_seconds=state["train_seconds"],
                       sample_seconds=seconds, load=(load_before, os.getloadavg()[0]))
            if cloud.held_out is not None:  # the file's own evaluation, as `evaluate` reports it
                own = hw5_diffusion.evaluate(samples, cloud, seed=sampling_seed + 2, draws=draws)
                run["held_out"] = (own["sliced_w2_vs_floor"], own["energy_distance_vs_floor"])
            if "mode_weights" in metrics:
                run.update(shares=metrics["mode_weights"], weights=metrics["true_mode_weights"])
            runs.append(run)
    return runs


def means(runs: list[dict]) -> dict:
    """The runs' mean ratios, held-out ratios, mode shares and times; the largest error of the mean shares."""
    mean = lambda key: np.mean([run[key] for run in runs], 0)  # noqa: E731
    row = {key: mean(key) for key in ("sliced_w2", "energy", "train_seconds", "sample_seconds")}
    row["load"] = (min(run["load"][0] for run in runs), max(run["load"][1] for run in runs))
    if "held_out" in runs[0]:
        row["held_out"] = "{:.2f} / {:.2f}".format(*mean("held_out"))
    if "shares" in runs[0]:
        row.update(shares=mean("shares"), weights=np.asarray(runs[0]["weights"]))
        row["share_error"] = np.abs(row["shares"] - row["weights"]).max()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=[*hw5_diffusion.DATASETS, *FILES],
                        help=f"built-in names, '{FILE}' (the [0, 1]² .npy file), mixture-SEED (a mixture drawn "
                             f"from SEED) and/or {THREE_MODES} (weights 0.6 / 0.3 / 0.1), the last two as .npy files")
    parser.add_argument("--seeds", nargs="+", type=int, default=[hw5_diffusion.Config.seed], help="training seeds")
    parser.add_argument("--samplers", nargs="+", default=list(hw5_diffusion.SAMPLERS),
                        choices=hw5_diffusion.SAMPLERS)
    parser.add_argument("--sampling-seeds", nargs="+", type=int, default=None,
                        help="seeds to sample each trained model with (default: its training seed, as `sample` does)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--verbose", action="store_true", help="show the trainer's progress output")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = hw5_diffusion.Config()
    print(f"defaults: {cfg.iterations} iterations, batch {cfg.batch_size}, lr {cfg.lr}, {cfg.num_levels} levels, "
          f"{hw5_diffusion.SAMPLING_ITERATIONS} sampling steps per level; torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs. Ratios to the floor of fresh draws (means over the sampling seeds); held-out: a "
          f"file's own evaluation, SW2 / energy; {POINTS}: the training points, resampled")
    print(f"{'data':>12} {'seed':>5} {'sampler':>8} {'SW2':>5} {'energy':>6} {'held-out':>11} {'train s':>7} "
          f"{'sample s':>8} {'load avg':>11}  mode shares (weights)")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            for seed in args.seeds:
                mine = bench(dataset, seed, args.samplers, args.sampling_seeds or [seed], Path(tmp), args.verbose)
                runs += mine
                for sampler in (POINTS, *args.samplers):
                    m = means([run for run in mine if run["sampler"] == sampler])
                    print(f"{dataset:>12} {seed:>5} {sampler:>8} {m['sliced_w2']:5.2f} {m['energy']:6.2f} "
                          f"{m.get('held_out', ''):>11} {m['train_seconds']:7.1f} {m['sample_seconds']:8.1f} "
                          f"{m['load'][0]:5.2f}-{m['load'][1]:<5.2f}  {modes(m)}", flush=True)
    print("\nMeans over every training and sampling seed:\n\n| data | sampler | sliced W2 / floor | energy / floor "
          "| held-out (--data) | mode shares (weights); largest error |\n|---|---|---|---|---|---|")
    for dataset in args.datasets:
        for sampler in (POINTS, *args.samplers):
            m = means([run for run in runs if run["dataset"] == dataset and run["sampler"] == sampler])
            print(f"| {dataset} | {sampler} | {m['sliced_w2']:.2f} | {m['energy']:.2f} | {m.get('held_out', '')} | "
                  f"{modes(m)} |")


def modes(row: dict) -> str:
    """'0.545 / 0.303 / 0.152 (0.550 / 0.300 / 0.150); 0.005': the mean shares, the weights, the largest error."""
    if "shares" not in row:
        return ""
    return (" / ".join(f"{share:.3f}" for share in row["shares"]) + " (" +
            " / ".join(f"{weight:.3f}" for weight in row["weights"]) + f"); {row['share_error']:.3f}")


if __name__ == "__main__":
    main()
