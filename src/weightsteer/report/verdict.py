"""The verdict: does weight steering move the behaviour more than each baseline at the
same KL budget, suite by suite, on identical rows (``paired_effects``); with the seed
spread, the prompts' own cost and the sides that missed their budget said apart."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from weightsteer.evals.bootstrap import MetricsConfig, sd_ratio_interval
from weightsteer.evals.markdown import ci_cell, label
from weightsteer.evals.metrics import paired_effects
from weightsteer.report.comparison_section import Compared, verdict_order


def _sides(m: pd.DataFrame, suite: str, s: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    sub = m[m["eval"] == suite]
    up = sub[sub["strength"] == s].set_index(["method", "family"])
    down = sub[sub["strength"] == -s].set_index(["method", "family"])
    return up, down


@dataclass
class Tally:
    """One suite's verdict in numbers (the summary table at the top)."""

    weight: int = 0  # weight families at the budget on both sides
    families: int = 0  # weight families compared
    baselines: int = 0  # baselines at the budget on both sides
    wins: int = 0  # pairs whose CI is above 0
    losses: int = 0  # ... below 0
    right: int = 0  # weight families moving the right way on both sides

    @property
    def pairs(self) -> int:
        return self.weight * self.baselines


def verdict(
    compared: Compared, suite: str, settings: MetricsConfig, tally: Tally | None = None
) -> list[str]:
    """Does weight steering move ``suite`` more than each baseline at the same KL?

    Every weight family against every baseline that hit the budget on both sides: the
    paired difference of effects on identical rows with its CI, none chosen on these
    rows. A prompt (fixed cost) is set against the weight families at the budget nearest
    its own KL. Sides that missed their budget are named and left out. ``tally`` is
    filled with the counts."""
    tally = tally if tally is not None else Tally()
    m, budget = compared.metrics, compared.budget
    up, down = _sides(m, suite, budget)
    keys = [k for k in up.index if k in down.index]
    hit = [k for k in keys if up.loc[k, "at_budget"] and down.loc[k, "at_budget"]]
    missed = [k for k in keys if k not in hit and up.loc[k, "status"] != "fixed"]
    weight = [k for k in hit if k[0] == "weight"]
    tuned = [k for k in hit if k[0] != "weight"]
    tally.weight, tally.baselines = len(weight), len(tuned)
    tally.families = len([k for k in keys if k[0] == "weight"])
    tag = "in distribution" if compared.suites.get(suite, {}).get("iid") else "out of distribution"
    lines = [f"### `{suite}` ({tag}), at {budget:g} nat", ""]
    if not weight:
        lines += [f"No weight family reached {budget:g} nat on both sides: no verdict.", ""]
        return _missed_lines(lines, missed, up, down)
    units = [(*k, budget) for k in weight + tuned]
    eff, pairs = paired_effects(compared.frame, suite, units, settings)
    eff = eff.set_index(["method", "family"])
    by_pair = {
        (a[:2], b[:2]): r
        for a, b, r in zip(
            pairs.get("a", []), pairs.get("b", []), pairs.to_dict("records"), strict=True
        )
    }
    head = "| method | effect [CI] | seed sd [CI] |" + "".join(f" − {label(*t)} |" for t in tuned)
    lines += [head, "|---" * (3 + len(tuned)) + "|"]
    wins = losses = 0
    for k in weight + tuned:
        e = eff.loc[k]
        cells = []
        for t in tuned:
            if k[0] != "weight":
                cells.append("")
                continue
            r = by_pair[k, t]
            above, below = r["diff_lo"] > 0, r["diff_hi"] < 0
            wins, losses = wins + above, losses + below
            cells.append(
                ci_cell(r["diff"], r["diff_lo"], r["diff_hi"])
                + (" ▲" if above else " ▼" if below else "")
            )
        sd = (
            "–"
            if math.isnan(e["seed_sd"])
            else (f"{e['seed_sd']:.3f} [{e['seed_sd_lo']:.3f}, {e['seed_sd_hi']:.3f}]")
        )
        lines.append(
            f"| {label(*k)} | {ci_cell(e['effect'], e['effect_lo'], e['effect_hi'])} | "
            f"{sd} |" + "".join(f" {c} |" for c in cells)
        )
    n = len(weight) * len(tuned)
    tally.wins, tally.losses = int(wins), int(losses)
    tally.right = sum(_right_way(up, down, k) for k in weight)
    lines.append("")
    if tuned:
        lines.append(
            f"- Weight − baseline at {budget:g} nat: CI above 0 (▲) in {wins} of {n} pairs, "
            f"below 0 (▼) in {losses}, including 0 in {n - wins - losses}."
        )
    else:
        lines.append(
            f"- No baseline reached {budget:g} nat on both sides: nothing to set the "
            "weight families against at equal cost."
        )
    lines.append(_direction_line(up, down, weight, tuned))
    lines += _seed_lines(eff, weight, tuned, settings)
    lines += _prompt_lines(compared, suite, weight, settings)
    return _missed_lines(lines, missed, up, down)


