"""Figures for mnistlab.report.

Drawn on bare Agg ``Figure`` objects rather than pyplot, so that reporting from inside a
training process never switches the caller's backend or leaks global figure state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from mnistlab.plotting import DPI, save_png
from mnistlab.report.stats import describe

LINESTYLES = ("-", "--", ":", "-.")  # cycled after every 10 colours, so 40 groups stay distinct
CURVE_PANELS = (
    ("train_acc", "Train accuracy", "accuracy"),
    ("val_acc", "Validation accuracy", "accuracy"),
    ("train_loss", "Train loss", "loss"),
    ("val_loss", "Validation loss", "loss"),
)
# The curves' band: with 2-5 seeds a std is itself too noisy to draw, while the envelope shows
# exactly where every seed went.
BAND = "min-max over the group's runs (seeds)"
PARALLEL_TICKS = 8  # a numeric axis with more distinct values gets evenly spaced ticks instead
CATEGORY_SPREAD = 0.04  # half the fan of lines at a categorical tick, in axis heights

Metrics = Mapping[str, Sequence[float]]


def _style(i: int) -> dict[str, str]:
    return {"color": f"C{i % 10}", "linestyle": LINESTYLES[(i // 10) % len(LINESTYLES)]}


def epoch_band(runs: Sequence[Metrics], key: str) -> tuple[list[float], np.ndarray, np.ndarray,
                                                           np.ndarray]:  # fmt: skip
    """Per epoch over the runs that reached it: epochs, mean, min and max of ``key``."""
    by_epoch: dict[float, list[float]] = {}
    for metrics in runs:
        ys = list(metrics.get(key) or [])
        xs = list(metrics.get("epoch") or range(1, len(ys) + 1))[: len(ys)]
        for x, y in zip(xs, ys, strict=False):
            if math.isfinite(x) and math.isfinite(y):
                by_epoch.setdefault(x, []).append(y)
    epochs = sorted(by_epoch)
    values = [np.asarray(by_epoch[x]) for x in epochs]
    return (
        epochs,
        np.array([v.mean() for v in values]),
        np.array([v.min() for v in values]),
        np.array([v.max() for v in values]),
    )


def plot_curves(series: Sequence[tuple[str, Sequence[Metrics]]], path: Path) -> None:
    """2x2 grid of per-epoch train/val accuracy and loss: per group (label, its runs' metrics)
    the mean over its runs as a line (same style in every panel) and a min-max band."""
    drawn = [(label, runs) for label, runs in series
             if any(m.get(k) for m in runs for k, _, _ in CURVE_PANELS)]  # fmt: skip
    ncol = 1 if len(drawn) <= 4 else 2 if len(drawn) <= 16 else 3
    legend_rows = math.ceil((len(drawn) + 1) / ncol)
    fig = Figure(figsize=(12, 8 + 0.25 * legend_rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(2, 2)
    for ax, (key, title, ylabel) in zip(axes.flat, CURVE_PANELS, strict=True):
        for i, (_, runs) in enumerate(drawn):
            epochs, mean, low, high = epoch_band(runs, key)
            if not epochs:
                continue
            ax.plot(epochs, mean, marker="o", markersize=3, **_style(i))
            if len(runs) > 1:
                ax.fill_between(epochs, low, high, color=f"C{i % 10}", alpha=0.15, linewidth=0)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if not ax.lines:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    if drawn:
        handles = [
            Line2D([], [], marker="o", markersize=3, label=label, **_style(i))
            for i, (label, _) in enumerate(drawn)
        ]
        handles.append(Patch(color="grey", alpha=0.3, label=f"band: {BAND}"))
        fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize="small")
    fig.suptitle(f"Learning curves: mean per group; band: {BAND}")
    save_png(fig, path)


def _panel_grid(n: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    """A figure of ``n`` panels, three to a row; the axes flat, spare ones hidden by the caller."""
    n = max(1, n)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), dpi=DPI, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel()


def plot_ablation(factors: Mapping[str, Sequence[tuple[str, Sequence[float]]]], path: Path) -> None:
    """One panel per factor: per level, the mean test accuracy over the other factors with its
    95 % CI as error bars (2+ runs) and every run as a dot.

    ``factors`` maps a factor name to (level, test accuracies of the runs at that level).
    """
    fig, axes = _panel_grid(len(factors), 5, 4.2)
    for ax, (factor, levels) in zip(axes, factors.items(), strict=False):
        _ablation_panel(ax, factor, levels)
    for ax in axes[len(factors) :]:
        ax.set_visible(False)
    fig.suptitle("Ablation: mean test accuracy per level, 95 % CI; dots: runs")
    save_png(fig, path)


def _ablation_panel(ax, factor: str, levels: Sequence[tuple[str, Sequence[float]]]) -> None:
    names = [name for name, _ in levels]
    spans = []
    for x, (_, values) in enumerate(levels):
        s = describe(values)
        if s.mean is None:
            continue
        jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(x + jitter, values, s=14, color=f"C{x % 10}", alpha=0.6, zorder=2)
        low = s.mean if s.ci_low is None else s.ci_low
        high = s.mean if s.ci_high is None else s.ci_high
        ax.errorbar(x, s.mean, yerr=[[s.mean - low], [high - s.mean]], fmt="D", color="black",
                    markersize=5, capsize=6, zorder=3)  # fmt: skip
        ax.annotate(f"{s.mean:.4f}\nn={s.n}", (x + 0.22, s.mean), ha="left", va="center",
                    fontsize="small")  # fmt: skip
        # an accuracy lies in [0, 1]: a wider interval (2 runs: t = 12.7) runs off the axis
        # rather than squashing the dots
        spans += [min(max(low, 0.0), min(values)), max(min(high, 1.0), max(values))]
    if spans:
        lo, hi = min(spans), max(spans)
        pad = max(0.005, 0.1 * (hi - lo))
        ax.set_ylim(lo - pad, hi + pad)
    for x, (_, values) in enumerate(levels):
        if not values:
            ax.text(x, 0.02, "no data", ha="center", va="bottom", fontsize="small",
                    transform=ax.get_xaxis_transform())  # fmt: skip
    x = np.arange(len(names))
    long_names = any(len(name) > 8 for name in names)
    ax.set_xticks(
        x, names, rotation=30 if long_names else 0, ha="right" if long_names else "center"
    )
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_title(factor)
    ax.set_xlabel(factor)
    ax.set_ylabel("test accuracy (mean, 95 % CI)")
    ax.grid(axis="y", alpha=0.3)


def plot_experiments(
    panels: Sequence[tuple[str, Sequence[tuple[str, Sequence[float]]], float | None]],
    marks_label: str,
    path: Path,
) -> None:
    """One panel per named experiment: per group of it (a backend), the mean test accuracy with
    its 95 % CI and every run as a dot, and a reference figure (the study's) as a dashed line.

    ``panels``: (experiment, [(group label, test accuracies)], reference or None).
    """
    fig, axes = _panel_grid(len(panels), 4.6, 4)
    for ax, (experiment, levels, reference) in zip(axes, panels, strict=False):
        _ablation_panel(ax, experiment, levels)
        ax.set_xlabel("")
        if reference is not None:
            ax.axhline(reference, color="C3", linestyle="--", linewidth=1.2, zorder=1)
            ax.annotate(f"{marks_label}: {reference:.4f}", (0.02, reference), color="C3",
                        xycoords=("axes fraction", "data"), va="bottom", fontsize="small")
            low, high = ax.get_ylim()
            pad = 0.05 * (high - low)
            ax.set_ylim(min(low, reference - pad), max(high, reference + pad))
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    title = "Test accuracy per experiment: mean, 95 % CI; dots: runs"
    fig.suptitle(title + (f"; dashed: {marks_label}" if marks_label else ""))
    save_png(fig, path)


def plot_interactions(
    pairs: Sequence[tuple[str, str, Mapping[tuple[str, str], tuple[float, float, float]]]],
    path: Path,
) -> None:
    """One panel per pair of factors (a, b): b's levels along x, a line per level of a, each
    point the mean over the other factors with its 95 % CI. Parallel lines: no interaction.

    ``pairs``: (a, b, {(level of a, level of b): (mean, ci_low, ci_high)}).
    """
    fig, axes = _panel_grid(len(pairs), 5, 4.2)
    for ax, (a, b, means) in zip(axes, pairs, strict=False):
        a_levels = list(dict.fromkeys(k[0] for k in means))
        b_levels = list(dict.fromkeys(k[1] for k in means))
        offsets = np.linspace(-0.08, 0.08, len(a_levels)) if len(a_levels) > 1 else [0.0]
        for i, (la, dx) in enumerate(zip(a_levels, offsets, strict=True)):
            mean, low, high = (np.array([means[(la, lb)][j] for lb in b_levels]) for j in range(3))
            x = np.arange(len(b_levels)) + dx
            ax.errorbar(x, mean, yerr=[mean - low, high - mean], marker="o", capsize=4,
                        color=f"C{i % 10}", label=f"{a}={la}")  # fmt: skip
        ax.set_xticks(np.arange(len(b_levels)), b_levels)
        ax.set_xlabel(b)
        ax.set_ylabel("test accuracy (mean, 95 % CI)")
        ax.set_title(f"{a} × {b}")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(pairs):]:
        ax.set_visible(False)
    fig.suptitle("Interactions: cell means over the other factors; parallel lines: none")
    save_png(fig, path)


def plot_parallel(levels: Mapping[str, Sequence[str]], scores: Sequence[float], path: Path) -> None:
    """Parallel coordinates: an axis per factor then test accuracy, a line per run coloured by
    its test accuracy. Numeric factors keep their scale (log when positive and spanning 100x+);
    the others are categories at evenly spaced ticks."""
    names = [*levels, "test_acc"]
    columns = [*([str(v) for v in vs] for vs in levels.values()), [repr(s) for s in scores]]
    scales = [_axis(values) for values in columns]
    fig = Figure(figsize=(max(8.0, 2.6 * len(names)), 6), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    norm = Normalize(min(scores, default=0.0), max(scores, default=1.0))
    cmap = fig.colorbar(ScalarMappable(norm, "viridis"), ax=ax, label="test accuracy").cmap
    order = np.argsort(scores, kind="stable")  # best runs drawn last, on top
    # runs sharing a category fan out around its tick, ordered by score, instead of hiding
    # behind each other
    spread = np.linspace(-CATEGORY_SPREAD, CATEGORY_SPREAD, len(scores)) if len(scores) > 1 else [0]
    for rank, i in enumerate(order):
        ys = [scale[0][column[i]] + (spread[rank] if categorical else 0.0)
              for (scale, categorical), column in zip(scales, columns, strict=True)]  # fmt: skip
        ax.plot(range(len(names)), ys, color=cmap(norm(scores[i])), alpha=0.8, linewidth=1.5)
    for x, ((_, ticks), _) in enumerate(scales):
        ax.axvline(x, color="black", linewidth=0.8)
        for y, text in ticks:
            ax.text(x - 0.03, y, text, ha="right", va="center", fontsize="small",
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks([])
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlim(-0.4, len(names) - 0.8)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.suptitle("Hyperparameters -> test accuracy, a line per run")
    save_png(fig, path)


Scale = tuple[dict[str, float], list[tuple[float, str]]]


def _axis(values: Sequence[str]) -> tuple[Scale, bool]:
    """(value -> height in [0, 1], the ticks (height, text) to draw), and whether categorical."""
    distinct = sorted(set(values))
    numbers = [float(v) for v in distinct if _is_number(v)]
    if len(numbers) < len(distinct) or not distinct:
        heights = {v: (i / (len(distinct) - 1) if len(distinct) > 1 else 0.5)
                   for i, v in enumerate(distinct)}  # fmt: skip
        return (heights, [(y, v) for v, y in heights.items()]), True
    lo, hi = min(numbers), max(numbers)
    log = lo > 0 and hi / lo >= 100

    def scaled(v: float) -> float:
        return math.log10(v) if log else v

    def height(v: float) -> float:
        return (scaled(v) - scaled(lo)) / (scaled(hi) - scaled(lo)) if hi > lo else 0.5

    shown = numbers if len(numbers) <= PARALLEL_TICKS else list(
        np.geomspace(lo, hi, 5) if log else np.linspace(lo, hi, 5)
    )  # fmt: skip
    ticks = [(height(v), f"{v:.4g}") for v in shown]
    return ({v: height(float(v)) for v in distinct}, ticks), False


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
