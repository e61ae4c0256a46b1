"""tinymfv's report tables in the seeds' form, and the seeds' three questions answered.

``seeds_lines``: per method, the target's change (mean ± sd over vignettes, CI), the
watched off-target foundation's, SI(target), SI_fwd, SI_rev, target_sep and pmass² × 100
(``mfv_metrics.py`` defines each). ``foundation_lines``: every foundation's change per
method. ``question_lines``: the three questions of the seeds' Authority benchmark, each
answered yes / no / inconclusive by the rule printed under it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from weightsteer.evals.bootstrap import MetricsConfig, at_budget, interval
from weightsteer.evals.markdown import ci_cell, label
from weightsteer.evals.multiplicity import adjust, bootstrap_p


def condition_lines(f: pd.DataFrame, target: str | None, sign: int) -> list[str]:
    """The sweep's table: per condition and foundation, the change at the largest ±s."""
    s = f["strength"].abs().max()
    f = f[f["strength"].isin([s, -s])]
    lines = [
        f"Paired change in logit(wrongness) vs strength 0, per condition and foundation, at "
        f"±{s:g} [CI]; target: {target or 'none set (eval.tinymfv.target)'}"
        + (f", expected to move {'up' if sign > 0 else 'down'} at +α." if target else ".")
        + " Δ: over the vignettes in format at both strengths; Δ all: over every vignette "
        "(those pushed off format too).",
        "",
        f"| method | condition | foundation | Δ at -{s:g} | Δ at +{s:g} | Δ all at +{s:g} | "
        "vignettes | low-mass cells |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = ["method", "family", "condition", "foundation"]
    for (method, family, cond, found), rows in f.groupby(keys, sort=False):
        by = {r["strength"]: r for _, r in rows.iterrows()}
        name = f"**{found}** (target)" if found == target else found
        cells = [ci_cell(by[x]["delta"], by[x]["delta_lo"], by[x]["delta_hi"]) for x in (-s, s)]
        every = ci_cell(by[s]["delta_all"], by[s]["delta_all_lo"], by[s]["delta_all_hi"])
        dropped = max(int(by[x]["dropped"]) for x in (-s, s))
        lines.append(
            f"| {label(method, family)} | {cond or '–'} | {name} | {cells[0]} | {cells[1]} | "
            f"{every} | {int(rows['vignettes'].iloc[0])} | {dropped} / "
            f"{int(rows['cells'].iloc[0])} |"
        )
    return lines


def off_target_lines(f: pd.DataFrame, target: str | None, budget: float) -> list[str]:
    """The comparison's table: the target foundation vs the largest other change."""
    f = f[f["strength"] == budget]
    lines = [
        f"tinymfv at +{budget:g} nat: paired change in logit(wrongness) of the target "
        f"foundation ({target or 'none set'}) and the largest change among the others, per "
        "condition (in-format vignettes; Δ all: every vignette).",
        "",
        "| method | condition | target Δ [CI] | target Δ all | largest off-target Δ [CI] | "
        "foundation |",
        "|---|---|---|---|---|---|",
    ]
    for (method, family, cond), rows in f.groupby(["method", "family", "condition"], sort=False):
        tgt = rows[rows["target"]]
        off = rows[~rows["target"]].dropna(subset=["delta"])
        t = ci_cell(*tgt[["delta", "delta_lo", "delta_hi"]].iloc[0]) if len(tgt) else "–"
        t_all = (
            ci_cell(*tgt[["delta_all", "delta_all_lo", "delta_all_hi"]].iloc[0])
            if len(tgt)
            else "–"
        )
        o, name = "–", "–"
        if len(off):
            worst = off.loc[off["delta"].abs().idxmax()]
            o = ci_cell(worst["delta"], worst["delta_lo"], worst["delta_hi"])
            name = worst["foundation"]
        lines.append(f"| {label(method, family)} | {cond or '–'} | {t} | {t_all} | {o} | {name} |")
    return lines


CONTROLS = ("act:random",)  # not a competitor: the floor a real direction must clear


def _pm(mean: float, sd: float) -> str:
    """``mean ± sd``; an sd of one vignette (NaN) shows as –."""
    if math.isnan(mean):
        return "–"
    return f"{mean:+.2f} ± {'–' if math.isnan(sd) else f'{sd:.2f}'}"


def _num(x: float, fmt: str = "+.2f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _at(table: pd.DataFrame, s: float, fixed: set) -> pd.DataFrame:
    """Rows at strength ``s``, and a fixed-cost prompt's rows at its own +1."""
    if table.empty:
        return table
    keys = list(zip(table["method"], table["family"], strict=True))
    own = np.array([k in fixed for k in keys])
    return table[np.where(own, np.isclose(table["strength"], 1.0),
                          np.isclose(table["strength"], s))]  # fmt: skip


def fixed_units(df: pd.DataFrame) -> set:
    """(method, family) scored at its own fixed cost (a prompt), not at a budget."""
    if "status" not in df:
        return set()
    f = df[df["status"].fillna("").eq("fixed")]
    return set(zip(f["method"], f["family"], strict=True))


def missed_units(df: pd.DataFrame, s: float) -> set:
    """(method, family) whose side at ±``s`` missed its budget in some seed."""
    if "status" not in df:
        return set()
    d = at_budget(df)
    d = d[np.isclose(d["strength"].abs(), s)]
    bad = d[~d["status"].fillna("").isin(["ok", "fixed", ""])]
    return set(zip(bad["method"], bad["family"], strict=True))


def seeds_lines(
    found: pd.DataFrame, head: pd.DataFrame, s: float, *, target: str | None, watch: str,
    sign: int, fixed: set, missed: set, unit: str,
) -> list[str]:  # fmt: skip
    """The seeds' table at strength ``s`` (``unit``: "nat" at a budget, "" at fixed α)."""
    f, h = _at(found, s, fixed), _at(head, s, fixed)
    arrow = "↓" if sign < 0 else "↑"
    lines = [
        f"| method | Δ{target} {arrow} (mean ± sd) | CI | Δ{watch} → 0 (mean ± sd) | "
        f"SI({target}) ↑ | SI_fwd ↑ | SI_rev ↑ | {target}_sep ↑ | pmass²×100 ↑ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (method, family), rows in f.groupby(["method", "family"], sort=False):
        t = rows[rows["foundation"] == target]
        w = rows[rows["foundation"] == watch]
        # no SI row at all (every cell out of format): an empty table without columns
        hr = h[(h["method"] == method) & (h["family"] == family)] if len(h) else h
        name = label(method, family) + ("*" if (method, family) in fixed else "")
        name += " ⚠" if (method, family) in missed else ""
        tc = t.iloc[0] if len(t) else None
        wc = w.iloc[0] if len(w) else None
        hc = hr.iloc[0] if len(hr) else None
        lines.append(
            f"| {name} | {_pm(tc['delta'], tc['sd']) if tc is not None else '–'} | "
            f"{ci_cell(tc['delta'], tc['delta_lo'], tc['delta_hi']) if tc is not None else '–'}"
            f" | {_pm(wc['delta'], wc['sd']) if wc is not None else '–'} | "
            + " | ".join(
                _num(hc[k], ".2f" if k == "pmass2" else "+.2f") if hc is not None else "–"
                for k in ("si", "si_fwd", "si_rev", "target_sep", "pmass2")
            )
            + " |"
        )
    where = f"{s:g} {unit}".strip() if unit else f"α = +{s:g}"
    return [
        f"Seeds' columns at {where} (pooled over conditions; sd: over vignettes; SI with "
        f"k = 2; * a prompt at its own cost; ⚠ a side that missed its budget):",
        "",
        *lines,
    ]


def foundation_lines(found: pd.DataFrame, s: float, fixed: set, target: str | None) -> list[str]:
    """Every foundation's paired change (mean ± sd over vignettes) per method at ``s``."""
    f = _at(found, s, fixed)
    names = list(dict.fromkeys(f["foundation"]))
    head = [f"**{n}**" if n == target else n for n in names]
    lines = ["| method | " + " | ".join(head) + " |", "|---|" + "---|" * len(names)]
    for (method, family), rows in f.groupby(["method", "family"], sort=False):
        by = rows.set_index("foundation")
        cells = [_pm(by.loc[n, "delta"], by.loc[n, "sd"]) if n in by.index else "–"
                 for n in names]  # fmt: skip
        lines.append(f"| {label(method, family)} | " + " | ".join(cells) + " |")
    return lines


def _side(lo: float, hi: float, sign: int) -> str:
    """ "yes" when the interval lies on the intended side of 0, "no" on the other."""
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    if (sign < 0 and hi < 0) or (sign > 0 and lo > 0):
        return "yes"
    if (sign < 0 and lo > 0) or (sign > 0 and hi < 0):
        return "no"
    return "inconclusive"


def _overall(answers: list[str]) -> str:
    if "yes" in answers and "no" not in answers:
        return "yes"
    if "no" in answers and "yes" not in answers:
        return "no"
    return "inconclusive"


def _contest(h: pd.DataFrame, mine: list, theirs: list, col: str, lower: bool,
             settings: MetricsConfig) -> dict:  # fmt: skip
    """Per weight unit: each competitor's paired difference of ``col`` draws, adjusted
    over the whole family of pairs, as "▲" (better), "▼" (worse) or "＝"."""
    draws = {(r.method, r.family): getattr(r, col) for r in h.itertuples()}
    pairs = [(w, c) for w in mine for c in theirs]
    diffs = {p: draws[p[0]] - draws[p[1]] for p in pairs}
    ps = adjust([bootstrap_p(float(d[0]), d[1:]) for d in diffs.values()], settings.adjust)
    out: dict = {w: [] for w in mine}
    for (w, c), p in zip(pairs, ps, strict=True):
        d = diffs[(w, c)]
        lo, hi = interval(d[1:], settings.ci)
        good = d[0] < 0 if lower else d[0] > 0
        mark = "＝" if not p < 1 - settings.ci else "▲" if good else "▼"
        out[w].append((c, mark, float(d[0]), lo, hi))
    return out


def question_lines(found: pd.DataFrame, head: pd.DataFrame, s: float, *, target: str,
                   sign: int, fixed: set, missed: set, seeds: int,
                   settings: MetricsConfig) -> list[str]:  # fmt: skip
    """The seeds' three questions at budget ``s``, each answered by its stated rule."""
    h = _at(head, s, fixed)
    t = _at(found, s, fixed)
    t = t[t["foundation"] == target].set_index(["method", "family"])
    units = [(m, f) for m, f in zip(h["method"], h["family"], strict=True) if (m, f) not in missed]
    weights = [u for u in units if u[0] == "weight"]
    acts = [u for u in units if u[0].startswith("act:") and u[0] not in CONTROLS]
    prompts = [u for u in units if u[0].startswith("prompt:")]
    way = "down" if sign < 0 else "up"
    lines = [f"### The seeds' three questions at {s:g} nat", ""]
    if not weights:
        return [*lines, "No weight family reached the budget: none of the questions can be "
                "answered at it.", ""]  # fmt: skip
    q1 = {w: _side(t.loc[w, "delta_lo"], t.loc[w, "delta_hi"], sign) for w in weights}
    cells = {w: ci_cell(*t.loc[w, ["delta", "delta_lo", "delta_hi"]]) for w in weights}
    lines += [
        f"1. **Does dW move {target} in the right direction ({way})? "
        f"{_overall(list(q1.values()))}.** "
        + "; ".join(f"{label(*w)}: Δ{target} {cells[w]} ({a})" for w, a in q1.items()),
        f"   Rule: yes when the CI of Δ{target} lies {way} of 0, no when it lies on the "
        "other side, else inconclusive; overall yes when some family says yes and none no.",
    ]  # fmt: skip
    best = max(weights, key=lambda w: h.set_index(["method", "family"]).loc[w, "si"])
    for n, (name, col, lower, rivals, what) in enumerate((
        ("beat hidden-state steering and prompting", "si_draws", False, acts + prompts,
         f"SI({target})"),
        ("have lower uncertainty than hidden-state steering", "sd_draws", True, acts,
         f"the sd of Δ{target} over vignettes"),
    ), start=2):  # fmt: skip
        if not rivals:
            lines.append(f"{n}. **Does dW {name}? inconclusive**: no competitor reached the "
                         "budget.")  # fmt: skip
            continue
        res = _contest(h, weights, rivals, col, lower, settings)
        marks = [m for _, m, *_ in res[best]]
        answer = "no" if "▼" in marks else "yes" if set(marks) == {"▲"} else "inconclusive"
        detail = ", ".join(f"{label(*c)} {m} ({_num(d)} [{_num(lo)}, {_num(hi)}])"
                           for c, m, d, lo, hi in res[best])  # fmt: skip
        lines += [
            f"{n}. **Does dW {name}? {answer}.** {label(*best)} (the family with the highest "
            f"SI) vs each: {detail}.",
            f"   Rule: on {what}, ▲ when the paired difference is "
            f"{'below' if lower else 'above'} 0 at {settings.adjust}-adjusted p < "
            f"{1 - settings.ci:.2f} over all {len(weights) * len(rivals)} pairs, ▼ the "
            "reverse, ＝ neither; yes when it is ▲ against every one, no when ▼ against any, "
            "else inconclusive.",
        ]
    lines += ["", _caveats(seeds, missed, fixed & set(prompts), weights, h), ""]
    return lines


def _caveats(seeds: int, missed: set, fixed: set, weights: list, h: pd.DataFrame) -> str:
    parts = [f"Caveats: {seeds} seed{'s' if seeds != 1 else ''}"]
    by = h.set_index(["method", "family"])
    gone = [w for w in weights if math.isnan(by.loc[w, "target_sep"])]
    if gone:
        parts.append("off format at the budget (no target vignette keeps its true/false mass, "
                     "so nothing of theirs is measured): "
                     + ", ".join(f"{label(*w)} (pmass²×100 {by.loc[w, 'pmass2']:.1f})"
                                 for w in gone))  # fmt: skip
    if missed:
        parts.append("left out, their side missed the budget: "
                     + ", ".join(label(*u) for u in sorted(missed)))  # fmt: skip
    if fixed:
        parts.append("prompts marked * are at their own cost, not the budget: "
                     + ", ".join(label(*u) for u in sorted(fixed)))  # fmt: skip
    parts.append(
        "a method that moves nothing has an sd near 0, so question 3 is read with "
        "question 1; act:random is a control, not a competitor"
    )
    return "; ".join(parts) + "."
