"""The calibrated comparison section: calibration table, per-suite comparison, verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from weightsteer.evals import own_reports, report_only
from weightsteer.evals.bootstrap import MetricsConfig, sd_ratio_interval
from weightsteer.evals.markdown import ci_cell, label
from weightsteer.evals.metrics import comparison_frame, paired_effects, seed_effects, suite_metrics
from weightsteer.evals.results import read_results, results_calibration, results_suites
from weightsteer.report.figures import (
    figure_capability,
    figure_compare,
    figure_kl_strength,
    figure_pareto,
    figure_seeds,
)
from weightsteer.report.tables import (
    calibration_lines,
    capability_table,
    ci_note,
    compare_table,
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


@dataclass(frozen=True)
class Compared:
    """The compare stage's tables read once: the comparison frame, its metrics (of the
    suites the generic tables read; None when there is none), the budgets (``budget``:
    the verdict's), each side's calibration records, and what each suite is
    (``results_suites``)."""

    frame: pd.DataFrame
    metrics: pd.DataFrame | None
    budget: float
    budgets: list[float]
    cals: list[dict]
    suites: dict[str, dict]


def read_compared(
    paths: list[Path], settings: MetricsConfig, target: float | None = None
) -> Compared | None:
    """``target``: the verdict's budget (``compare.target_kl``; None: 1 nat when it was
    calibrated, else the largest budget)."""
    if not paths:
        return None
    df = comparison_frame(read_results(paths))
    plain = df[~df["eval"].isin(report_only(list(dict.fromkeys(df["eval"]))))]
    m = suite_metrics(plain, settings) if not plain.empty else None
    budgets = sorted(float(b) for b in df["calibrated_kl"].dropna().unique())
    target = verdict_budget(budgets, target)
    return Compared(df, m, target, budgets, calibration_rows(paths), results_suites(paths))


def verdict_budget(budgets: list[float], target: float | None = None) -> float:
    """The budget a verdict reads: ``target`` (``compare.target_kl``) when it was
    calibrated, else 1 nat when it was, else the largest."""
    if target is not None and target in budgets:
        return target
    return 1.0 if 1.0 in budgets or not budgets else budgets[-1]


def capability_measures(info: dict[str, dict]) -> dict[str, str]:
    """The capability suites among ``info`` (``results_suites``), with their measure."""
    return {s: i["measure"] for s, i in info.items() if i.get("measure")}


def verdict_order(suites: list[str], info: dict[str, dict], headline: tuple[str, ...]) -> list[str]:
    """The behaviour suites a verdict covers: ``metrics.headline`` when set, else every
    one with those outside the training questions' distribution first (table order
    within). Capability suites are never in a verdict: they say what steering costs."""
    caps = capability_measures(info)
    if headline:
        return [s for s in headline if s in suites and s not in caps]
    behaviour = [s for s in suites if s not in caps]
    return sorted(behaviour, key=lambda s: bool(info.get(s, {}).get("iid", False)))


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


def capability_lines(
    m: pd.DataFrame,
    caps: dict[str, str],
    info: dict[str, dict],
    settings: MetricsConfig,
    figs: Path,
    name: str,
) -> list[str]:
    """What steering costs: each capability suite's measure and its paired change at every
    strength of every method, and behaviour shift against capability change (the figure
    ``figures/capability-<name>.png``)."""
    lines = []
    behaviour = verdict_order(list(dict.fromkeys(m["eval"])), info, settings.headline)
    if behaviour and figure_capability(m, behaviour[0], caps, figs / f"capability-{name}.png"):
        lines += [
            f"Behaviour shift on `{behaviour[0]}` against capability change, every method "
            "and strength (the origin is the unsteered model; circles: + strengths, squares: "
            "−, joined in strength order; hollow: a side that missed its budget):",
            "",
            f"![behaviour vs capability](figures/capability-{name}.png)",
            "",
        ]
    for suite, measure in caps.items():
        if suite in set(m["eval"]):
            lines += [f"### {suite} (capability)", "", *capability_table(m, suite, measure), ""]
    return lines


def compare_lines(
    paths: list[Path], cfg: dict, figs: Path, counts: dict, compared: Compared | None = None
) -> list[str]:
    """The report section of the compare stage (nothing when it did not run);
    ``compared``: ``read_compared(paths)`` when the caller has it already."""
    settings = MetricsConfig.model_validate(cfg.get("metrics", {}))
    c = cfg.get("compare", {})
    compared = compared or read_compared(paths, settings, c.get("target_kl"))
    if compared is None:
        return []
    df, m, budget = compared.frame, compared.metrics, compared.budget
    budgets = ", ".join(f"{b:g}" for b in compared.budgets)
    lines = [
        f"## Calibrated comparison at {budgets} nat",
        "",
        f"Every method is set, per sign and budget, to the strength where the "
        f"{c.get('quantile', 0.95):.0%} quantile of the per-token KL(steered ‖ unsteered) over "
        f"{c.get('tokens', 20)} greedy tokens of held-out calibration prompts equals the budget; "
        "the audit column is the same statistic on other prompts. Prompting has no strength "
        "to tune: its KL is what it costs. Δ is paired against the unsteered model on the "
        "same rows.",
        "",
    ]
    if counts:
        lines += ["Prompts: " + ", ".join(f"{k} {v}" for k, v in counts.items()), ""]
    lines += [*calibration_lines(compared.cals), ""]
    caps = capability_measures(compared.suites)
    if m is not None:
        m, m_all = m[~m["eval"].isin(caps)], m
        df = df[~df["eval"].isin(caps)]
    if m is not None and not m.empty:
        figure_compare(m, budget, figs / "compare.png")
        figure_pareto(m, figs / "pareto.png")
        lines += [
            "![comparison](figures/compare.png)",
            "",
            "Who moves the behaviour most at each cost: effect vs achieved KL for every method "
            "and budget (hollow: a side that missed its budget; a star: a prompt's own cost).",
            "",
            "![effect vs KL](figures/pareto.png)",
            "",
        ]
        if figure_kl_strength(compared.cals, figs / "kl_vs_strength.png"):
            lines += ["![KL vs strength](figures/kl_vs_strength.png)", ""]
        plain = df[~df["eval"].isin(report_only(list(dict.fromkeys(df["eval"]))))]
        if figure_seeds(seed_effects(plain, budget), budget, figs / "seeds.png"):
            lines += ["![effect per seed](figures/seeds.png)", ""]
        for suite in dict.fromkeys(m["eval"]):
            table, missed = compare_table(m, suite, budget)
            lines += [f"### {suite} at {budget:g} nat", "", *table, ""]
            if missed:
                lines += [
                    "Sides that missed the budget (not at equal cost; never in a verdict):",
                    "",
                    *missed,
                    "",
                ]
        lines += [
            "KL + / −: the achieved statistic of each side (mean over seeds); * a prompt's "
            "fixed cost, not the budget; ⚠ a side that missed the budget (calibration table). "
            + ci_note(settings, int(m["seeds"].max())),
            "",
        ]
    if m is not None and caps:
        lines += capability_lines(m_all, caps, compared.suites, settings, figs, "compare")
    for own in own_reports(list(dict.fromkeys(df["eval"])), cfg):  # a suite's own tables
        if own.report.compare is not None:
            rows = df[df["eval"].isin(own.evals)]
            lines += own.report.compare(rows, own.settings, settings, budget)
    return lines
