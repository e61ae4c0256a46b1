"""The run report: ``report.md`` and ``figures/*.png``, from the results table only.

Numbers: ``score`` is the Yes/No logratio signed toward the POS behaviour, per row. A
cell "Δ +1.23 ± 0.10" is the mean score at that alpha minus the mean score at alpha 0
on the same rows, averaged over seeds, ± the standard deviation over seeds (over rows'
shifts when there is one seed). ``pmass`` is p(Yes) + p(No): below ~0.5 the model has
stopped answering in format and the logratio says little.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from weightsteer.errors import UserError
from weightsteer.io import atomic_path
from weightsteer.naming import DEFAULT_TARGETS
from weightsteer.results import read_results

REPORT = "report.md"


def shift_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per (family, eval, strength): mean score, shift vs strength 0 (mean, sd), pmass.

    Shifts are paired: each row's score minus the same row's score at strength 0, same
    seed. ``sd`` is over seeds when there are several, else over rows.
    """
    keys = ["method", "family", "seed", "eval", "row_id"]
    base = df[df["strength"] == 0.0].set_index(keys)["score"].rename("score0")
    d = df.join(base, on=keys)
    if d["score0"].isna().any():
        raise UserError("results lack strength 0 for some rows; the shift needs it")
    d["shift"] = d["score"] - d["score0"]
    per_seed = d.groupby(["family", "eval", "strength", "seed"]).agg(
        score=("score", "mean"),
        shift=("shift", "mean"),
        shift_sd_rows=("shift", "std"),
        pmass=("pmass", "mean"),
        n=("row_id", "count"),
    )
    g = per_seed.groupby(["family", "eval", "strength"])
    out = g.agg(
        score=("score", "mean"),
        shift=("shift", "mean"),
        pmass=("pmass", "mean"),
        seeds=("n", "count"),
        rows=("n", "first"),
    )
    out["sd"] = g["shift"].std().where(out["seeds"] > 1, g["shift_sd_rows"].first())
    return out.reset_index()


def _cell(row) -> str:
    if row["strength"] == 0:
        return f"{row['score']:+.2f}"
    sd = "" if math.isnan(row["sd"]) else f" ± {row['sd']:.2f}"
    return f"Δ {row['shift']:+.2f}{sd}"


def _suite_table(t: pd.DataFrame, suite: str) -> list[str]:
    sub = t[t["eval"] == suite]
    alphas = sorted(sub["strength"].unique())
    head = "| family | " + " | ".join(f"α {a:+g}" for a in alphas) + " | pmass min |"
    lines = [head, "|---" * (len(alphas) + 2) + "|"]
    for fam, rows in sub.groupby("family", sort=False):
        by = {r["strength"]: r for _, r in rows.iterrows()}
        cells = [_cell(by[a]) if a in by else "" for a in alphas]
        lines.append(f"| {fam} | " + " | ".join(cells) + f" | {rows['pmass'].min():.2f} |")
    n = int(sub["rows"].iloc[0])
    seeds = int(sub["seeds"].max())
    lines.append(f"\n{n} rows, {seeds} seed(s); α 0 column: mean score; others: shift vs α 0.")
    return lines


def _vector_rows(root: Path) -> list[dict]:
    from weightsteer.vector import WeightVector

    rows = []
    for path in sorted((root / "vectors").glob("*.safetensors")):
        vec = WeightVector.load(path)
        summary = vec.summary()
        ranks = sorted({r["rank"] for r in summary if r["rank"] is not None})
        rows.append(
            {
                "name": path.stem,
                "family": vec.meta.family,
                "seed": vec.meta.seed,
                "norm": vec.norm(),
                "tensors": len(summary),
                "rank": f"{ranks[0]}-{ranks[-1]}" if ranks else "dense",
                "mib": path.stat().st_size / 2**20,
                "summary": summary,
            }
        )
    return rows


