"""Figures: a non-interactive pyplot and an atomic save (PNG, plus SVG for papers)."""

from __future__ import annotations

from pathlib import Path

from weightsteer.core.files import atomic_path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    pyplot().close(fig)
