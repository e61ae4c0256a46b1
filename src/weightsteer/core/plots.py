"""Figures: a non-interactive pyplot and an atomic save (PNG, plus SVG for papers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from weightsteer.core.files import atomic_path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    # SVG ids from a fixed salt instead of a random one: one run's figures are the same
    # bytes every time (with no date in them, ``save_figure``)
    matplotlib.rcParams["svg.hashsalt"] = "weightsteer"
    import matplotlib.pyplot as plt

    return plt


def figure_files(path: Path) -> list[Path]:
    """The files ``save_figure(fig, path)`` writes: the PNG and the SVG beside it."""
    return [Path(path), Path(path).with_suffix(".svg")]


def save_figure(fig: Any, path: Path, layout: bool = True) -> None:
    """``path`` (PNG, for the markdown report) and the same figure as SVG beside it (for a
    paper: vector, any size), both the same bytes for the same figure. ``layout=False``:
    the caller laid it out already (a ``tight_layout`` here would undo the room it kept
    for a legend)."""
    if layout:
        fig.tight_layout()
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    with atomic_path(Path(path).with_suffix(".svg"), overwrite=True) as tmp:
        fig.savefig(tmp, format="svg", metadata={"Date": None})
    pyplot().close(fig)
