"""The verdict: does weight steering move the behaviour further than each baseline at the
same KL budget, side by side (``sides.py``), on identical rows, adjusted for the number of
pairs (``multiplicity.py``); with headroom, SI, the seed spread, the prompts' own cost and
the sides that missed their budget said apart."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from weightsteer.evals.bootstrap import MetricsConfig, sd_ratio_interval
from weightsteer.evals.markdown import ci_cell, label
from weightsteer.evals.metrics import paired_effects
from weightsteer.evals.multiplicity import adjust
from weightsteer.evals.sides import headroom, side_effects
from weightsteer.report.comparison_section import Compared, verdict_order


def _sides(m: pd.DataFrame, suite: str, s: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    sub = m[m["eval"] == suite]
    up = sub[sub["strength"] == s].set_index(["method", "family"])
    down = sub[sub["strength"] == -s].set_index(["method", "family"])
    return up, down


SIDE = {1: "+", -1: "−"}


@dataclass
class SideTally:
    """One side of one suite's verdict in numbers."""

    share: float = float("nan")  # unsteered share of rows already on this side's answer
    room: bool = True
    pairs: int = 0
    wins: int = 0  # adjusted p below 1 - ci, weight further, and weight the right way
    losses: int = 0  # ... baseline further, and the baseline the right way
    right: list[str] = field(default_factory=list)  # weight families the right way
    back: tuple[int, int, int] = (0, 0, 0)  # ▲, ▼, pairs with the misses put back


@dataclass
class Tally:
    """One suite's verdict in numbers (the summary table at the top)."""

    weight: int = 0  # weight families at the budget on at least one side
    families: int = 0  # weight families compared
    baselines: int = 0  # baselines at the budget on at least one side
    sides: dict[int, SideTally] = field(default_factory=dict)


def verdict(
    compared: Compared, suite: str, settings: MetricsConfig, tally: Tally | None = None
) -> list[str]:
    """Does weight steering move ``suite`` further than each baseline at the same KL, side
    by side?

    Each side (+: toward POS, −: toward NEG) is judged on its own (``sides.py``): a
    method's gain is its paired shift against the unsteered model, signed so that > 0 is
    the right way. Every weight family is set against every baseline that hit the budget on
    that side, as the paired difference of gains on the same rows; the family of pairs of
    one side is adjusted for multiplicity (``metrics.adjust``), and a pair counts as won
    only where the winner moves the right way. A side without headroom (``metrics.
    headroom``) is named and not judged. ``tally`` is filled with the counts."""
    tally = tally if tally is not None else Tally()
    m, budget = compared.metrics, compared.budget
    assert m is not None
    up, down = _sides(m, suite, budget)
    rows = {1: up, -1: down}
    keys = [k for k in dict.fromkeys([*up.index, *down.index]) if _status(rows, k) != "fixed"]
    at = {d: [k for k in keys if k in rows[d].index and rows[d].loc[k, "at_budget"]]
          for d in (1, -1)}  # fmt: skip
    hit = [k for k in keys if k in at[1] or k in at[-1]]
    weight = [k for k in hit if k[0] == "weight"]
    tuned = [k for k in hit if k[0] != "weight"]
    tally.weight, tally.baselines = len(weight), len(tuned)
    tally.families = len([k for k in keys if k[0] == "weight"])
    tag = "in distribution" if compared.suites.get(suite, {}).get("iid") else "out of distribution"
    lines = [f"### `{suite}` ({tag}), at {budget:g} nat", ""]
    room = headroom(compared.frame, suite)
    for d in (1, -1):
        tally.sides[d] = SideTally(room[d], room[d] < settings.headroom)
    lines.append(
        f"Unsteered, {room[1]:.0%} of rows give the POS answer: + side "
        f"{'has room' if tally.sides[1].room else 'has no room'}, − side "
        f"{'has room' if tally.sides[-1].room else 'has no room'} (a side has none when "
        f"{settings.headroom:.0%} of rows already give its answer)."
    )
    lines.append("")
    near = {d: [k for k in keys if k in rows[d].index and _near(rows[d].loc[k, "status"])]
            for d in (1, -1)}  # fmt: skip
    units = [(*k, budget) for k in keys if k in near[1] or k in near[-1]]
    if not units:
        lines += [f"No method was calibrated to {budget:g} nat: no verdict.", ""]
        return _missed_lines(lines, keys, at, rows)
    gains, pairs = side_effects(compared.frame, suite, units, settings)
    g = gains.set_index(["method", "family", "side"]) if len(gains) else gains
    if weight:
        lines += _gain_table(g, weight + tuned, at, up)
        for d in (1, -1):
            lines += _side_lines(d, g, pairs, weight, tuned, at, tally.sides[d], settings, budget)
    else:
        lines += [f"No weight family reached {budget:g} nat on either side: no strict verdict.",
                  ""]  # fmt: skip
    lines += _sensitivity(g, pairs, keys, near, tally, settings, budget)
    lines += _seed_lines(compared, suite, weight, tuned, at, settings)
    lines += _prompt_lines(compared, suite, weight, settings)
    return _missed_lines(lines, keys, at, rows)


