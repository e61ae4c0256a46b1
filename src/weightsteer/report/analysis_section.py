"""The report's analysis section (``weightsteer analyze``): how much of the full vector's
effect each variant keeps, per suite, with CIs; a bar chart of it; the layer x module
heatmap when the ``cells`` analysis ran; the cosine matrix of the run's vectors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from weightsteer.core.plots import pyplot, save_figure
from weightsteer.evals.bootstrap import MetricsConfig
from weightsteer.evals.results import read_results
from weightsteer.evals.retained import retained_effects
from weightsteer.report.markdown_tables import ci_cell

CELL = re.compile(r"^(keep|drop):layer(\d+)\.(\w+)$")


def _cell(v: float, lo: float, hi: float) -> str:
    return ci_cell(v, lo, hi, "+.2f")


def retained_table(r: pd.DataFrame, calibrated: bool) -> list[str]:
    """Variants (rows) x suites (columns): the retained share of the full effect [CI]."""
    sub = r[r["calibrated"] == calibrated]
    if sub.empty:
        return []
    suites = list(dict.fromkeys(sub["eval"]))
    full = sub[sub["variant"] == "full"].set_index("eval")["full_effect"]
    point = sub["point"].iloc[0]
    where = (
        f"±{point:g} nat (the full vector's calibrated strengths)"
        if calibrated
        else (f"alpha ±{point:g}")
    )
    lines = [
        f"Retained effect at {where}; full effect per suite: "
        + ", ".join(f"`{s}` {full.loc[s]:+.2f}" for s in suites),
        "",
        "| variant | " + " | ".join(f"`{s}`" for s in suites) + " |",
        "|---" * (len(suites) + 1) + "|",
    ]
    for variant, rows in sub.groupby("variant", sort=False):
        if variant == "full":
            continue
        by = rows.set_index("eval")
        cells = [
            _cell(by.loc[s, "retained"], by.loc[s, "lo"], by.loc[s, "hi"]) if s in by.index else ""
            for s in suites
        ]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def figure_retained(r: pd.DataFrame, suite: str, path: Path) -> bool:
    """One panel per vector: each variant's retained effect on ``suite`` with its CI."""
    sub = r[(r["eval"] == suite) & (r["variant"] != "full")]
    calibrated = bool(sub["calibrated"].any())
    sub = sub[sub["calibrated"] == calibrated]
    vectors = list(dict.fromkeys(sub["vector"]))
    if not vectors:
        return False
    plt = pyplot()
    n_var = sub.groupby("vector")["variant"].nunique().max()
    fig, axes = plt.subplots(
        len(vectors), 1, figsize=(max(6, 0.32 * n_var), 2.4 * len(vectors)), squeeze=False
    )
    for ax, vec in zip(axes.flat, vectors, strict=True):
        rows = sub[sub["vector"] == vec]
        x = np.arange(len(rows))
        err = np.array([rows["retained"] - rows["lo"], rows["hi"] - rows["retained"]])
        colors = ["tab:grey" if "random" in v else "tab:blue" for v in rows["variant"]]
        ax.bar(x, rows["retained"], yerr=np.nan_to_num(err), color=colors, capsize=2)
        ax.axhline(1, color="green", lw=0.6, ls="--")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xticks(x, rows["variant"], rotation=60, ha="right", fontsize=6)
        ax.set_ylabel("retained", fontsize=8)
        ax.set_title(
            f"{vec} on {suite} ({'calibrated' if calibrated else 'fixed alpha'})", fontsize=9
        )
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def figure_cells(r: pd.DataFrame, suite: str, path: Path) -> bool:
    """Layer x module heatmaps of the retained effect of keeping and of dropping each cell
    (the ``cells`` analysis), one row of panels per vector."""
    sub = r[(r["eval"] == suite) & r["variant"].str.match(CELL.pattern)]
    if sub.empty:
        return False
    calibrated = bool(sub["calibrated"].any())
    sub = sub[sub["calibrated"] == calibrated]
    vectors = list(dict.fromkeys(sub["vector"]))
    plt = pyplot()
    fig, axes = plt.subplots(len(vectors), 2, figsize=(8, 2.6 * len(vectors)), squeeze=False)
    for row, vec in zip(axes, vectors, strict=True):
        cells = sub[sub["vector"] == vec]
        parsed = [m.groups() for v in cells["variant"] if (m := CELL.match(v))]
        layers = sorted({int(p[1]) for p in parsed})
        kinds = list(dict.fromkeys(p[2] for p in parsed))
        for ax, what in zip(row, ("keep", "drop"), strict=True):
            grid = np.full((len(layers), len(kinds)), np.nan)
            for (kind_, layer, mod), value in zip(parsed, cells["retained"], strict=True):
                if kind_ == what:
                    grid[layers.index(int(layer)), kinds.index(mod)] = value
            im = ax.imshow(grid, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
            ax.set_xticks(range(len(kinds)), kinds, rotation=45, ha="right", fontsize=7)
            ax.set_yticks(range(len(layers)), [f"layer {i}" for i in layers], fontsize=7)
            ax.set_title(f"{vec}: {what} one cell", fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def figure_cosines(cosines: pd.DataFrame, path: Path) -> None:
    names = sorted(set(cosines["a"]))
    grid = cosines.pivot(index="a", columns="b", values="cosine").loc[names, names].to_numpy()
    plt = pyplot()
    size = max(3.5, 0.45 * len(names))
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(grid, cmap="RdBu", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    if len(names) <= 16:
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=5)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title("cosine between the run's vectors", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def cosine_lines(c: pd.DataFrame, figs: Path) -> list[str]:
    """The cosine matrix (figure), and per scope (all, each layer, each module kind) the
    mean and range of the cosines between distinct vectors, with the principal-angle
    overlap of their per-tensor subspaces."""
    if "scope" not in c:
        c = c.assign(scope="all", overlap=float("nan"))
    whole = c[c["scope"] == "all"]
    figure_cosines(whole, figs / "analysis_cosines.png")
    pairs = c[c["a"] < c["b"]]
    if pairs.empty:
        return ["One vector: no cosines to compare.", ""]
    lines = [
        f"Agreement between the run's {whole['a'].nunique()} vectors (distinct pairs):",
        "",
        "| scope | mean cosine | range | subspace overlap |",
        "|---|---|---|---|",
    ]
    for scope, g in pairs.groupby("scope", sort=False):
        overlap = g["overlap"].mean()
        cell = "" if pd.isna(overlap) else f"{overlap:.3f}"
        lines.append(
            f"| {scope} | {g['cosine'].mean():+.3f} | [{g['cosine'].min():+.3f}, "
            f"{g['cosine'].max():+.3f}] | {cell} |"
        )
    return [
        *lines,
        "",
        "Subspace overlap: mean cosine of the principal angles between two "
        "vectors' top-8 output directions, per tensor (1: the same subspace).",
        "",
        "![cosine matrix](figures/analysis_cosines.png)",
        "",
    ]


def analysis_lines(
    paths: list[Path], cosines: Path | None, settings: MetricsConfig, figs: Path
) -> list[str]:
    """The section (nothing when ``weightsteer analyze`` has not run)."""
    if not paths and (cosines is None or not cosines.is_file()):
        return []
    lines = [
        "## Where dW lives (analysis)",
        "",
        "Each variant of a vector is scored like the vector itself on the same rows; "
        "retained = its effect ((score at + − score at −) / 2, mean over rows) over the full "
        f"vector's, with a {settings.ci:.0%} bootstrap CI drawing rows once for both. 1: "
        "the variant does all the full vector does; 0: nothing; random controls keep the "
        "tensors and their norms with random directions.",
        "",
    ]
    frames = []
    by_vector: dict[str, list[Path]] = {}
    for path in paths:  # analysis/<vector>/<analysis>.parquet
        by_vector.setdefault(path.parent.name, []).append(path)
    for vector, tables in by_vector.items():
        parts = [retained_effects(read_results([t]), settings) for t in tables]
        r = pd.concat(parts, ignore_index=True)
        r = r[~r.duplicated(["eval", "point", "calibrated", "variant"])]  # full: once
        frames.append(r.assign(vector=vector))
        lines += [f"### {vector}", "", "Analyses: " + ", ".join(t.stem for t in tables), ""]
        lines += retained_table(r, calibrated=False)
        lines += retained_table(r, calibrated=True)
    if frames:
        r = pd.concat(frames, ignore_index=True)
        suite = r["eval"].iloc[0]
        if figure_retained(r, suite, figs / "analysis_retained.png"):
            lines += [f"![retained effect on {suite}](figures/analysis_retained.png)", ""]
        if figure_cells(r, suite, figs / "analysis_cells.png"):
            lines += [f"![layer x module on {suite}](figures/analysis_cells.png)", ""]
    if cosines is not None and cosines.is_file():
        lines += cosine_lines(pd.read_csv(cosines), figs)
    return lines
