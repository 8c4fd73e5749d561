"""Time `autograder.py grade-all` on a class of 20 course-style submissions, one at a time and with --jobs 2.

    python tests/benchmarks/bench_grade_all.py [--assignment gan] [--students 20]

The class is made from tests/corpus/<assignment>/: its correct files, its flawed ones and its starter, repeated
(each copy resubmitted with a comment, so that every folder differs) until there are --students folders. Every
row is graded, with the rubric's own time limits.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(TESTS)]

import rubric  # noqa: E402


def corpus_texts(name: str) -> list[str]:
    """The corpus files of an assignment and each of its flaws applied to its base file."""
    folder = TESTS / "corpus" / name
    texts = [path.read_text() for path in sorted(folder.glob("*.py")) if path.name != "flaws.py"]
    spec = importlib.util.spec_from_file_location("flaws", folder / "flaws.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for flaw in module.FLAWS:
        texts.append((folder / flaw["base"]).read_text().replace(flaw["old"], flaw["new"]))
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="gan", choices=sorted(rubric.ASSIGNMENTS))
    parser.add_argument("--students", type=int, default=20)
    args = parser.parse_args()
    assignment = rubric.ASSIGNMENTS[args.assignment]
    texts = corpus_texts(assignment.name)
    with tempfile.TemporaryDirectory() as tmp:
        submissions = Path(tmp) / "class"
        for k in range(args.students):
            folder = submissions / f"student{k:03d}"
            folder.mkdir(parents=True)
            (folder / f"{assignment.script}.py").write_text(texts[k % len(texts)] + f"\n# copy {k}\n")
        for jobs in (1, 2):
            command = [sys.executable, str(TESTS / "autograder.py"), "grade-all", "--submissions", str(submissions),
                       "--assignment", assignment.name, "--out", str(Path(tmp) / "out"), "--jobs", str(jobs),
                       "--force"]
            tic = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            seconds = time.perf_counter() - tic
            assert done.returncode == 0, done.stderr[-2000:]
            print(f"--jobs {jobs}: {args.students} students in {seconds:.0f} s "
                  f"({seconds / args.students:.1f} s a student)")
        print(done.stdout)


if __name__ == "__main__":
    main()