MISSED_NEAR = ("audit off", "jumps", "not converged")  # calibrated to the budget, not on it


def _near(status: str) -> bool:
    """A side calibrated to the budget whatever its audit or search said: ok, or missed
    only by ``MISSED_NEAR`` (not a method that cannot reach it)."""
    parts = [p.split(" (")[0].strip() for p in str(status).split(";")]
    return bool(parts) and all(p in ("ok", *MISSED_NEAR) for p in parts)


def _sensitivity(
    g: pd.DataFrame, pairs: pd.DataFrame, keys: list, near: dict, tally: Tally,
    settings: MetricsConfig, budget: float,
) -> list[str]:  # fmt: skip
    """How the verdict changes with the misses put back: every side calibrated to the
    budget counted, whatever its audit or jump said (``MISSED_NEAR``)."""
    weight = [k for k in keys if k[0] == "weight"]
    tuned = [k for k in keys if k[0] != "weight"]
    cells = []
    for d in (1, -1):
        t = SideTally(tally.sides[d].share, tally.sides[d].room)
        _side_lines(d, g, pairs, weight, tuned, near, t, settings, budget)
        tally.sides[d].back = (t.wins, t.losses, t.pairs)
        if t.room:
            cells.append(f"{SIDE[d]} side ▲ in {t.wins} of {t.pairs} pairs, ▼ in {t.losses}")
    if not cells:
        return []
    return [f"- With the misses put back (sides that were calibrated to the budget but missed "
            f"it by {', '.join(MISSED_NEAR)}): {'; '.join(cells)}.", ""]  # fmt: skip


def _status(rows: dict, k) -> str:
    return str(next((r.loc[k, "status"] for r in rows.values() if k in r.index), ""))


def _gain(g: pd.DataFrame, k, d: int) -> pd.Series | None:
    key = (*k, d)
    return g.loc[key] if len(g) and key in g.index else None


