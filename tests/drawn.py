"""What a student's code drew with matplotlib, so that figures are graded by their content, whatever the
function returns, whatever file name it saves under, and whether it saves or only calls plt.show().

`capture()` records every figure when it is saved or shown, and those still open at the end: the images it holds
(imshow arrays), the points of its scatters with their colours (plt.scatter, or plt.plot with markers and no line),
its quivers and its lines. `tiles()` cuts images into 28x28 digits wherever they sit (one `concat_images` grid, a
torchvision grid, one image per subplot), and places each on one grid of rows and columns across the whole figure.

Captured in a worker, drawings travel to the grader as data (named tuples of numpy arrays become dicts, tests/
sandbox.py), where `received` builds them again.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, NamedTuple

import matplotlib
import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.quiver import Quiver

import hw5_utils

SIDE = 28  # an MNIST digit is SIDE x SIDE pixels


class Image(NamedTuple):
    array: np.ndarray   # (H, W) grey, as drawn (a colour image is reduced to grey)
    box: tuple          # where its axes sit on the figure: (x0, y0, x1, y1) in figure coordinates


class Scatter(NamedTuple):
    points: np.ndarray  # (N, 2)
    colours: np.ndarray  # (N, 4) RGBA, one per point


class Arrows(NamedTuple):
    points: np.ndarray  # (M, 2) where the arrows start
    vectors: np.ndarray  # (M, 2) their directions and lengths, as given to quiver


class Drawing(NamedTuple):
    """One figure as it was when saved or shown (or left open at the end)."""
    images: list
    scatters: list
    arrows: list
    lines: list         # (M, 2) arrays of the points of each line (plt.plot)


def received(data: list) -> list[Drawing]:
    """Drawings sent as data by a worker (lists of dicts of arrays) -> Drawing tuples; malformed data raises."""
    def points(value) -> np.ndarray:
        array = np.asarray(value, dtype=np.float64)
        assert array.ndim == 2, f"drawn data of shape {array.shape}"
        return array

    return [Drawing([Image(np.asarray(image["array"], dtype=np.float64), tuple(float(v) for v in image["box"]))
                     for image in drawing["images"]],
                    [Scatter(points(scatter["points"]), points(scatter["colours"])) for scatter in drawing["scatters"]],
                    [Arrows(points(arrows["points"]), points(arrows["vectors"])) for arrows in drawing["arrows"]],
                    [points(line) for line in drawing["lines"]]) for drawing in data]


def _marked(line: Line2D) -> bool:
    """Whether a plt.plot line shows a marker at each of its points (plt.plot(x, y, ".") or marker="."): its points
    are a scatter plot, whether or not a line joins them."""
    return line.get_marker() not in (None, "None", "none", "", " ")


def _joined(line: Line2D) -> bool:
    return line.get_linestyle() not in ("None", "none", "", " ")


def _grey(array: np.ndarray) -> np.ndarray:
    array = np.ma.getdata(array).astype(np.float64)
    if array.ndim == 3:  # RGB(A): grey as drawn
        array = array[..., :3].mean(-1)
    return array


def snapshot(fig: Figure) -> Drawing:
    """The content of a figure now."""
    images, scatters, arrows, lines = [], [], [], []
    for ax in fig.axes:
        box = tuple(ax.get_position().extents)
        images += [Image(_grey(image.get_array()), box) for image in ax.get_images() if image.get_array() is not None]
        for collection in ax.collections:
            if isinstance(collection, Quiver):
                arrows.append(Arrows(np.column_stack([np.ravel(collection.X), np.ravel(collection.Y)]),
                                     np.column_stack([np.ravel(collection.U), np.ravel(collection.V)])))
            elif isinstance(collection, PathCollection):
                points = np.asarray(collection.get_offsets(), dtype=np.float64).reshape(-1, 2)
                collection.update_scalarmappable()  # colours given as values (c=labels, cmap) become RGBA now
                colours = np.asarray(collection.get_facecolors(), dtype=np.float64).reshape(-1, 4)
                if len(points) and len(colours):
                    scatters.append(Scatter(points, colours[np.arange(len(points)) % len(colours)]))
        for line in ax.get_lines():
            points = np.column_stack([np.ravel(line.get_xdata()), np.ravel(line.get_ydata())]).astype(np.float64)
            if _marked(line):
                face = line.get_markerfacecolor()
                colour = to_rgba(line.get_color() if face in (None, "none", "None") else face)
                scatters.append(Scatter(points, np.tile(colour, (len(points), 1))))
            if _joined(line):
                lines.append(points)
    return Drawing(images, scatters, arrows, lines)


def _signature(drawing: Drawing) -> tuple:
    return tuple((part.shape, float(np.nansum(part))) for part in
                 [image.array for image in drawing.images] + [s.points for s in drawing.scatters]
                 + [a.vectors for a in drawing.arrows] + drawing.lines)


@contextlib.contextmanager
def capture(module=None) -> Iterator[list]:
    """Record the figures the code in the block draws: yields a list that receives a Drawing per figure drawn (each
    distinct state of a figure saved or shown; figures never saved or shown, as they are at the end).

    plt.show() draws nothing and never blocks; plt.imsave and matplotlib.image.imsave count as a figure with one
    image. Figures open before the block are closed first. When the course's concat_images (hw5_utils', or `module`'s
    own name for it) is given more images than its grid holds, which it leaves out as the course's does, the whole
    grid the student prepared is recorded too, as a figure of its own (33 interpolation images for a 3 x 10 grid).
    """
    plt.close("all")
    drawings: list = []
    seen: dict = {}  # id of a figure -> signature of its last recorded state

    def record(fig: Figure) -> None:
        drawing = snapshot(fig)
        signature = _signature(drawing)
        if seen.get(id(fig)) != signature:
            seen[id(fig)] = signature
            drawings.append(drawing)

    original_savefig, original_show = Figure.savefig, plt.show
    original_imsave = matplotlib.image.imsave  # plt.imsave calls it, and so does savefig for a PNG
    saving = []  # non-empty while a figure is being saved

    def savefig(self, *args, **kwargs):
        record(self)
        saving.append(self)
        try:
            return original_savefig(self, *args, **kwargs)
        finally:
            saving.pop()

    def show(*args, **kwargs):
        for number in plt.get_fignums():
            record(plt.figure(number))

    def imsave(fname, arr, *args, **kwargs):
        if not saving:  # the student's own imsave, not savefig writing a PNG
            drawings.append(Drawing([Image(_grey(np.asarray(arr)), (0.0, 0.0, 1.0, 1.0))], [], [], []))
        return original_imsave(fname, arr, *args, **kwargs)

    original_concat = hw5_utils.concat_images

    def concat_images(images, row, col, padding=3):
        grid = original_concat(images, row, col, padding)
        if len(images) > row * col:
            whole = _whole_grid(original_concat, images, row, padding)
            drawings.append(Drawing([Image(whole, (0.0, 0.0, 1.0, 1.0))], [], [], []))
        return grid

    named = module is not None and getattr(module, "concat_images", None) is original_concat
    Figure.savefig, plt.show, matplotlib.image.imsave = savefig, show, imsave
    hw5_utils.concat_images = concat_images
    if named:
        module.concat_images = concat_images
    try:
        yield drawings
    finally:
        Figure.savefig, plt.show, matplotlib.image.imsave = original_savefig, original_show, original_imsave
        hw5_utils.concat_images = original_concat
        if named:
            module.concat_images = original_concat
        for number in plt.get_fignums():
            record(plt.figure(number))
        plt.close("all")


def _whole_grid(concat_images, images, row: int, padding: int) -> np.ndarray:
    """Every one of images in the course's column-major grid of `row` rows (blank cells filling the last column)."""
    digits = [hw5_utils.array_to_image(image) for image in images]
    cols = -(-len(digits) // row)
    digits += [np.zeros((SIDE, SIDE))] * (row * cols - len(digits))
    return concat_images(digits, row, cols, padding)


# ----------------------------------------------------------------------------------------------------
# Digits in images


class Tile(NamedTuple):
    pixels: np.ndarray  # (28, 28), scaled to [0, 1]
    row: int            # its row and column on the figure's grid of digits
    col: int


def _layouts(height: int, width: int) -> Iterator[tuple[int, int, int, int]]:
    """(rows, cols, padding, border) that fit SIDE x SIDE digits into an image of height x width: rows digits
    with padding between them, and a border of 0 (concat_images) or the padding (torchvision's make_grid)."""
    for padding in range(11):
        for border in sorted({0, padding}):
            rows, rest_r = divmod(height - 2 * border + padding, SIDE + padding)
            cols, rest_c = divmod(width - 2 * border + padding, SIDE + padding)
            if rows >= 1 and cols >= 1 and not rest_r and not rest_c:
                yield rows, cols, padding, border


def split(array: np.ndarray) -> list[tuple[int, int, np.ndarray]] | None:
    """An image holding SIDE x SIDE digits on a grid separated by constant gutters -> [(row, col, digit)], digits
    scaled to [0, 1] (0-255 images divided by 255); None if it holds no such grid."""
    array = np.nan_to_num(array)
    scale = 255.0 if array.max() > 1.5 else 1.0
    for rows, cols, padding, border in _layouts(*array.shape):
        step = SIDE + padding
        mask = np.ones(array.shape, bool)
        digits = []
        for i in range(rows):
            for j in range(cols):
                top, left = border + i * step, border + j * step
                mask[top:top + SIDE, left:left + SIDE] = False
                digits.append((i, j, np.clip(array[top:top + SIDE, left:left + SIDE] / scale, 0, 1)))
        gutter = array[mask]
        if gutter.size == 0 or np.ptp(gutter) < 1e-6:
            return digits
    return None


def _clusters(values: list[float], tolerance: float) -> list[int]:
    """The index of each value's cluster, clusters in increasing order of value."""
    order = np.argsort(values)
    index, labels, last = -1, [0] * len(values), None
    for k in order:
        if last is None or values[k] - last > tolerance:
            index += 1
        labels[k], last = index, values[k]
    return labels


def tiles(drawing: Drawing) -> list[Tile]:
    """Every digit drawn in a figure, on one grid across the figure: row 0 at the top, column 0 on the left."""
    found = []  # (x, y, width, height of a digit's cell, pixels) in figure coordinates, y upwards
    for image in drawing.images:
        digits = split(image.array)
        if not digits:
            continue
        rows, cols = digits[-1][0] + 1, digits[-1][1] + 1
        x0, y0, x1, y1 = image.box
        width, height = (x1 - x0) / cols, (y1 - y0) / rows
        found += [(x0 + (j + 0.5) * width, y1 - (i + 0.5) * height, width, height, pixels)
                  for i, j, pixels in digits]
    if not found:
        return []
    cell = min(min(w, h) for _, _, w, h, _ in found)
    cols = _clusters([x for x, *_ in found], cell / 2)
    rows = _clusters([-y for _, y, *_ in found], cell / 2)
    return [Tile(pixels, row, col) for (*_, pixels), row, col in zip(found, rows, cols)]
