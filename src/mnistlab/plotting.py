"""Saving a figure, shared by every module that draws (run outputs, the report, the EDA).

Figures are bare Agg ``Figure`` objects rather than pyplot, so that drawing from inside a
training process never switches the caller's backend or leaks global figure state.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

from mnistlab.atomic import write_atomically

DPI = 120


def save_png(fig: Figure, path: Path) -> None:
    """Write then rename, so a reader never sees half a PNG. The canvas grows to fit what
    sticks out of the figure (a legend of long group labels), instead of cutting it off."""
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=DPI, bbox_inches="tight")
    write_atomically(path, png.getvalue())