def _figure_scores(t: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suites = list(dict.fromkeys(t["eval"]))
    cols = min(4, len(suites))
    nrows = math.ceil(len(suites) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.6 * cols, 2.8 * nrows), squeeze=False)
    for ax, suite in zip(axes.flat, suites, strict=False):
        for fam, rows in t[t["eval"] == suite].groupby("family", sort=False):
            rows = rows.sort_values("strength")
            ax.plot(rows["strength"], rows["score"], marker="o", ms=3, label=fam)
            if rows["seeds"].max() > 1:
                sd = rows["sd"].fillna(0)
                ax.fill_between(
                    rows["strength"], rows["score"] - sd, rows["score"] + sd, alpha=0.15
                )
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(suite, fontsize=9)
        ax.set_xlabel("alpha", fontsize=8)
        ax.set_ylabel("mean score", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(suites) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _figure_norms(vec_row: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    summary = vec_row["summary"]
    order = {k: i for i, k in enumerate(DEFAULT_TARGETS)}
    kinds = sorted({r["module"] for r in summary}, key=lambda k: (order.get(k, 99), k))
    layers = sorted({r["layer"] for r in summary if r["layer"] is not None})
    grid = np.full((len(layers), len(kinds)), np.nan)
    for r in summary:
        if r["layer"] is not None:
            grid[layers.index(r["layer"]), kinds.index(r["module"])] = r["norm"]
    fig, ax = plt.subplots(figsize=(1 + 0.8 * len(kinds), 1 + 0.3 * len(layers)))
    im = ax.imshow(grid, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(kinds)), kinds, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(layers)), [str(x) for x in layers], fontsize=7)
    ax.set_ylabel("layer", fontsize=8)
    ax.set_title(f"||dW|| {vec_row['name']}", fontsize=9)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_report(root: str | Path) -> Path:
    """Write ``report.md`` and its figures for the run folder ``root``."""
    root = Path(root)
    manifest = json.loads((root / "manifest.json").read_text())
    paths = sorted((root / "results").glob("*.parquet"))
    table = shift_table(read_results(paths))
    vectors = _vector_rows(root)
    figs = root / "figures"
    figs.mkdir(exist_ok=True)
    _figure_scores(table, figs / "score_vs_alpha.png")
    for v in vectors:
        _figure_norms(v, figs / f"norms-{v['name']}.png")

    cfg = manifest["config"]
    lines = [
        f"# weightsteer run `{manifest['name']}`",
        "",
        f"Model `{cfg['model']['id']}`, behaviour `{cfg['behavior']['name']}`, questions "
        f"`{cfg['questions']['source']}`; config hash `{manifest['config_hash']}`.",
        "",
        "Score = Yes/No logratio signed toward the POS behaviour, no system prompt. "
        "Δ = mean paired shift vs α 0 (± sd over seeds, or over rows with one seed).",
        "",
        "## Vectors",
        "",
        "| vector | family | seed | ‖dW‖ | tensors | rank | MiB |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {v['name']} | {v['family']} | {v['seed']} | {v['norm']:.4g} | {v['tensors']} | "
            f"{v['rank']} | {v['mib']:.2f} |"
            for v in vectors
        ],
        "",
        "![score vs alpha](figures/score_vs_alpha.png)",
        "",
    ]
    for suite in dict.fromkeys(table["eval"]):
        lines += [f"## {suite}", "", *_suite_table(table, suite), ""]
    lines += ["## Where the vectors live", ""]
    lines += [f"![{v['name']}](figures/norms-{v['name']}.png)" for v in vectors]
    counts = manifest.get("counts", {})
    stages = manifest.get("stages", {})
    lines += [
        "",
        "## Run",
        "",
        f"- data: {json.dumps(counts.get('data', {}))}",
        f"- train: {json.dumps(counts.get('train', {}))}",
        "- stage seconds (last run of each): "
        + ", ".join(f"{k} {v['seconds']}" for k, v in stages.items()),
        f"- versions: {json.dumps(manifest.get('versions', {}))}",
        f"- model fingerprint: {json.dumps(manifest.get('model', {}))}",
        "",
        "```json",
        json.dumps(cfg, indent=2),
        "```",
        "",
    ]
    out = root / REPORT
    with atomic_path(out, overwrite=True) as tmp:
        tmp.write_text("\n".join(lines))
    return out
