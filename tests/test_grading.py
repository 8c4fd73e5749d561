"""The grader's parts on their own: which top-level statements of a student's file run when it is graded, and how
figures are read back (tests/drawn.py) whatever their layout."""
from __future__ import annotations

import ast
import sys
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torchvision.utils import make_grid

import drawn
import grading
import hw5_utils

STUDENT = textwrap.dedent('''
    """The student's docstring."""
    from __future__ import annotations
    import argparse
    try:
        import cv2
    except ImportError:
        cv2 = None
    from hw5_utils import *
    DEVICE = "cpu"
    SIZES: list = [1, 2]
    if DEVICE == "cpu":
        THREADS = 1

    def helper(x: int) -> int:
        return x + 1

    class VAE:
        def __init__(self, args):
            self.args = args

    def parse_args():
        parser = argparse.ArgumentParser()
        parser.add_argument("--seed", type=int, default=1)
        return parser.parse_args()

    def main():
        raise SystemExit("main ran")

    VALUE = helper(1)
    args = parse_args()
    vae = VAE(args)
    data = np.load("cs446.npy")
    torch.manual_seed(args.seed)
    for epoch in range(3):
        print(epoch)
    with open("log.txt", "w") as f:
        f.write("x")
    main()
    BROKEN = 1 / 0
    if __name__ == "__main__":
        main()
''')


def test_top_level_plan_runs_definitions_and_simple_assignments_only():
    run, skipped = grading.top_level_plan(ast.parse(STUDENT))
    lines = STUDENT.splitlines()
    assert [lines[node.lineno - 1].strip() for node in skipped] == [
        "args = parse_args()", "vae = VAE(args)", 'data = np.load("cs446.npy")', "torch.manual_seed(args.seed)",
        "for epoch in range(3):", 'with open("log.txt", "w") as f:', "main()"]
    assert [lines[node.lineno - 1].strip() for node in run] == [
        '"""The student\'s docstring."""', "from __future__ import annotations", "import argparse", "try:",
        "from hw5_utils import *", 'DEVICE = "cpu"', "SIZES: list = [1, 2]", 'if DEVICE == "cpu":',
        "def helper(x: int) -> int:", "class VAE:", "def parse_args():", "def main():", "VALUE = helper(1)",
        "BROKEN = 1 / 0"]


def test_a_student_file_is_imported_with_its_top_level_training_skipped(tmp_path, monkeypatch, capsys):
    path = tmp_path / "hw5_vae.py"
    path.write_text(STUDENT)
    monkeypatch.setenv(grading.SUBMISSION_ENV, str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["pytest", "--results", "x.json"])  # the grader's options, never the student's
    monkeypatch.delitem(sys.modules, "hw5_vae", raising=False)
    module = grading.load_script("hw5_vae")
    try:
        assert (module.DEVICE, module.THREADS, module.VALUE, module.helper(2)) == ("cpu", 1, 2, 3)
        assert module.parse_args().seed == 1  # sys.argv holds the script alone
        broken = STUDENT.splitlines().index("BROKEN = 1 / 0") + 1
        assert not hasattr(module, "BROKEN") and f"line {broken} of hw5_vae.py failed" in capsys.readouterr().err
        assert not (tmp_path / "log.txt").exists()
        note = grading.skipped_note("hw5_vae")
        assert "`args = parse_args()`" in note and "and 2 more" in note and '__name__ == "__main__"' in note
    finally:
        del sys.modules["hw5_vae"]


def test_a_guarded_file_gets_no_note(tmp_path, monkeypatch):
    (tmp_path / "hw5_gan.py").write_text('import torch\n\nif __name__ == "__main__":\n    print(1)\n')
    monkeypatch.setenv(grading.SUBMISSION_ENV, str(tmp_path))
    assert grading.skipped_note("hw5_gan") == ""


# ----------------------------------------------------------------------------------------------------
# Figures read back


