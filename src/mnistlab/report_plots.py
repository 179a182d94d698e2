"""Figures for mnistlab.report.

Drawn on bare Agg ``Figure`` objects rather than pyplot, so that reporting from inside a
training process never switches the caller's backend or leaks global figure state.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from mnistlab.atomic import write_atomically

DPI = 120
LINESTYLES = ("-", "--", ":", "-.")  # cycled after every 10 colours, so 40 runs stay distinct
CURVE_PANELS = (
    ("train_acc", "Train accuracy", "accuracy"),
    ("val_acc", "Validation accuracy", "accuracy"),
    ("train_loss", "Train loss", "loss"),
    ("val_loss", "Validation loss", "loss"),
)

Metrics = Mapping[str, Sequence[float]]


def save_png(fig: Figure, path: Path) -> None:
    """Write then rename, so a reader never sees half a PNG."""
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=DPI)
    write_atomically(path, png.getvalue())


def _style(i: int) -> dict[str, str]:
    return {"color": f"C{i % 10}", "linestyle": LINESTYLES[(i // 10) % len(LINESTYLES)]}


def plot_curves(series: Sequence[tuple[str, Metrics]], path: Path) -> None:
    """2x2 grid of per-epoch train/val accuracy and loss, one line (same style) per run."""
    drawn = [(label, m) for label, m in series if any(m.get(k) for k, _, _ in CURVE_PANELS)]
    ncol = 1 if len(drawn) <= 4 else 2
    legend_rows = math.ceil(len(drawn) / ncol)
    fig = Figure(figsize=(12, 8 + 0.25 * legend_rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(2, 2)
    for ax, (key, title, ylabel) in zip(axes.flat, CURVE_PANELS, strict=True):
        for i, (_, metrics) in enumerate(drawn):
            ys = list(metrics.get(key) or [])
            if not ys:
                continue
            xs = list(metrics.get("epoch") or range(1, len(ys) + 1))[: len(ys)]
            ax.plot(xs, ys, marker="o", markersize=3, **_style(i))
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
        fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize="small")
    fig.suptitle("Learning curves")
    save_png(fig, path)


def plot_ablation(factors: Mapping[str, Sequence[tuple[str, Sequence[float]]]], path: Path) -> None:
    """One bar chart per factor: mean test accuracy per level over the other factors.

    ``factors`` maps a factor name to (level, test accuracies of the runs at that level);
    error bars show the sample std where a level has more than one run.
    """
    n = max(1, len(factors))
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(5 * ncols, 4.2 * nrows), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (factor, levels) in zip(axes, factors.items(), strict=False):
        _ablation_panel(ax, factor, levels)
    for ax in axes[len(factors) :]:
        ax.set_visible(False)
    fig.suptitle("Ablation: mean test accuracy per level")
    save_png(fig, path)


def _ablation_panel(ax, factor: str, levels: Sequence[tuple[str, Sequence[float]]]) -> None:
    names = [name for name, _ in levels]
    counts = np.array([len(v) for _, v in levels])
    means = np.array([float(np.mean(v)) if len(v) else 0.0 for _, v in levels])
    stds = np.array([float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for _, v in levels])
    x = np.arange(len(names))
    ax.bar(x, means, color=[f"C{i % 10}" for i in range(len(names))], alpha=0.8)
    several = counts > 1
    if several.any():
        ax.errorbar(
            x[several], means[several], yerr=stds[several], fmt="none", capsize=5, color="black"
        )
    has = counts > 0
    if has.any():
        lo, hi = float((means - stds)[has].min()), float((means + stds)[has].max())
        pad = max(0.01, 0.25 * (hi - lo))
        ax.set_ylim(max(0.0, lo - pad), hi + 2 * pad)
    else:
        ax.set_ylim(0.0, 1.0)
    bottom = ax.get_ylim()[0]
    for xi, m, s, k in zip(x, means, stds, counts, strict=True):
        if k:
            ax.text(xi, m + s, f"{m:.4f}\nn={k}", ha="center", va="bottom", fontsize="small")
        else:
            ax.text(xi, bottom, "no data", ha="center", va="bottom", fontsize="small")
    long_names = any(len(name) > 8 for name in names)
    ax.set_xticks(
        x, names, rotation=30 if long_names else 0, ha="right" if long_names else "center"
    )
    ax.set_title(factor)
    ax.set_xlabel(factor)
    ax.set_ylabel("test accuracy (mean ± std)")
    ax.grid(axis="y", alpha=0.3)
