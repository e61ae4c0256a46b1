"""The report's markdown tables: shifts with CIs, SI, calibration, capabilities (a suite
with tables of its own adds them through its registration, ``evals.SuiteReport``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from weightsteer.evals.bootstrap import DEFAULTS, MetricsConfig
from weightsteer.evals.markdown import ci_cell, label, measure


def shift_table(m: pd.DataFrame, suite: str, settings: MetricsConfig = DEFAULTS) -> list[str]:
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
            ci_cell(by[s]["delta"], by[s]["delta_lo"], by[s]["delta_hi"]) if s in by else ""
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
    n_seeds, n = int(sub["seeds"].max()), int(sub["rows"].iloc[0])
    lines.append(
        f"\n{n} rows, {n_seeds} seed(s). Δ: mean paired shift vs strength 0 "
        f"{ci_note(settings, n_seeds)} Off-format: the largest share of rows under the pmass "
        "threshold."
    )
    return lines


def si_table(m: pd.DataFrame, suite: str) -> list[str]:
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
            f"{ci_cell(r['si_k1'], r['si_k1_lo'], r['si_k1_hi'], '+.1f')} | "
            f"{ci_cell(r['si_k2'], r['si_k2_lo'], r['si_k2_hi'], '+.1f')} | {r['fix']:.0%} | "
            f"{r['broke']:.0%} | {r['flip']:.0%} | {r['counter']:.0%} | "
            f"{r['n_cho']:.0f} / {r['n_rej']:.0f}{warn} |"
        )
    return ["", "Surgical informedness (fix: wrong-side rows fixed at +s; broke: right-side rows "
            "broken at +s; flip / counter: the same at -s):", "", *lines]  # fmt: skip


def ci_note(settings: MetricsConfig, seeds: int) -> str:
    """The sentence under a table saying how its intervals were made."""
    how = (
        "rows and seeds resampled"
        if seeds >= settings.min_seeds
        else f"rows resampled; {seeds} seed(s) all kept in every draw (fewer than "
        f"{settings.min_seeds} would understate their variance: see the seed sd)"
    )
    return f"[{settings.ci:.0%} percentile bootstrap CI, {settings.bootstrap} draws, {how}.]"


def calibration_lines(cals: list[dict]) -> list[str]:
    from weightsteer.methods.calibrate import Calibration

    lines = [
        "| method | seed | budget | side | strength s | KL calibration | KL audit | steps "
        "| status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cals:
        cal = Calibration(**{k: c[k] for k in Calibration.__dataclass_fields__})
        mark = "" if cal.status in ("ok", "fixed") else " ⚠"
        budget = "own" if cal.status == "fixed" else f"{c.get('budget', cal.target):g}"
        lines.append(
            f"| {label(c['method'], c['family'])} | {c['seed']} | {budget} | "
            f"{'+' if cal.sign > 0 else '−'} | {cal.strength:+.4g} | {cal.kl:.3g} | "
            f"{cal.audit_kl:.3g} | {len(cal.evaluations)} | {cal.status}{mark} |"
        )
    return lines


def kl_cell(up: pd.Series, down: pd.Series) -> str:
    """``"KL+ / KL-"`` achieved on the calibration prompts; ``*`` a fixed strength (a
    prompt: its own cost), ``⚠`` a side that missed its budget."""

    def one(r: pd.Series) -> str:
        mark = "*" if str(r.get("status", "")) == "fixed" else ""
        mark += "" if r.get("at_budget", False) or mark else " ⚠"
        return f"{r['kl']:.2g}{mark}"

    return f"{one(up)} / {one(down)}"


@dataclass(frozen=True)
class Sides:
    """One method's metrics rows at ``+s`` and ``-s``: ``s`` is the budget, or a prompt's
    own fixed strength; ``ok``: a prompt, or both sides at the budget."""

    s: float
    up: pd.Series
    down: pd.Series
    fixed: bool

    @property
    def ok(self) -> bool:
        return bool(self.fixed or (self.up["at_budget"] and self.down["at_budget"]))


def budget_sides(rows: pd.DataFrame, budget: float) -> Sides | None:
    """``rows``: one (method, family) of one suite's metrics; None without both sides."""
    fixed = rows["status"].eq("fixed")
    s = float(rows.loc[fixed, "strength"].abs().max()) if fixed.any() else budget
    by = {r["strength"]: r for _, r in rows.iterrows()}
    up, down = by.get(s), by.get(-s)
    if up is None or down is None:
        return None
    return Sides(s, up, down, bool(fixed.any()))