def _gain_table(g: pd.DataFrame, keys: list, at: dict, up: pd.DataFrame) -> list[str]:
    """Each method's gain per side with its CI, the two-sided swing, SI at the budget and
    the sd over rows of the per-row gain."""
    lines = ["| method | gain + [CI] | gain − [CI] | swing | SI k=1 | SI k=2 | row sd + / − |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for k in keys:
        cells, sds, both = [], [], []
        for d in (1, -1):
            r = _gain(g, k, d)
            if r is None or k not in at[d]:
                cells.append("missed")
                sds.append("–")
                continue
            cells.append(ci_cell(r["gain"], r["gain_lo"], r["gain_hi"]))
            sds.append(f"{r['row_sd']:.2f}")
            both.append(r["gain"])
        swing = f"{sum(both) / 2:+.2f}" if len(both) == 2 else "–"
        si = [up.loc[k, c] if k in up.index else float("nan") for c in ("si_k1", "si_k2")]
        si_cells = ["–" if math.isnan(v) else f"{v:+.1f}" for v in si]
        lines.append(f"| {label(*k)} | {cells[0]} | {cells[1]} | {swing} | {si_cells[0]} | "
                     f"{si_cells[1]} | {sds[0]} / {sds[1]} |")  # fmt: skip
    return [*lines, ""]


def _side_lines(
    d: int, g: pd.DataFrame, pairs: pd.DataFrame, weight: list, tuned: list, at: dict,
    t: SideTally, settings: MetricsConfig, budget: float,
) -> list[str]:  # fmt: skip
    """One side's pairs: rows the baselines, columns the weight families; adjusted over
    the side's family of pairs."""
    name = "toward POS" if d > 0 else "toward NEG"
    ws, bs = [k for k in weight if k in at[d]], [k for k in tuned if k in at[d]]
    t.right = [label(*k) for k in ws if (r := _gain(g, k, d)) is not None and r["gain_lo"] > 0]
    if not t.room:
        return [f"{SIDE[d]} side ({name}): no room, {t.share:.0%} of rows already give its "
                "answer unsteered; not judged.", ""]  # fmt: skip
    if not ws or not bs:
        return [f"{SIDE[d]} side ({name}): nothing to set against each other at {budget:g} "
                "nat.", ""]  # fmt: skip
    sub = pairs[pairs["side"] == d]
    found = {(r["a"][:2], r["b"][:2]): r for r in sub.to_dict("records")}
    family = [found[w, b] for b in bs for w in ws]
    adjusted = adjust([r["p"] for r in family], settings.adjust)
    alpha = 1 - settings.ci
    cells = {}
    for r, q in zip(family, adjusted, strict=True):
        w, b = r["a"][:2], r["b"][:2]
        gw, gb = _gain(g, w, d), _gain(g, b, d)
        win = q < alpha and r["diff"] > 0 and gw is not None and gw["gain_lo"] > 0
        lose = q < alpha and r["diff"] < 0 and gb is not None and gb["gain_lo"] > 0
        t.wins, t.losses = t.wins + win, t.losses + lose
        cells[w, b] = ci_cell(r["diff"], r["diff_lo"], r["diff_hi"]) + (
            " ▲" if win else " ▼" if lose else "")  # fmt: skip
    t.pairs = len(family)
    how = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no"}[settings.adjust]
    lines = [
        f"{SIDE[d]} side ({name}), weight − baseline gain with its raw {settings.ci:.0%} CI; "
        f"▲ / ▼: {how} adjustment over "
        + ("this one pair" if t.pairs == 1 else f"these {t.pairs} pairs")
        + f" leaves p < {alpha:.2g} and the "
        "one further moves the right way:",
        "",
        "| baseline | " + " | ".join(label(*w) for w in ws) + " |",
        "|---" * (1 + len(ws)) + "|",
        *[f"| {label(*b)} | " + " | ".join(cells[w, b] for w in ws) + " |" for b in bs],
        "",
        f"- {SIDE[d]} side: ▲ in {t.wins} of {t.pairs} pairs, ▼ in {t.losses}; weight "
        f"families the right way (gain CI > 0): {', '.join(t.right) or 'none'}.",
        "",
    ]
    return lines


def _seed_lines(
    compared: Compared, suite: str, weight: list, tuned: list, at: dict, settings: MetricsConfig
) -> list[str]:
    """Is weight steering less variable across seeds: each weight / baseline sd ratio of
    the swing with its F interval, and in words which way the ones that exclude 1 point.
    An activation method's seeds are bootstrap resamples of the pairs, a weight family's
    are training seeds: the ratio sets two sources of spread side by side."""
    both = [k for k in weight + tuned if k in at[1] and k in at[-1]]
    ws, bs = [k for k in both if k[0] == "weight"], [k for k in both if k[0] != "weight"]
    if not ws or not bs:
        return []
    units = [(*k, compared.budget) for k in both]
    eff = paired_effects(compared.frame, suite, units, settings)[0].set_index(["method", "family"])
    cells, more, less = [], [], []
    for t in bs:
        b = eff.loc[t]
        for k in ws:
            a = eff.loc[k]
            r, lo, hi = sd_ratio_interval(
                a["seed_sd"], int(a["seeds"]), b["seed_sd"], int(b["seeds"]), settings.ci,
                settings.seed,
            )  # fmt: skip
            if math.isnan(r):
                continue
            pair = f"{label(*k)}/{label(*t)}"
            cells.append(f"{pair} {r:.2g} [{lo:.2g}, {hi:.2g}]")
            if lo > 1:
                more.append(pair)
            elif hi < 1:
                less.append(pair)
    if not cells:
        return []
    words = (f"the interval excludes 1 in {len(more) + len(less)} of {len(cells)}: weight "
             f"steering more variable in {len(more)} ({', '.join(more) or 'none'}), less in "
             f"{len(less)} ({', '.join(less) or 'none'})")  # fmt: skip
    return [f"- Seed sd ratio of the swing, weight / baseline (training seeds vs resamples of "
            f"the pairs; < 1: less variable): {words}. {'; '.join(cells)}.", ""]  # fmt: skip


def _prompt_lines(compared: Compared, suite: str, weight: list, settings) -> list[str]:
    """A prompt has one strength and its own KL: set against the weight families at the
    budget nearest that KL."""
    m = compared.metrics
    assert m is not None  # a verdict is read only from the metrics of a comparison
    sub = m[(m["eval"] == suite) & (m["status"] == "fixed") & (m["strength"] > 0)]
    out = []
    for _, p in sub.iterrows():
        down = m[
            (m["eval"] == suite)
            & (m["method"] == p["method"])
            & (m["family"] == p["family"])
            & (m["strength"] == -p["strength"])
        ]
        kl = (p["kl"] + float(down["kl"].iloc[0])) / 2 if len(down) else p["kl"]
        near = min(compared.budgets, key=lambda b: abs(math.log(b / kl))) if kl > 0 else None
        if near is None:
            continue
        up, dn = _sides(m, suite, near)
        ws = [
            k
            for k in weight
            if k in up.index and k in dn.index and up.loc[k, "at_budget"] and dn.loc[k, "at_budget"]
        ]
        if not ws:
            continue
        unit = (p["method"], p["family"], float(p["strength"]))
        eff, pairs = paired_effects(
            compared.frame, suite, [unit, *[(*k, near) for k in ws]], settings
        )
        cells = []
        for r in pairs.to_dict("records"):
            if r["b"] == unit:
                cells.append(
                    f"{label(*r['a'][:2])} {ci_cell(r['diff'], r['diff_lo'], r['diff_hi'])}"
                )
        e = eff.iloc[0]
        out.append(
            f"- {label(p['method'], p['family'])} costs its own KL ({p['kl']:.2g} / "
            f"{float(down['kl'].iloc[0]) if len(down) else float('nan'):.2g} nat): effect "
            f"{ci_cell(e['effect'], e['effect_lo'], e['effect_hi'])}; weight family at "
            f"{near:g} nat − it: {'; '.join(cells)} (not an equal-cost comparison unless "
            "the KLs match)."
        )
    return out


def _missed_lines(lines: list[str], keys: list, at: dict, rows: dict) -> list[str]:
    """Each side that missed the budget, with its outcome: left out of that side only."""
    names = []
    for k in keys:
        for d in (1, -1):
            if k not in at[d] and k in rows[d].index:
                names.append(f"{label(*k)} {SIDE[d]}: {rows[d].loc[k, 'status']}")
    if names:
        lines.append(f"- Missed the budget, left out of that side: {'; '.join(names)}.")
    return [*lines, ""]


def verdict_lines(
    compared: Compared, settings: MetricsConfig, detail: int | None = None
) -> list[str]:
    """The report's answer to the mission's question: a summary table over the suites,
    then suite by suite (OOD first; ``detail``: only the first so many in full)."""
    if compared.metrics is None:
        return []
    suites = verdict_order(
        list(dict.fromkeys(compared.metrics["eval"])), compared.suites, settings.headline
    )
    ci = f"{settings.ci:.0%}"
    seeds = int(compared.metrics["seeds"].max())
    how = {"holm": "Holm (family-wise error)", "bh": "Benjamini-Hochberg (false discovery "
           "rate)", "none": "no"}[settings.adjust]  # fmt: skip
    lines = [
        "## Verdict: weight steering vs the baselines at the same KL "
        f"({compared.budget:g} nat, {compared.statistic})",
        "",
        "Each side is judged on its own. A method's gain on a side is its paired shift "
        "against the unsteered model at that side's budget, signed so that > 0 is the right "
        "way (toward POS at +, toward NEG at −), averaged over rows and seeds: a method "
        "that lowers the score at both signs gains on one side only. Each pair is the "
        f"difference of two methods' gains on the same rows with its raw {ci} "
        f"percentile-bootstrap CI ({settings.bootstrap} draws; rows drawn once for all; "
        f"{seeds} seed(s), "
        + (
            "seeds resampled too"
            if seeds >= settings.min_seeds
            else f"seeds not resampled, fewer than {settings.min_seeds}: their spread is the "
            "seed sd line, with a normal-theory interval"
        )
        + f"); the pairs of one side and suite are one family, adjusted by {how}, and a pair "
        "is won (▲ / ▼) only where the adjusted p-value is below "
        f"{1 - settings.ci:.2g} and the method further ahead moves the right way. A side "
        f"where {settings.headroom:.0%} of rows already give its answer unsteered has no room "
        "and is not judged. Every pair is shown; none is chosen on these rows.",
        "",
    ]
    body, rows = [], []
    for i, suite in enumerate(suites):
        t = Tally()
        lines_i = verdict(compared, suite, settings, t)
        if detail is None or i < detail:
            body += lines_i
        kind = "IID" if compared.suites.get(suite, {}).get("iid") else "OOD"
        cells = []
        for d in (1, -1):
            st = t.sides.get(d, SideTally())
            if not st.room:
                cells.append(f"no room ({st.share:.0%})")
            else:
                won, lost, n = st.back
                neither = st.pairs - st.wins - st.losses
                cells.append(f"{len(st.right)} / {st.wins} / {st.losses} / {neither} "
                             f"({won} / {lost} of {n})")  # fmt: skip
        pos = t.sides[1].share if 1 in t.sides else float("nan")
        rows.append(f"| `{suite}` | {kind} | {pos:.0%} | {t.weight} of {t.families} | "
                    f"{t.baselines} | {cells[0]} | {cells[1]} |")  # fmt: skip
    summary = [
        "| suite | | unsteered POS | weight families at the budget | baselines | + side: "
        "weight right way / ▲ / ▼ / neither (misses back: ▲ / ▼ of pairs) | − side: the same |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    return [*lines, *summary, *body]
