"""Figures for mnistlab.eda: class counts, sample grid, mean images, outliers.

Drawn on bare Agg ``Figure`` objects rather than pyplot, so that no global figure state or
backend switch leaks into the caller (the EDA may run inside a notebook or a training process).
The functions take plain arrays and captions, not the EDA's own types, so they stay easy to test.
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
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from mnistlab.plotting import save_png

HIGHLIGHT = "yellow"  # the study highlighted its outliers in yellow
SPLIT_COLORS = {"train": "C0", "val": "C1", "test": "C2"}
PIXEL_INCHES = 0.8 / 28  # a 28-pixel image is 0.8 in: its caption at 7 pt fits above it
CAPTION_POINTS = 7
GRAY = colormaps["gray"].with_extremes(bad="white")  # NaN = empty cell: page colour


@dataclass(frozen=True)
class Cells:
    """Mosaic spacing in image pixels: between tiles, and the caption band above each."""

    gap: int
    caption: int

    def inches(self, rows: int, columns: int, side: int = 28) -> tuple[float, float]:
        return (columns * (side + self.gap) * PIXEL_INCHES,
                rows * (side + self.caption) * PIXEL_INCHES)


SAMPLE_CELLS = Cells(gap=6, caption=9)  # one caption line
OUTLIER_CELLS = Cells(gap=14, caption=14)  # two caption lines, "#12345 (train)" wide


@dataclass(frozen=True)
class Tile:
    """One image of a grid, with the caption drawn above it."""

    image: np.ndarray  # (28, 28) uint8
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


def _long(names: Sequence[str]) -> bool:
    return any(len(n) > 5 for n in names)


def _class_ticks(ax: Axes, names: Sequence[str]) -> None:
    """Class names under each group; Fashion-MNIST's item names are tilted to stay apart."""
    tilted = _long(names)
    ax.set_xticks(np.arange(len(names)), names, rotation=25 if tilted else 0,
                  ha="right" if tilted else "center")


def plot_class_counts(counts: Mapping[str, Sequence[int]], classes: Sequence[str], title: str,
                      path: Path) -> None:
    """Grouped bars: per class, how many images each split holds (imbalance shows at a glance)."""
    fig = Figure(figsize=(12, 5.5), layout="constrained")
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
            cells: Cells, frame: str | None = None) -> None:
    """One row of captioned images per class, class name on the left, drawn as a single image.

    One imshow instead of one Axes per tile: a 10 x 10 grid of Axes costs seconds to lay out.
    """
    side = next((row[0].image.shape[0] for row in rows if row), 28)
    gap, caption = cells.gap, cells.caption
    width, height = side + gap, side + caption
    tiles = np.full((len(rows), columns, height, width), np.nan)
    for r, row in enumerate(rows):
        if row:
            tiles[r, : len(row), caption:, gap // 2 : gap // 2 + side] = [t.image for t in row]
    ax.imshow(tiles.transpose(0, 2, 1, 3).reshape(len(rows) * height, columns * width),
              cmap=GRAY, vmin=0, vmax=255, interpolation="nearest")
    boxes = []
    for r, row in enumerate(rows):
        for c, t in enumerate(row):
            ax.text((c + 0.5) * width - 0.5, r * height + caption - 1.5, t.caption,
                    ha="center", va="bottom", fontsize=CAPTION_POINTS, linespacing=1.0)
            boxes.append(Rectangle((c * width + gap // 2 - 0.5, r * height + caption - 0.5),
                                   side, side))
        if not row:
            ax.text(width / 2, (r + 0.5) * height + caption / 2, "none", ha="center", va="center")
    if frame:
        ax.add_collection(PatchCollection(boxes, facecolor="none", edgecolor=frame, linewidth=1.5))
    ax.set_yticks((np.arange(len(rows)) + 0.5) * height + caption / 2 - 0.5, names)
    ax.set_xticks([])
    ax.tick_params(left=False)
    ax.set_frame_on(False)


def plot_samples(rows: Sequence[Sequence[Tile]], classes: Sequence[str], title: str,
                 path: Path) -> None:
    """What each class looks like: a row of random images per class."""
    columns = max(1, max(len(r) for r in rows))
    width, height = SAMPLE_CELLS.inches(len(rows), columns)
    fig = Figure(figsize=(max(6.0, width + 1.8), height + 1.0), layout="constrained")
    ax = fig.subplots()
    _mosaic(ax, rows, classes, columns, SAMPLE_CELLS)
    ax.set_title(f"{title}: {columns} random images per class")
    ax.set_xlabel("caption: #position in the official training file")
    ax.set_ylabel("class")
    save_png(fig, path)


def plot_mean_images(means: Sequence[np.ndarray], pixel_mean: Sequence[float],
                     pixel_std: Sequence[float], counts: Sequence[int], classes: Sequence[str],
                     title: str, path: Path) -> None:
    """Each class's average image (the study's "average pixel frequency"), on one shared scale."""
    columns = 5
    rows = -(-len(means) // columns)
    fig = Figure(figsize=(2.5 * columns + 1.2, 2.7 * rows + 0.9), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    image = None
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(means):
            ax.set_visible(False)
            continue
        image = ax.imshow(means[i], cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{classes[i]} (n={counts[i]:,})\n"
                     f"pixel {pixel_mean[i]:.3f} ± {pixel_std[i]:.3f}", fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8,
                     label="mean pixel intensity (0 = black, 1 = white)")
    fig.suptitle(f"{title}: mean image per class, with the class's pixel mean ± std")
    fig.supxlabel("28 × 28 pixels; intensities scaled to [0, 1]")
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
                  path: Path) -> None:
    """The study's outlier figure: highlighted in yellow on a per-class ink box plot, then shown."""
    columns = max([1, *(len(c.farthest_tiles) for c in per_class)])
    width, height = OUTLIER_CELLS.inches(len(per_class), columns)
    fig = Figure(figsize=(max(12.0, 2 * width + 3.5), 5.5 + height + 1.5), layout="constrained")
    axes = fig.subplot_mosaic([["box", "box"], ["far", "ink"]], height_ratios=[5.5, height])
    _ink_box(axes["box"], per_class, iqr_factor)
    names = [c.name for c in per_class]
    _mosaic(axes["far"], [c.farthest_tiles for c in per_class], names, columns, OUTLIER_CELLS,
            HIGHLIGHT)
    axes["far"].set_title(f"{columns} farthest from the class mean (Euclidean distance d)")
    _mosaic(axes["ink"], [c.ink_tiles for c in per_class], names, columns, OUTLIER_CELLS,
            HIGHLIGHT)
    axes["ink"].set_title(f"Ink beyond {iqr_factor:g} × IQR, most extreme first "
                          "(all in outliers.csv)")
    for ax in (axes["far"], axes["ink"]):
        ax.set_xlabel("caption: #position in the official training file (split)")
    fig.suptitle(f"{title}: outliers of the official training file (train + val)", fontsize=14)
    save_png(fig, path)
