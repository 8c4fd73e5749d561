"""Pass rate of the reference's graded tests under other seeds: are the stochastic checks fair?

    python tests/benchmarks/seed_sweep.py [--seeds 20] [tests/test_vae.py ...]

Runs the graded suite (as the autograder does: isolated, with results.json) once per seed offset
($HW5_SEED_OFFSET shifts every seed the graded tests set through grading.manual_seed) and prints, per rubric
row, how often the reference earned full points. Not part of CI: it runs the graded suite N times.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("paths", nargs="*", help="test files or node ids to sweep [default: all graded tests]")
    args = parser.parse_args()
    passes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for offset in range(args.seeds):
            results = Path(tmp) / f"results_{offset}.json"
            env = {**os.environ, "HW5_SEED_OFFSET": str(1000 * (offset + 1)), "HW5_SUBMISSION": ""}
            subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--results", str(results),
                            *args.paths], cwd=ROOT, env=env, capture_output=True)
            for test in json.loads(results.read_text())["tests"]:
                if not test["output"].startswith("not run"):
                    passes[test["name"]] = passes.get(test["name"], 0) + (test["score"] == test["max_score"])
            print(f"seed offset {1000 * (offset + 1)}: {sum(passes.values())} full-score results so far", flush=True)
    width = max(map(len, passes))
    for name, count in passes.items():
        print(f"{name:{width}s}  {count:3d} / {args.seeds}")
    total = sum(passes.values())
    print(f"{'all graded tests':{width}s}  {total} / {args.seeds * len(passes)} "
          f"({100 * total / (args.seeds * len(passes)):.1f}% pass rate)")


if __name__ == "__main__":
    main()