def _seed_lines(eff: pd.DataFrame, weight: list, tuned: list, settings: MetricsConfig) -> list[str]:
    """Is weight steering less variable across seeds: each weight / baseline sd ratio
    with its F interval, on one line."""
    cells = []
    for t in tuned:
        b = eff.loc[t]
        for k in weight:
            a = eff.loc[k]
            r, lo, hi = sd_ratio_interval(
                a["seed_sd"], int(a["seeds"]), b["seed_sd"], int(b["seeds"]), settings.ci,
                settings.seed,
            )  # fmt: skip
            if not math.isnan(r):
                cells.append(f"{label(*k)}/{label(*t)} {r:.2g} [{lo:.2g}, {hi:.2g}]")
    if not cells:
        return []
    return [f"- Seed sd ratio, weight / baseline (< 1: less variable across seeds): "
            f"{'; '.join(cells)}."]  # fmt: skip


def _right_way(up: pd.DataFrame, down: pd.DataFrame, k) -> bool:
    """Δ CI above 0 at +, below 0 at −: the effect is a swing, and a swing can come from
    one side alone."""
    return bool(up.loc[k, "delta_lo"] > 0 and down.loc[k, "delta_hi"] < 0)


def _direction_line(up: pd.DataFrame, down: pd.DataFrame, weight: list, tuned: list) -> str:
    """Which methods move the behaviour the right way on both sides (``_right_way``)."""
    ok = [label(*k) for k in weight if _right_way(up, down, k)]
    other = [label(*k) for k in tuned if _right_way(up, down, k)]
    return (
        f"- Right way on both sides (Δ CI > 0 at +, < 0 at −): {len(ok)} of {len(weight)} "
        f"weight families ({', '.join(ok) or 'none'}); baselines: {', '.join(other) or 'none'}."
    )


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


def _missed_lines(lines: list[str], missed: list, up, down) -> list[str]:
    if missed:
        names = []
        for k in missed:
            st = {up.loc[k, "status"], down.loc[k, "status"]} - {"ok"}
            names.append(f"{label(*k)}: {'; '.join(sorted(st))}")
        lines.append(f"- Missed the budget, left out: {'; '.join(names)}.")
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
    lines = [
        f"## Verdict: weight steering vs the baselines at the same KL ({compared.budget:g} nat)",
        "",
        "Effect = (score at +budget − score at −budget) / 2 on each row, averaged over rows "
        "and seeds: how far a method swings the behaviour both ways at that cost. Each cell "
        "is the paired difference of two methods' effects on the same rows with its "
        f"{ci} percentile-bootstrap CI ({settings.bootstrap} draws; rows drawn once for "
        f"both; {seeds} seed(s), "
        + (
            "seeds resampled too"
            if seeds >= settings.min_seeds
            else f"seeds not resampled, fewer than {settings.min_seeds}: their spread is the seed "
            "sd column, with a normal-theory interval"
        )
        + "). Every pair is shown; none is "
        "chosen on these rows.",
        "",
    ]
    body, rows = [], []
    for i, suite in enumerate(suites):
        t = Tally()
        lines_i = verdict(compared, suite, settings, t)
        if detail is None or i < detail:
            body += lines_i
        kind = "IID" if compared.suites.get(suite, {}).get("iid") else "OOD"
        rows.append(
            f"| `{suite}` | {kind} | {t.weight} of {t.families} | {t.baselines} | "
            f"{t.wins} / {t.losses} / {t.pairs - t.wins - t.losses} | {t.right} |"
        )
    summary = [
        "| suite | | weight families at the budget | baselines at the budget | "
        "pairs ▲ / ▼ / CI incl. 0 | weight families right way both sides |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    return [*lines, *summary, *body]
