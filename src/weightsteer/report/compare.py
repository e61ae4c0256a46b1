"""The calibrated comparison section: calibration table, per-suite comparison, verdict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from weightsteer.evals.metrics import (
    MetricsConfig,
    comparison_frame,
    suite_metrics,
)
from weightsteer.evals.results import read_results, results_calibration
from weightsteer.evals.suites.tinymfv import TinyMfvConfig
from weightsteer.report.figures import figure_compare
from weightsteer.report.tables import (
    TINYMFV,
    calibration_lines,
    compare_table,
    foundations,
    label,
    off_target_lines,
)


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


def verdict(m: pd.DataFrame, suite: str, budget: float, kls: dict) -> list[str]:
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


@dataclass(frozen=True)
class Compared:
    """The compare stage's tables read once: the comparison frame, its metrics (tinymfv
    aside; None when only tinymfv ran), the budget and each side's achieved KL."""

    frame: pd.DataFrame
    metrics: pd.DataFrame | None
    budget: float
    cals: list[dict]
    kls: dict


def read_compared(paths: list[Path], settings: MetricsConfig) -> Compared | None:
    if not paths:
        return None
    df = comparison_frame(read_results(paths))
    plain = df[df["eval"] != TINYMFV]
    cals = calibration_rows(paths)
    m = suite_metrics(plain, settings) if not plain.empty else None
    return Compared(df, m, float(df["calibrated_kl"].dropna().iloc[0]), cals, achieved_kl(cals))


def compare_lines(
    paths: list[Path], cfg: dict, figs: Path, counts: dict, compared: Compared | None = None
) -> list[str]:
    """The report section of the compare stage (nothing when it did not run);
    ``compared``: ``read_compared(paths)`` when the caller has it already."""
    settings = MetricsConfig.model_validate(cfg.get("metrics", {}))
    compared = compared or read_compared(paths, settings)
    if compared is None:
        return []
    df, m, budget = compared.frame, compared.metrics, compared.budget
    mfv = TinyMfvConfig.model_validate(cfg.get("eval", {}).get("tinymfv", {}))
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
    kls = compared.kls
    lines += [*calibration_lines(compared.cals), ""]
    if m is not None:
        figure_compare(m, budget, figs / "compare.png")
        lines += ["![comparison](figures/compare.png)", ""]
        lines += verdict(m, next(iter(dict.fromkeys(m["eval"]))), budget, kls)
        for suite in dict.fromkeys(m["eval"]):
            table = compare_table(m, suite, budget, kls)
            lines += [f"### {suite} (calibrated)", "", *table, ""]
        lines += [
            "KL + / −: the calibrated statistic of each side (mean over seeds); * a prompt's "
            "fixed cost, not the budget; ⚠ a side that missed the budget (calibration table).",
            "",
        ]
    if TINYMFV in set(df["eval"]):
        f = foundations(df, mfv, settings)
        lines += [f"### {TINYMFV} (calibrated)", "", *off_target_lines(f, mfv.target, budget), ""]
    return lines
