"""One-screen summaries of a run for the terminal (rich tables): the first suite's shift
per method at the sweep's extremes, or at the calibrated budget."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.table import Table

from weightsteer.evals import report_only
from weightsteer.evals.markdown import label
from weightsteer.evals.metrics import MetricsConfig, comparison_frame, suite_metrics
from weightsteer.evals.results import read_results
from weightsteer.report.comparison_section import verdict_budget
from weightsteer.report.markdown_tables import kl_cell


def shift_summary(results: list[Path], metrics: MetricsConfig) -> Table | str:
    """The eval stage: per family, the score at 0 and the shift at the extreme strengths."""
    df = read_results(results)
    lo, hi = df["strength"].min(), df["strength"].max()
    title = f"{{suite}}: mean score shift vs strength 0 [{metrics.ci:.0%} CI]"
    return _table(
        df, (lo, hi), title, "score at 0", lambda k, by: f"{by[0.0]['mean']:+.2f}", metrics
    )


def compare_summary(
    compared: list[Path], metrics: MetricsConfig, target: float | None = None
) -> Table | str:
    """The compare stage: per method, its achieved KL and the shift at +- the verdict's
    budget (``compare.target_kl``)."""
    df = comparison_frame(read_results(compared))
    budget = verdict_budget(sorted(float(b) for b in df["calibrated_kl"].dropna().unique()), target)
    title = f"{{suite}} at {budget:g} nat: mean score shift vs unsteered [{metrics.ci:.0%} CI]"

    def kls(key, by) -> str:
        up, down = by.get(budget), by.get(-budget)
        return kl_cell(up, down) if up is not None and down is not None else ""

    return _table(df, (budget, -budget), title, "KL + / -", kls, metrics)


def _table(
    df,
    strengths: Sequence[float],
    title: str,
    extra: str,
    extra_cell: Callable,
    metrics: MetricsConfig,
) -> Table | str:
    """The first suite the generic tables read: per method, the ``extra`` column, the shift at each
    of ``strengths`` with its CI, and SI k=1 at the positive one (a line saying where the
    tables are when every suite has its own, tinymfv's)."""
    evals = list(dict.fromkeys(df["eval"]))
    suite = next((s for s in evals if s not in report_only(evals)), None)
    if suite is None:
        return f"{', '.join(evals)}: tables of its own, in the report"
    t = suite_metrics(df[df["eval"] == suite], metrics)
    table = Table(title=title.format(suite=suite))
    for col in ("method", extra, *(f"shift at {s:+g}" for s in strengths), "SI k=1"):
        table.add_column(col, justify="right")
    for key, rows in t.groupby(["method", "family"], sort=False):
        by = {r["strength"]: r for _, r in rows.iterrows()}
        if "status" in rows and rows["status"].eq("fixed").any():  # a prompt: its own strength
            by = {
                math.copysign(s, k): by[k]
                for k in by
                if k
                for s in strengths
                if math.copysign(1, s) == math.copysign(1, k)
            }
        cells = [
            f"{by[s]['delta']:+.2f} [{by[s]['delta_lo']:+.2f}, {by[s]['delta_hi']:+.2f}]"
            if s in by
            else "–"
            for s in strengths
        ]
        top = by.get(max(strengths))
        si = top.get("si_k1", float("nan")) if top is not None else float("nan")
        table.add_row(label(*key), extra_cell(key, by), *cells, f"{si:+.1f}")
    return table
