"""Figures for mnistlab.eda: class counts, sample grid, mean images, outliers.

Drawn on bare Agg ``Figure`` objects rather than pyplot, so that no global figure state or
backend switch leaks into the caller (the EDA may run inside a notebook or a training process).
The functions take plain arrays and captions, not the EDA's own types, so they stay easy to test.
Images are (H, W, C) of any size: one channel is drawn in gray, three in colour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from mnistlab.plotting import save_png

HIGHLIGHT = "yellow"  # the study highlighted its outliers in yellow
SPLIT_COLORS = {"train": "C0", "val": "C1", "test": "C2"}
PIXEL_INCHES = 0.8 / 28  # a 28-pixel image is 0.8 in: its caption at 7 pt fits above it
# an image's longer side on the page, in inches: an 8-pixel one still holds its caption, a
# 224-pixel one does not make a 10-class grid metres wide
TILE_INCHES = (0.6, 1.6)
CAPTION_POINTS = 7
GRAY = colormaps["gray"].with_extremes(bad="white")  # NaN = empty cell: page colour


def pixel_inches(height: int, width: int) -> float:
    """The size of one image pixel on the page: PIXEL_INCHES, unless the image gets too small
    or too large that way."""
    side = max(height, width)
    return float(np.clip(side * PIXEL_INCHES, *TILE_INCHES)) / side


@dataclass(frozen=True)
class Cells:
    """Mosaic spacing in inches (text is the same size whatever the image's): between tiles,
    and the caption band above each."""

    gap: float
    caption: float

    def pixels(self, height: int, width: int) -> tuple[int, int]:
        """The spacing in pixels of (height, width) images, as the mosaic draws it."""
        pixel = pixel_inches(height, width)
        return round(self.gap / pixel), round(self.caption / pixel)

    def inches(self, rows: int, columns: int, height: int, width: int) -> tuple[float, float]:
        gap, caption = self.pixels(height, width)
        pixel = pixel_inches(height, width)
        return columns * (width + gap) * pixel, rows * (height + caption) * pixel


SAMPLE_CELLS = Cells(gap=6 * PIXEL_INCHES, caption=9 * PIXEL_INCHES)  # one caption line
# two caption lines, "#12345 (train)" wide
OUTLIER_CELLS = Cells(gap=14 * PIXEL_INCHES, caption=14 * PIXEL_INCHES)


@dataclass(frozen=True)
class Tile:
    """One image of a grid, with the caption drawn above it."""

    image: np.ndarray  # (H, W, C) uint8
    caption: str


@dataclass(frozen=True)
class ClassOutliers:
    """What outliers.png shows of one class: its ink distribution and its outliers."""

    name: str
    ink: np.ndarray  # every image's ink, for the box
    ink_outlier_ink: np.ndarray  # the images beyond the IQR fences, drawn as yellow dots
    farthest_ink: np.ndarray  # the images farthest from the class mean, drawn as yellow stars
    farthest_tiles: Sequence[Tile]
    ink_tiles: Sequence[Tile]  # the most extreme ink outliers (at most as many as farthest_tiles)


def _tilted(names: Sequence[str]) -> bool:
    return len(names) > 20 or any(len(n) > 5 for n in names)


def _show(ax: Axes, image: np.ndarray, vmax: float, **kwargs: object) -> AxesImage:
    """An (H, W, C) image with values in [0, vmax]: one channel in gray, three as RGB; NaN
    (an empty cell) is the page's white either way."""
    if image.shape[-1] == 1:
        return ax.imshow(image[..., 0], cmap=GRAY, vmin=0, vmax=vmax, **kwargs)
    return ax.imshow(np.nan_to_num(image / vmax, nan=1.0).clip(0, 1), **kwargs)


def _class_ticks(ax: Axes, names: Sequence[str]) -> None:
    """Class names under each group; long item names (Fashion-MNIST's) or many classes are
    tilted to stay apart."""
    tilted = _tilted(names)
    ax.set_xticks(np.arange(len(names)), names, rotation=25 if tilted else 0,
                  ha="right" if tilted else "center")


def plot_class_counts(counts: Mapping[str, Sequence[int]], classes: Sequence[str], title: str,
                      path: Path) -> None:
    """Grouped bars: per class, how many images each split holds (imbalance shows at a glance).
    0.4 in per bar beyond 12 in, so that its count stays readable, up to 48 in."""
    inches = float(np.clip(0.4 * len(classes) * len(counts), 12, 48))
    fig = Figure(figsize=(inches, 5.5), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(classes))
    width = 0.8 / len(counts)
    for i, (split, values) in enumerate(counts.items()):
        offset = (i - (len(counts) - 1) / 2) * width
        bars = ax.bar(x + offset, values, width, color=SPLIT_COLORS.get(split, f"C{i}"),
                      label=f"{split} ({sum(values):,} images)")
        ax.bar_label(bars, fontsize=7, rotation=90, padding=2)
    ax.set_ylim(0, max(max(v) for v in counts.values()) * 1.2 or 1)
    _class_ticks(ax, classes)
    ax.set_xlabel("class")
    ax.set_ylabel("number of images")
    ax.set_title(f"{title}: images per class in each split")
    ax.legend(loc="upper left", ncols=len(counts))
    ax.grid(axis="y", alpha=0.3)
    save_png(fig, path)


def _mosaic(ax: Axes, rows: Sequence[Sequence[Tile]], names: Sequence[str], columns: int,
            cells: Cells, shape: tuple[int, int, int], frame: str | None = None) -> None:
    """One row of captioned (H, W, C) = `shape` images per class, class name on the left, drawn
    as a single image.

    One imshow instead of one Axes per tile: a 10 x 10 grid of Axes costs seconds to lay out.
    """
    side_h, side_w, channels = shape
    gap, caption = cells.pixels(side_h, side_w)
    width, height = side_w + gap, side_h + caption
    tiles = np.full((len(rows), columns, height, width, channels), np.nan)
    for r, row in enumerate(rows):
        if row:
            tiles[r, : len(row), caption:, gap // 2 : gap // 2 + side_w] = [t.image for t in row]
    _show(ax, tiles.transpose(0, 2, 1, 3, 4).reshape(len(rows) * height, columns * width,
                                                     channels),
          255, interpolation="nearest")
    boxes = []
    for r, row in enumerate(rows):
        for c, t in enumerate(row):
            ax.text((c + 0.5) * width - 0.5, r * height + caption - 1.5, t.caption,
                    ha="center", va="bottom", fontsize=CAPTION_POINTS, linespacing=1.0)
            boxes.append(Rectangle((c * width + gap // 2 - 0.5, r * height + caption - 0.5),
                                   side_w, side_h))
        if not row:
            ax.text(width / 2, (r + 0.5) * height + caption / 2, "none", ha="center", va="center")
    if frame:
        ax.add_collection(PatchCollection(boxes, facecolor="none", edgecolor=frame, linewidth=1.5))
    ax.set_yticks((np.arange(len(rows)) + 0.5) * height + caption / 2 - 0.5, names)
    ax.set_xticks([])
    ax.tick_params(left=False)
    ax.set_frame_on(False)


def plot_samples(rows: Sequence[Sequence[Tile]], classes: Sequence[str], title: str,
                 source: str, path: Path) -> None:
    """What each class looks like: a row of random images per class; `source` is what the
    captions' positions count in ("the official training file")."""
    columns = max(1, max(len(r) for r in rows))
    shape = rows[0][0].image.shape  # every class has images
    width, height = SAMPLE_CELLS.inches(len(rows), columns, *shape[:2])
    fig = Figure(figsize=(max(6.0, width + 1.8), height + 1.0), layout="constrained")
    ax = fig.subplots()
    _mosaic(ax, rows, classes, columns, SAMPLE_CELLS, shape)
    ax.set_title(f"{title}: {columns} random images per class")
    ax.set_xlabel(f"caption: #position in {source}")
    ax.set_ylabel("class")
    save_png(fig, path)


def plot_mean_images(means: Sequence[np.ndarray], pixel_mean: Sequence[float],
                     pixel_std: Sequence[float], counts: Sequence[int], classes: Sequence[str],
                     title: str, path: Path) -> None:
    """Each class's average (H, W, C) image (the study's "average pixel frequency"), on one shared
    scale: gray with a colour bar, or each channel's mean drawn as RGB. Five columns up to 25
    classes, then a square grid; 2.5 in per image's width."""
    height, width, channels = means[0].shape
    columns = min(len(means), max(5, int(np.ceil(np.sqrt(len(means))))))
    rows = -(-len(means) // columns)
    fig = Figure(figsize=(2.5 * columns + 1.2, (2.5 * height / width + 0.2) * rows + 0.9),
                 layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    image = None
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(means):
            ax.set_visible(False)
            continue
        image = _show(ax, means[i], 1)
        ax.set_title(f"{classes[i]} (n={counts[i]:,})\n"
                     f"pixel {pixel_mean[i]:.3f} ± {pixel_std[i]:.3f}", fontsize=10)
    if image is not None and channels == 1:
        fig.colorbar(image, ax=axes, shrink=0.8,
                     label="mean pixel intensity (0 = black, 1 = white)")
    fig.suptitle(f"{title}: mean image per class, with the class's pixel mean ± std")
    colour = "" if channels == 1 else ", RGB (each channel's mean, pixel stats over all three)"
    fig.supxlabel(f"{height} × {width} pixels{colour}; intensities scaled to [0, 1]")
    save_png(fig, path)


def _ink_box(ax: Axes, per_class: Sequence[ClassOutliers], iqr_factor: float) -> None:
    """Box per class with Tukey whiskers; both kinds of outlier overlaid in yellow."""
    x = np.arange(len(per_class))
    ax.boxplot([c.ink for c in per_class], positions=x, whis=iqr_factor, showfliers=False,
               widths=0.5, medianprops={"color": "black"})
    jitter = np.random.default_rng(0)  # fixed: the figure is the same on every run
    for xi, c in zip(x, per_class, strict=True):
        ax.scatter(xi + jitter.uniform(-0.18, 0.18, len(c.ink_outlier_ink)), c.ink_outlier_ink,
                   s=14, color=HIGHLIGHT, edgecolors="black", linewidths=0.4, zorder=3)
        ax.scatter(np.full(len(c.farthest_ink), xi + 0.3), c.farthest_ink, s=90, marker="*",
                   color=HIGHLIGHT, edgecolors="black", linewidths=0.6, zorder=4)
    _class_ticks(ax, [c.name for c in per_class])
    ax.set_xlim(-0.6, len(per_class) - 0.4)
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.12 * (high - low))  # headroom: the legend covers no point
    ax.set_xlabel("class")
    ax.set_ylabel("ink (sum of pixel intensities in [0, 1])")
    ax.set_title(f"Ink per class: box = quartiles, whiskers = {iqr_factor:g} × IQR")
    ax.grid(axis="y", alpha=0.3)
    handles = [
        Line2D([], [], ls="", marker="o", ms=5, mfc=HIGHLIGHT, mec="black",
               label=f"ink beyond {iqr_factor:g} × IQR"),
        Line2D([], [], ls="", marker="*", ms=10, mfc=HIGHLIGHT, mec="black",
               label="farthest from the class mean"),
    ]
    ax.legend(handles=handles, loc="upper right", fontsize="small")


def plot_outliers(per_class: Sequence[ClassOutliers], iqr_factor: float, title: str,
                  source: str, path: Path) -> None:
    """The study's outlier figure: highlighted in yellow on a per-class ink box plot, then shown;
    `source` as for plot_samples."""
    columns = max([1, *(len(c.farthest_tiles) for c in per_class)])
    shape = per_class[0].farthest_tiles[0].image.shape  # every class has a farthest image
    width, height = OUTLIER_CELLS.inches(len(per_class), columns, *shape[:2])
    # 0.3 in per class at least, for the box plot of many classes
    fig = Figure(figsize=(max(12.0, 2 * width + 3.5, 0.3 * len(per_class)), 5.5 + height + 1.5),
                 layout="constrained")
    axes = fig.subplot_mosaic([["box", "box"], ["far", "ink"]], height_ratios=[5.5, height])
    _ink_box(axes["box"], per_class, iqr_factor)
    names = [c.name for c in per_class]
    _mosaic(axes["far"], [c.farthest_tiles for c in per_class], names, columns, OUTLIER_CELLS,
            shape, HIGHLIGHT)
    axes["far"].set_title(f"{columns} farthest from the class mean (Euclidean distance d)")
    _mosaic(axes["ink"], [c.ink_tiles for c in per_class], names, columns, OUTLIER_CELLS,
            shape, HIGHLIGHT)
    axes["ink"].set_title(f"Ink beyond {iqr_factor:g} × IQR, most extreme first "
                          "(all in outliers.csv)")
    for ax in (axes["far"], axes["ink"]):
        ax.set_xlabel(f"caption: #position in {source} (split)")
    fig.suptitle(f"{title}: outliers of {source} (train + val)", fontsize=14)
    save_png(fig, path)