def compare_table(m: pd.DataFrame, suite: str, budget: float) -> tuple[list[str], list[str]]:
    """The methods at ±``budget`` (a prompt at its own cost, marked ``*``), and apart the
    sides that missed the budget: ``(table, missed table)``."""
    sub = m[m["eval"] == suite]
    head = [
        f"| method | KL + / − | Δ at +{budget:g} nat | Δ at −{budget:g} nat | SI k=1 | SI k=2 | "
        "pmass + / − | seeds at +: sd, same sign |",
        "|---|---|---|---|---|---|---|---|",
    ]
    hit, missed = list(head), list(head)
    for (method, family), rows in sub.groupby(["method", "family"], sort=False):
        sides = budget_sides(rows, budget)
        if sides is None:
            continue
        up, down = sides.up, sides.down
        seeds = "–"
        if up["seeds"] > 1:
            seeds = f"{up['delta_seed_sd']:.2f}, {up['sign_agree']:.0%}"
        warn = " ⚠ too few" if up.get("small") else ""
        line = (
            f"| {label(method, family)} | {kl_cell(up, down)} | "
            f"{ci_cell(up['delta'], up['delta_lo'], up['delta_hi'])} | "
            f"{ci_cell(down['delta'], down['delta_lo'], down['delta_hi'])} | "
            f"{ci_cell(up['si_k1'], up['si_k1_lo'], up['si_k1_hi'], '+.1f')}{warn} | "
            f"{ci_cell(up['si_k2'], up['si_k2_lo'], up['si_k2_hi'], '+.1f')} | "
            f"{up['pmass']:.2f} / {down['pmass']:.2f} | {seeds} |"
        )
        (hit if sides.ok else missed).append(line)
    return hit, missed if len(missed) > len(head) else []


def example_lines(rows: pd.DataFrame) -> list[str]:
    """One decoded answer of a generative suite at every strength of the first
    intervention: the row its top strength moves most (a chat-template bug shows here when
    numbers hide it)."""
    rows = rows[rows["text"].fillna("") != ""]
    if rows.empty:
        return []
    first = rows.iloc[0]
    unit = rows[(rows["method"] == first["method"]) & (rows["family"] == first["family"])
                & (rows["seed"] == first["seed"])]  # fmt: skip
    by = unit.pivot_table(index="row_id", columns="strength", values="score")
    row_id = (by[by.columns.max()] - by[by.columns.min() if 0.0 not in by else 0.0]).idxmax()
    one = unit[unit["row_id"] == row_id]
    lines = [f"Example ({label(first['method'], first['family'])}, seed {first['seed']}, "
             f"row `{row_id}`, the one the top strength moves most):", ""]  # fmt: skip
    for _, r in one.sort_values("strength").iterrows():
        text = " ".join(str(r["text"]).split())[:300].replace("|", "/")
        lines.append(f"- strength {r['strength']:+g} (score {r['score']:+.2f}): {text}")
    return [*lines, ""]


def capability_table(m: pd.DataFrame, suite: str, measured: str) -> list[str]:
    """A capability suite: its measure at strength 0 and its paired change at each
    strength, per method, with CIs."""
    what = measure(measured)
    name, fmt, dfmt = what.name, what.fmt, what.delta_fmt
    sub = m[m["eval"] == suite]
    strengths = sorted(s for s in sub["strength"].unique() if s != 0)
    lines = [
        f"| method | {name} at 0 | " + " | ".join(f"Δ at {s:+g}" for s in strengths) + " |",
        "|---" * (len(strengths) + 2) + "|",
    ]
    for (method, family), rows in sub.groupby(["method", "family"], sort=False):
        by = {r["strength"]: r for _, r in rows.iterrows()}
        cells = [
            ci_cell(by[s]["value_delta"], by[s]["value_delta_lo"], by[s]["value_delta_hi"], dfmt)
            if s in by
            else ""
            for s in strengths
        ]
        lines.append(
            f"| {label(method, family)} | {by[0.0]['value']:{fmt}} | " + " | ".join(cells) + " |"
        )
    better = "higher" if what.higher_is_better else "lower"
    lines.append(
        f"\n{int(sub['rows'].iloc[0])} rows. Δ: paired change of the {name} vs strength 0 "
        f"({better} is better), with its CI."
    )
    return lines
