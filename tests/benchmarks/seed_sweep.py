"""Pass rate of the reference's graded tests under other seeds: are the stochastic checks fair?

    python tests/benchmarks/seed_sweep.py [--seeds 20] [--jobs 2] [--assignment vae ...]

Grades the reference once per seed offset and assignment, as the autograder does (each test isolated, with
results.json; $HW5_SEED_OFFSET shifts every seed the graded tests set through grading.manual_seed), `--jobs` runs
at a time, and prints, per rubric row, how often the reference earned full points, and the slowest run's time.
Not part of CI: it grades every assignment N times.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import rubric  # noqa: E402
import sandbox  # noqa: E402


def graded(name: str, offset: int, folder: Path, users: sandbox.StudentUsers) -> dict:
    """The reference graded for one assignment with seeds shifted by `offset`: results.json."""
    results = folder / f"{name}_{offset}.json"
    with users.one() as user:
        env = {**os.environ, "HW5_SEED_OFFSET": str(offset), "HW5_SUBMISSION": "", "MPLBACKEND": "Agg", **user}
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"tests/{rubric.ASSIGNMENTS[name].tests}",
                        "--results", str(results), "--assignment", name], cwd=ROOT, env=env, capture_output=True)
    return json.loads(results.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1, help="gradings at a time (each grades on one core)")
    parser.add_argument("--assignment", action="append", choices=sorted(rubric.ASSIGNMENTS),
                        help="[default: every assignment]")
    args = parser.parse_args()
    names = args.assignment or list(rubric.ASSIGNMENTS)
    runs = [(name, 1000 * (k + 1)) for name in names for k in range(args.seeds)]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        users = sandbox.StudentUsers(args.jobs, f"{sandbox.STUDENT_USER}-sweep")
        results = list(pool.map(lambda run: (run[0], graded(*run, Path(tmp), users)), runs))
    for name in names:
        passes: dict[str, int] = {}
        mine = [result for owner, result in results if owner == name]
        for result in mine:
            for test in result["tests"]:
                passes[test["name"]] = passes.get(test["name"], 0) + (test["score"] == test["max_score"])
        width = max(map(len, passes))
        print(f"{name}: slowest run {max(result['execution_time'] for result in mine):.0f} s")
        for row, count in passes.items():
            print(f"  {row:{width}s}  {count:3d} / {args.seeds}")
        total = sum(passes.values())
        print(f"  {'all rows':{width}s}  {total} / {args.seeds * len(passes)} "
              f"({100 * total / (args.seeds * len(passes)):.1f}% full points)")


if __name__ == "__main__":
    main()