def digits(n: int) -> np.ndarray:
    """n distinct 28x28 'digits' (noise in [0.1, 0.9], so that no gutter value occurs inside)."""
    return np.random.default_rng(n).uniform(0.1, 0.9, size=(n, 28, 28))


def test_the_submitted_script_is_a_file_of_the_submission_never_a_link_or_a_folder(tmp_path):
    # as root the grader copies the script where the student user can read it: a link to the graded tests must not be
    # taken for the script (nor may a folder or a dangling link of that name break the grading)
    secret = tmp_path / "test_grade_gan.py"
    secret.write_text("EXPECTED = 1\n")
    submission = tmp_path / "submission"
    (submission / "deeper" / "hw5_gan.py").mkdir(parents=True)
    (submission / "hw5_gan.py").symlink_to(secret)
    (submission / "deeper" / "more").mkdir()
    (submission / "deeper" / "more" / "hw5_gan.py").symlink_to(tmp_path / "nowhere.py")
    with pytest.raises(grading.MissingScript, match="not a link or a folder"):
        grading.submitted_file("hw5_gan", submission)
    real = submission / "deeper" / "more" / "again" / "hw5_gan.py"
    real.parent.mkdir()
    real.write_text("x = 1\n")
    assert grading.submitted_file("hw5_gan", submission) == real


@pytest.mark.parametrize("row, col, padding", [(10, 2, 3), (2, 10, 3), (3, 11, 0), (1, 11, 5), (1, 1, 3)])
def test_split_finds_every_digit_of_a_concat_images_grid(row, col, padding):
    images = digits(row * col)
    found = drawn.split(hw5_utils.concat_images(images.reshape(-1, 784), row, col, padding))
    assert len(found) == row * col
    for i, j, pixels in found:  # concat_images fills column by column
        np.testing.assert_allclose(pixels, images[i + j * row], atol=1e-6)


def test_split_reads_a_torchvision_grid_and_0_255_images():
    images = torch.tensor(digits(6), dtype=torch.float32).unsqueeze(1)
    grid = make_grid(images, nrow=3, padding=2, pad_value=1.0)[0].numpy()  # a border around the outside too
    found = drawn.split((grid * 255).round())
    assert [(i, j) for i, j, _ in found] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    np.testing.assert_allclose(found[4][2], images[4, 0].numpy(), atol=1 / 255)
    assert drawn.split(np.random.default_rng(0).random((40, 41))) is None


def test_capture_reads_figures_saved_shown_or_left_open_in_any_layout(tmp_path):
    """One concat_images grid saved, one image per subplot shown, a scatter left open: each figure's digits land on
    one grid of rows and columns across the figure."""
    images = digits(6)
    with drawn.capture() as drawings:
        plt.imshow(hw5_utils.concat_images(images.reshape(-1, 784), 2, 3), cmap="gray")
        plt.savefig(tmp_path / "grid.png")
        plt.close()
        fig, axes = plt.subplots(3, 2)
        for k, ax in enumerate(axes.flat):
            ax.imshow(images[k])
        plt.show()
        plt.figure()
        plt.scatter([1, 2, 3], [4, 5, 6], c=[0, 1, 2], cmap="tab10")
    assert (tmp_path / "grid.png").is_file() and len(drawings) == 3
    for drawing, rows in zip(drawings[:2], (2, 3)):
        tiles = drawn.tiles(drawing)
        assert len(tiles) == 6 and len({tile.row for tile in tiles}) == rows
    by_place = {(tile.row, tile.col): tile.pixels for tile in drawn.tiles(drawings[1])}
    np.testing.assert_allclose(by_place[(1, 0)], images[2])  # subplot (1, 0) is the third image
    (scatter,) = drawings[2].scatters
    np.testing.assert_allclose(scatter.points, [[1, 4], [2, 5], [3, 6]])
    assert len({tuple(colour) for colour in scatter.colours}) == 3
    assert plt.get_fignums() == []
