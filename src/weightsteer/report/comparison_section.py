"""The calibrated comparison section: calibration table, per-suite comparison, verdict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from weightsteer.evals import generic_rows, own_reports
from weightsteer.evals.bootstrap import MetricsConfig
from weightsteer.evals.metrics import comparison_frame, seed_effects, suite_metrics
from weightsteer.evals.results import read_results, results_calibration, results_suites
from weightsteer.methods.compare_config import statistic_name
from weightsteer.report.figures import (
    figure_capability,
    figure_compare,
    figure_kl_strength,
    figure_pareto,
    figure_seeds,
)
from weightsteer.report.markdown_tables import (
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
    statistic: str = "mean per-token KL"  # what a budget's nats are (``statistic_name``)


def read_compared(
    paths: list[Path], settings: MetricsConfig, compare: dict | None = None
) -> Compared | None:
    """``compare``: the run's recorded ``[compare]``; its ``target_kl`` is the verdict's
    budget (absent: 1 nat when it was calibrated, else the largest budget)."""
    if not paths:
        return None
    df = comparison_frame(read_results(paths))
    plain = generic_rows(df)
    m = suite_metrics(plain, settings) if not plain.empty else None
    budgets = sorted(float(b) for b in df["calibrated_kl"].dropna().unique())
    compare = compare or {}
    target = verdict_budget(budgets, compare.get("target_kl"))
    return Compared(df, m, target, budgets, calibration_rows(paths), results_suites(paths),
                    statistic_name(compare))  # fmt: skip


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
    compared = compared or read_compared(paths, settings, c)
    if compared is None:
        return []
    df, m, budget = compared.frame, compared.metrics, compared.budget
    budgets = ", ".join(f"{b:g}" for b in compared.budgets)
    lines = [
        f"## Calibrated comparison at {budgets} nat ({compared.statistic})",
        "",
        "Every method is set, per sign and budget, to the strength where the "
        f"{compared.statistic} (KL(steered ‖ unsteered), pooled over "
        f"{c.get('tokens', 20)} tokens of the {c.get('continuations', 'steered')} model's greedy "
        "continuation of each held-out calibration prompt) equals the budget; the audit "
        "column is the same statistic on other prompts. Prompting has no strength "
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
        figure_pareto(m, figs / "pareto.png", compared.statistic)
        lines += [
            "![comparison](figures/compare.png)",
            "",
            "Who moves the behaviour most at each cost: effect vs achieved KL for every method "
            "and budget (hollow: a side that missed its budget; a star: a prompt's own cost).",
            "",
            "![effect vs KL](figures/pareto.png)",
            "",
        ]
        if figure_kl_strength(compared.cals, figs / "kl_vs_strength.png", compared.statistic):
            lines += ["![KL vs strength](figures/kl_vs_strength.png)", ""]
        plain = generic_rows(df)
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
