"""The report: ``report.md`` and ``figures/*.png``, from the results table only.

Numbers (``metrics.py`` computes them all): ``score`` is the choice logratio signed toward
the POS behaviour, per row. A cell "+1.23 [0.95, 1.50]" is the mean paired shift of the
score at that strength against strength 0 on the same rows, averaged over seeds, with its
bootstrap CI (rows and seeds resampled). SI is surgical informedness (k = 1 and 2): how
many wrong-side rows the intervention fixes minus how many right-side rows it breaks, in
both directions, discounted by the squared choice mass. ``pmass`` is the probability
mass on the two choices: below ``metrics.pmass_min`` the model has left the answer
format and its logratio says little.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from weightsteer.config import MetricsConfig, TinyMfvConfig
from weightsteer.io import atomic_path
from weightsteer.metrics import comparison_frame, foundation_table, suite_metrics
from weightsteer.naming import DEFAULT_TARGETS
from weightsteer.results import read_results, results_calibration

REPORT = "report.md"
HEADLINE = "headline.md"  # the numbers the README quotes
TINYMFV = "tinymfv"


def label(method: str, family: str) -> str:
    """How a scored intervention is named in tables: its family for weight vectors."""
    return family if method == "weight" and family else f"{method}:{family}" if family else method


def _ci(v: float, lo: float, hi: float, fmt: str = "+.2f") -> str:
    if math.isnan(v):
        return "–"
    band = "" if math.isnan(lo) else f" [{lo:{fmt}}, {hi:{fmt}}]"
    return f"{v:{fmt}}{band}"


def _shift_table(m: pd.DataFrame, suite: str) -> list[str]:
    sub = m[m["eval"] == suite]
    strengths = sorted(s for s in sub["strength"].unique() if s != 0)
    top = max(strengths, default=0.0)
    head = "| method | score at 0 | " + " | ".join(f"Δ at {s:+g}" for s in strengths)
    head += f" | seeds at {top:+g}: sd, same sign"
    lines = [head + " | pmass min | off-format |", "|---" * (len(strengths) + 5) + "|"]
    for (method, family), rows in sub.groupby(["method", "family"], sort=False):
        by = {r["strength"]: r for _, r in rows.iterrows()}
        zero = by[0.0]
        cells = [
            _ci(by[s]["delta"], by[s]["delta_lo"], by[s]["delta_hi"]) if s in by else ""
            for s in strengths
        ]
        seeds = "–"
        if top in by and by[top]["seeds"] > 1:
            seeds = f"{by[top]['delta_seed_sd']:.2f}, {by[top]['sign_agree']:.0%}"
        lines.append(
            f"| {label(method, family)} | {zero['mean']:+.2f} | "
            + " | ".join(cells)
            + f" | {seeds} | {rows['pmass'].min():.2f} | {rows['low_pmass'].max():.0%} |"
        )
    seeds, n = int(sub["seeds"].max()), int(sub["rows"].iloc[0])
    lines.append(
        f"\n{n} rows, {seeds} seed(s). Δ: mean paired shift vs strength 0 [95% bootstrap CI]; "
        "off-format: the largest share of rows under the pmass threshold."
    )
    return lines


def _si_table(m: pd.DataFrame, suite: str) -> list[str]:
    sub = m[(m["eval"] == suite) & m["strength"].gt(0)]
    if "si_k1" not in sub or sub["si_k1"].isna().all():
        return []
    sub = sub[sub["si_k1"].notna()]
    lines = [
        "| method | ±s | SI k=1 | SI k=2 | fix | broke | flip | counter | n cho / rej |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in sub.iterrows():
        warn = " ⚠ too few" if r["small"] else ""
        lines.append(
            f"| {label(r['method'], r['family'])} | {r['strength']:g} | "
            f"{_ci(r['si_k1'], r['si_k1_lo'], r['si_k1_hi'], '+.1f')} | "
            f"{_ci(r['si_k2'], r['si_k2_lo'], r['si_k2_hi'], '+.1f')} | {r['fix']:.0%} | "
            f"{r['broke']:.0%} | {r['flip']:.0%} | {r['counter']:.0%} | "
            f"{r['n_cho']:.0f} / {r['n_rej']:.0f}{warn} |"
        )
    return ["", "Surgical informedness (fix: wrong-side rows fixed at +s; broke: right-side rows "
            "broken at +s; flip / counter: the same at -s):", "", *lines]  # fmt: skip


def _foundation_lines(f: pd.DataFrame, target: str | None, sign: int) -> list[str]:
    s = f["strength"].abs().max()
    f = f[f["strength"].isin([s, -s])]
    lines = [
        f"Paired change in logit(wrongness) vs strength 0, per foundation, at ±{s:g} "
        f"[95% CI]; target: {target or 'none set (eval.tinymfv.target)'}"
        + (f", expected to move {'up' if sign > 0 else 'down'} at +α." if target else "."),
        "",
        f"| method | foundation | Δ at -{s:g} | Δ at +{s:g} | vignettes | low-mass cells |",
        "|---|---|---|---|---|---|",
    ]
    for (method, family, found), rows in f.groupby(["method", "family", "foundation"], sort=False):
        by = {r["strength"]: r for _, r in rows.iterrows()}
        name = f"**{found}** (target)" if found == target else found
        cells = [_ci(by[x]["delta"], by[x]["delta_lo"], by[x]["delta_hi"]) for x in (-s, s)]
        dropped = max(int(by[x]["dropped"]) for x in (-s, s))
        lines.append(
            f"| {label(method, family)} | {name} | {cells[0]} | {cells[1]} | "
            f"{int(rows['vignettes'].iloc[0])} | {dropped} / {int(rows['cells'].iloc[0])} |"
        )
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


def _suite_grid(n: int, row_height: float):
    """A figure with one panel per suite, four to a row."""
    cols = min(4, n)
    rows = math.ceil(n / cols)
    return pyplot().subplots(rows, cols, figsize=(3.6 * cols, row_height * rows), squeeze=False)


def _finish_grid(fig, axes, n: int, path: Path) -> None:
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    save_figure(fig, path)


def _figure_scores(m: pd.DataFrame, path: Path) -> None:
    """Mean score vs strength per suite and method; the band is the paired CI of the shift
    from strength 0 (what decides whether the intervention moved anything)."""
    suites = list(dict.fromkeys(m["eval"]))
    fig, axes = _suite_grid(len(suites), 2.8)
    for ax, suite in zip(axes.flat, suites, strict=False):
        sub = m[m["eval"] == suite]
        for (method, family), rows in sub.groupby(["method", "family"], sort=False):
            rows = rows.sort_values("strength")
            ax.plot(rows["strength"], rows["mean"], marker="o", ms=3, label=label(method, family))
            zero = rows.loc[rows["strength"] == 0, "mean"].iloc[0]
            lo, hi = zero + rows["delta_lo"], zero + rows["delta_hi"]
            ax.fill_between(rows["strength"], lo.fillna(zero), hi.fillna(zero), alpha=0.15)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(suite, fontsize=9)
        ax.set_xlabel("strength", fontsize=8)
        ax.set_ylabel("mean score", fontsize=8)
        ax.tick_params(labelsize=7)
    _finish_grid(fig, axes, len(suites), path)


def _figure_si(m: pd.DataFrame, path: Path) -> bool:
    """SI (k=1) at the largest ±s per suite and method, with CI whiskers."""
    if "si_k1" not in m or m["si_k1"].isna().all():
        return False
    plt = pyplot()
    top = m[m["si_k1"].notna()]
    top = top[top["strength"] == top.groupby("eval")["strength"].transform("max")]
    suites = list(dict.fromkeys(top["eval"]))
    fig, axes = plt.subplots(1, len(suites), figsize=(3.2 * len(suites), 2.8), squeeze=False)
    for ax, suite in zip(axes.flat, suites, strict=True):
        sub = top[top["eval"] == suite]
        names = [label(a, b) for a, b in zip(sub["method"], sub["family"], strict=True)]
        err = [sub["si_k1"] - sub["si_k1_lo"], sub["si_k1_hi"] - sub["si_k1"]]
        ax.bar(range(len(sub)), sub["si_k1"], yerr=err, capsize=2, color="tab:blue")
        ax.set_xticks(range(len(sub)), names, rotation=45, ha="right", fontsize=7)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"{suite}: SI k=1 at ±{sub['strength'].iloc[0]:g}", fontsize=9)
        ax.tick_params(labelsize=7)
    save_figure(fig, path)
    return True


def _figure_norms(vec_row: dict, path: Path) -> None:
    import numpy as np

    plt = pyplot()

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
    save_figure(fig, path)


def suite_lines(df: pd.DataFrame, cfg: dict, figs: Path, counts: dict) -> list[str]:
    """The metric sections of a report: a figure, then per suite its tables."""
    settings = MetricsConfig.model_validate(cfg.get("metrics", {}))
    mfv = TinyMfvConfig.model_validate(cfg.get("eval", {}).get("tinymfv", {}))
    plain = df[df["eval"] != TINYMFV]
    lines = []
    if not plain.empty:
        m = suite_metrics(plain, settings)
        _figure_scores(m, figs / "score_vs_alpha.png")
        lines += ["![score vs strength](figures/score_vs_alpha.png)", ""]
        if _figure_si(m, figs / "si.png"):
            lines += ["![SI](figures/si.png)", ""]
        for suite in dict.fromkeys(m["eval"]):
            lines += [f"## {suite}", ""]
            if suite in counts:
                lines += ["Rows: " + ", ".join(f"{k} {v}" for k, v in counts[suite].items()), ""]
            lines += [*_shift_table(m, suite), *_si_table(m, suite), ""]
    if TINYMFV in set(df["eval"]):
        f = _foundations(df, mfv, settings)
        lines += [f"## {TINYMFV}", "", *_foundation_lines(f, mfv.target, mfv.sign), ""]
    return lines


def _foundations(df: pd.DataFrame, mfv: TinyMfvConfig, settings: MetricsConfig) -> pd.DataFrame:
    return foundation_table(
        df[df["eval"] == TINYMFV],
        target=mfv.target,
        sign=mfv.sign,
        min_pmass=mfv.min_pmass,
        settings=settings,
    )


# -- the calibrated comparison (compare stage) ------------------------------------------


def calibration_rows(paths: list[Path]) -> list[dict]:
    rows = []
    for path in paths:
        cals = results_calibration(path)
        if not cals:
            continue
        first = pd.read_parquet(path, columns=["method", "family", "seed"]).iloc[0]
        for cal in cals:
            rows.append({**first.to_dict(), **cal})
    return rows


def achieved_kl(cals: list[dict]) -> dict[tuple[str, str], str]:
    """``(method, family) -> "KL+ / KL-"``: the calibrated KL of each side, averaged over
    seeds; ``*`` marks a fixed strength (prompting), ``⚠`` a missed target."""
    out: dict[tuple[str, str], str] = {}
    frame = pd.DataFrame(cals)
    if frame.empty:
        return out
    for (method, family), rows in frame.groupby(["method", "family"], sort=False):
        sides = []
        for sign in (1, -1):
            r = rows[rows["sign"] == sign]
            mark = "*" if (r["status"] == "fixed").all() else ""
            mark += "" if r["status"].isin(["ok", "fixed"]).all() else " ⚠"
            sides.append(f"{r['kl'].mean():.2g}{mark}")
        out[method, family] = " / ".join(sides)
    return out


def _calibration_lines(cals: list[dict]) -> list[str]:
    from weightsteer.calibrate import Calibration

    lines = [
        "| method | seed | side | strength s | KL calibration | KL audit | steps | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in cals:
        cal = Calibration(**{k: c[k] for k in Calibration.__dataclass_fields__})
        mark = "" if cal.status in ("ok", "fixed") else " ⚠"
        lines.append(
            f"| {label(c['method'], c['family'])} | {c['seed']} | {'+' if cal.sign > 0 else '−'} "
            f"| {cal.strength:+.4g} | {cal.kl:.3g} | {cal.audit_kl:.3g} | "
            f"{len(cal.evaluations)} | {cal.status}{mark} |"
        )
    return lines


def _compare_table(m: pd.DataFrame, suite: str, budget: float, kls: dict) -> list[str]:
    sub = m[m["eval"] == suite]
    lines = [
        f"| method | KL + / − | Δ at +{budget:g} nat | Δ at −{budget:g} nat | SI k=1 | SI k=2 | "
        "pmass + / − | seeds at +: sd, same sign |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (method, family), rows in sub.groupby(["method", "family"], sort=False):
        by = {r["strength"]: r for _, r in rows.iterrows()}
        up, down = by.get(budget), by.get(-budget)
        if up is None or down is None:
            continue
        seeds = "–"
        if up["seeds"] > 1:
            seeds = f"{up['delta_seed_sd']:.2f}, {up['sign_agree']:.0%}"
        warn = " ⚠ too few" if up.get("small") else ""
        lines.append(
            f"| {label(method, family)} | {kls.get((method, family), '–')} | "
            f"{_ci(up['delta'], up['delta_lo'], up['delta_hi'])} | "
            f"{_ci(down['delta'], down['delta_lo'], down['delta_hi'])} | "
            f"{_ci(up['si_k1'], up['si_k1_lo'], up['si_k1_hi'], '+.1f')}{warn} | "
            f"{_ci(up['si_k2'], up['si_k2_lo'], up['si_k2_hi'], '+.1f')} | "
            f"{up['pmass']:.2f} / {down['pmass']:.2f} | {seeds} |"
        )
    return lines


def _off_target_lines(f: pd.DataFrame, target: str | None, budget: float) -> list[str]:
    f = f[f["strength"] == budget]
    lines = [
        f"tinymfv at +{budget:g} nat: paired change in logit(wrongness) of the target "
        f"foundation ({target or 'none set'}) and the largest change among the others.",
        "",
        "| method | target Δ [CI] | largest off-target Δ [CI] | foundation |",
        "|---|---|---|---|",
    ]
    for (method, family), rows in f.groupby(["method", "family"], sort=False):
        tgt = rows[rows["target"]]
        off = rows[~rows["target"]].dropna(subset=["delta"])
        t = _ci(*tgt[["delta", "delta_lo", "delta_hi"]].iloc[0]) if len(tgt) else "–"
        o, name = "–", "–"
        if len(off):
            worst = off.loc[off["delta"].abs().idxmax()]
            o, name = _ci(worst["delta"], worst["delta_lo"], worst["delta_hi"]), worst["foundation"]
        lines.append(f"| {label(method, family)} | {t} | {o} | {name} |")
    return lines


def _verdict(m: pd.DataFrame, suite: str, budget: float, kls: dict) -> list[str]:
    """The mission's three questions, answered from the first suite's numbers."""
    sub = m[m["eval"] == suite]
    up = sub[sub["strength"] == budget].set_index(["method", "family"])
    down = sub[sub["strength"] == -budget].set_index(["method", "family"])
    keys = [k for k in up.index if k in down.index]
    weight = [k for k in keys if k[0] == "weight"]
    if not weight:
        return []
    fixed = [k for k in keys if k[0] != "weight" and "*" in kls.get(k, "")]
    tuned = [k for k in keys if k[0] != "weight" and k not in fixed]

    def right(k) -> bool:
        return up.loc[k, "delta_lo"] > 0 and down.loc[k, "delta_hi"] < 0

    def si(k) -> str:
        r = up.loc[k]
        return f"{label(*k)} {r['si_k1']:+.1f} [{r['si_k1_lo']:+.1f}, {r['si_k1_hi']:+.1f}]"

    ok = [label(*k) for k in weight if right(k)]
    ok_other = [label(*k) for k in tuned + fixed if right(k)]
    lines = [
        f"On `{suite}`:",
        "",
        f"- Right direction (Δ > 0 at +, < 0 at −, both CIs excluding 0): {len(ok)} of "
        f"{len(weight)} weight families ({', '.join(ok) or 'none'}); other methods: "
        f"{', '.join(ok_other) or 'none'}.",
    ]
    ranked = up.loc[weight, "si_k1"].dropna()
    if not ranked.empty:
        best = ranked.idxmax()
        line = f"- SI k=1 at {budget:g} nat: best weight family {si(best)}"
        others = up.loc[tuned, "si_k1"].dropna() if tuned else pd.Series(dtype=float)
        if not others.empty:
            rival = others.idxmax()
            w, o = up.loc[best], up.loc[rival]
            overlap = not (w["si_k1_lo"] > o["si_k1_hi"] or o["si_k1_lo"] > w["si_k1_hi"])
            line += f"; best baseline at the same KL {si(rival)}"
            line += " (the CIs overlap: no clear winner)" if overlap else ""
        lines.append(line + ".")
        for k in fixed:
            lines.append(
                f"- {si(k)}, at its own KL of {kls[k]} nat (+ / −): a prompt cannot be set "
                "to the budget, so it is not an equal-cost comparison."
            )
    sd = up.loc[weight, "delta_seed_sd"].dropna()
    if not sd.empty:
        lines.append(
            f"- Seed spread (sd of Δ at +): {sd.min():.2f} to {sd.max():.2f} over the weight "
            "families. Prompting and activation steering have no training seed (fitted once "
            "from the same pairs), so their spread is not measured here."
        )
    return [*lines, ""]


def _figure_compare(m: pd.DataFrame, budget: float, path: Path) -> None:
    """Δ at +budget and −budget per method and suite, with CI whiskers."""
    suites = list(dict.fromkeys(m["eval"]))
    names = list(dict.fromkeys(label(a, b) for a, b in zip(m["method"], m["family"], strict=True)))
    fig, axes = _suite_grid(len(suites), 0.22 * len(names) + 1.0)
    for ax, suite in zip(axes.flat, suites, strict=False):
        sub = m[m["eval"] == suite]
        for side, color, off in ((budget, "tab:blue", -0.15), (-budget, "tab:red", 0.15)):
            rows = sub[sub["strength"] == side]
            pairs = zip(rows["method"], rows["family"], strict=True)
            y = [names.index(label(a, b)) + off for a, b in pairs]
            err = [rows["delta"] - rows["delta_lo"], rows["delta_hi"] - rows["delta"]]
            ax.errorbar(rows["delta"], y, xerr=err, fmt="o", ms=3, color=color, capsize=2,
                        label=f"{side:+g} nat")  # fmt: skip
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(suite, fontsize=9)
        ax.set_xlabel("Δ score vs unsteered", fontsize=8)
        ax.tick_params(labelsize=7)
    _finish_grid(fig, axes, len(suites), path)


def compare_lines(root: Path, cfg: dict, figs: Path, counts: dict) -> list[str]:
    """The report section of the compare stage (nothing when it did not run)."""
    paths = sorted((root / "compare").glob("*.parquet"))
    if not paths:
        return []
    df = comparison_frame(read_results(paths))
    settings = MetricsConfig.model_validate(cfg.get("metrics", {}))
    mfv = TinyMfvConfig.model_validate(cfg.get("eval", {}).get("tinymfv", {}))
    budget = float(df["calibrated_kl"].dropna().iloc[0])
    c = cfg.get("compare", {})
    lines = [
        f"## Calibrated comparison at {budget:g} nat",
        "",
        f"Every method is set, per sign, to the strength where the {c.get('quantile', 0.95):.0%} "
        f"quantile of the per-token KL(steered ‖ unsteered) over {c.get('tokens', 20)} greedy "
        "tokens of held-out calibration prompts equals the budget; the audit column is the "
        "same statistic on other prompts. Prompting has no strength to tune: its KL is "
        "what it costs. Δ is paired against the unsteered model on the same rows.",
        "",
    ]
    if counts:
        lines += ["Prompts: " + ", ".join(f"{k} {v}" for k, v in counts.items()), ""]
    cals = calibration_rows(paths)
    kls = achieved_kl(cals)
    lines += [*_calibration_lines(cals), ""]
    plain = df[df["eval"] != TINYMFV]
    if not plain.empty:
        m = suite_metrics(plain, settings)
        _figure_compare(m, budget, figs / "compare.png")
        lines += ["![comparison](figures/compare.png)", ""]
        lines += _verdict(m, next(iter(dict.fromkeys(m["eval"]))), budget, kls)
        for suite in dict.fromkeys(m["eval"]):
            table = _compare_table(m, suite, budget, kls)
            lines += [f"### {suite} (calibrated)", "", *table, ""]
        lines += [
            "KL + / −: the calibrated statistic of each side (mean over seeds); * a prompt's "
            "fixed cost, not the budget; ⚠ a side that missed the budget (calibration table).",
            "",
        ]
    if TINYMFV in set(df["eval"]):
        f = _foundations(df, mfv, settings)
        lines += [f"### {TINYMFV} (calibrated)", "", *_off_target_lines(f, mfv.target, budget), ""]
    return lines


def write_report(root: str | Path) -> Path:
    """Write ``report.md`` and its figures for the run folder ``root``."""
    root = Path(root)
    manifest = json.loads((root / "manifest.json").read_text())
    paths = sorted((root / "results").glob("*.parquet"))
    vectors = _vector_rows(root)
    figs = root / "figures"
    figs.mkdir(exist_ok=True)
    for v in vectors:
        _figure_norms(v, figs / f"norms-{v['name']}.png")

    cfg = manifest["config"]
    counts = manifest.get("counts", {})
    lines = [
        f"# weightsteer run `{manifest['name']}`",
        "",
        f"Model `{cfg['model']['id']}`, behaviour `{cfg['behavior']['name']}`, questions "
        f"`{cfg['questions']['source']}`; config hash `{manifest['config_hash']}`.",
        "",
        "Score = choice logratio signed toward the POS behaviour, no system prompt. "
        "Δ = mean paired shift vs strength 0 [95% bootstrap CI over rows and seeds].",
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
        *(suite_lines(read_results(paths), cfg, figs, counts.get("eval", {})) if paths else []),
        *compare_lines(root, cfg, figs, counts.get("compare", {})),
    ]
    lines += ["## Where the vectors live", ""]
    lines += [f"![{v['name']}](figures/norms-{v['name']}.png)" for v in vectors]
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
    with atomic_path(root / HEADLINE, overwrite=True) as tmp:
        tmp.write_text("\n".join(headline_lines(root, manifest, paths)) + "\n")
    return out


def headline_lines(root: Path, manifest: dict, paths: list[Path]) -> list[str]:
    """The numbers the README quotes, generated (``headline.md``): the first suite's
    shift and SI tables, its calibrated comparison, and what model build they came from."""
    cfg = manifest["config"]
    settings = MetricsConfig.model_validate(cfg.get("metrics", {}))
    build = manifest.get("model_build") or {}
    made = f"model `{cfg['model']['id']}`"
    if build:
        made += (
            f" (build `{build['folder']}`, {build['steps']} steps, weights sha256 "
            f"`{str(build['weights_sha256'])[:16]}`)"
        )
    stages = manifest.get("stages", {})
    lines = [
        f"Run `{manifest['name']}` of {made}, config hash `{manifest['config_hash']}`; stage "
        "seconds: " + ", ".join(f"{k} {v['seconds']:.0f}" for k, v in stages.items()) + ".",
        "",
    ]
    if paths:
        df = read_results(paths)
        m = suite_metrics(df[df["eval"] != TINYMFV], settings)
        suite = next(iter(dict.fromkeys(m["eval"])))
        lines += [f"`{suite}`, every vector at fixed alpha:", "", *_shift_table(m, suite)]
        lines += [*_si_table(m, suite), ""]
    compare = sorted((root / "compare").glob("*.parquet"))
    if compare:
        cm = comparison_frame(read_results(compare))
        budget = float(cm["calibrated_kl"].dropna().iloc[0])
        m = suite_metrics(cm[cm["eval"] != TINYMFV], settings)
        suite = next(iter(dict.fromkeys(m["eval"])))
        kls = achieved_kl(calibration_rows(compare))
        lines += [f"`{suite}`, every method at the calibrated budget of {budget:g} nat:", ""]
        lines += [*_compare_table(m, suite, budget, kls), ""]
    return lines


def write_table_report(results: str | Path, cfg: dict | None = None) -> Path:
    """A report of a results table outside a run (``weightsteer eval --out``): written
    next to it as ``<stem>.md`` with figures in ``<stem>-figures/``."""
    results = Path(results)
    df = read_results([results])
    figs = results.with_name(f"{results.stem}-figures")
    figs.mkdir(exist_ok=True)
    lines = [f"# weightsteer results `{results.name}`", "", *suite_lines(df, cfg or {}, figs, {})]
    text = "\n".join(lines).replace("(figures/", f"({figs.name}/")
    out = results.with_suffix(".md")
    with atomic_path(out, overwrite=True) as tmp:
        tmp.write_text(text)
    return out
