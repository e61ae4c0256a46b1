"""Per-side effects: does a method move the behaviour the right way in each direction,
and further than another method at the same cost?

For a method at budget ``b`` and a side ``d`` (+1: toward POS, -1: toward NEG), the
**gain** on a row is ``d * (score(d b) - score(0))``: its paired shift against the
unsteered model, signed so that > 0 is the right way. A gain is averaged over rows and
seeds with a bootstrap CI (rows resampled once for every method of the suite, so
differences are paired; seeds as in ``bootstrap.py``). Unlike the two-sided swing
``(score(+b) - score(-b)) / 2``, a gain cannot be positive for a method that lowers the
score at both signs: its + side has a negative gain.

**Headroom.** A side can only be judged where the unsteered model leaves room to move:
the + side has none when at least ``threshold`` of the suite's rows already score > 0
(the POS answer), the - side none when at most ``1 - threshold`` do.

Each pair of methods on one side gets the difference of their gains with its CI and a
bootstrap p-value (``multiplicity.bootstrap_p``), to be adjusted over the verdict's family.
``row_sd`` is the seeds' own notion of spread: the sd over rows of the per-row gain.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from weightsteer.core.errors import UserError
from weightsteer.evals.bootstrap import (
    DEFAULTS,
    MetricsConfig,
    at_budget,
    check_same_rows,
    interval,
    matrices,
    resample_weights,
    seed_weights,
    wmean,
)
from weightsteer.evals.multiplicity import bootstrap_p

Unit = tuple[str, str, float]  # (method, family, strength > 0 after budget grouping)


def headroom(df: pd.DataFrame, suite: str, threshold: float = 0.9) -> dict[int, float]:
    """``{+1: share of rows the unsteered model answers POS, -1: share NEG}`` on
    ``suite`` (a side has headroom while its share is below ``threshold``)."""
    base = df[(df["eval"] == suite) & (df["strength"] == 0)].drop_duplicates("row_id")
    if base.empty:
        raise UserError(f"eval {suite!r} has no unsteered rows to measure headroom on")
    pos = float((base["score"] > 0).mean())
    return {1: pos, -1: 1.0 - pos}


def side_effects(
    df: pd.DataFrame,
    suite: str,
    units: Sequence[Unit],
    settings: MetricsConfig = DEFAULTS,
    sides: Sequence[int] = (1, -1),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(gains, pairs)`` of ``units`` on ``suite`` (a comparison frame: strength 0 is the
    unsteered model). ``gains``: per (unit, side) the gain with CI, its p-value against
    0, seeds and ``row_sd``; a unit without that side's strength is left out. ``pairs``:
    per side and ordered pair ``(a, b)`` of units with that side, ``diff = gain(a) -
    gain(b)`` with CI and p-value."""
    df = at_budget(df[df["eval"] == suite])
    check_same_rows(df)
    rows = sorted(df["row_id"].unique())
    rng = np.random.default_rng(settings.seed)
    wr = resample_weights(len(rows), settings.bootstrap, rng)
    draws: dict[tuple[Unit, int], np.ndarray] = {}
    gains = []
    for unit in units:
        method, family, s = unit
        sub = df[(df["method"] == method) & (df["family"] == family)]
        score, seeds, _ = matrices(sub, "score")
        ws = seed_weights(len(seeds), settings.bootstrap, rng, settings)
        for d in sides:
            if d * s not in score or 0.0 not in score:
                continue
            g = d * (score[d * s] - score[0.0])  # [seeds, rows]
            draws[unit, d] = w = wmean(g, ws, wr)
            lo, hi = interval(w[1:], settings.ci)
            per_row = np.nanmean(g, axis=0)
            gains.append({"method": method, "family": family, "strength": s, "side": d,
                          "gain": float(w[0]), "gain_lo": lo, "gain_hi": hi,
                          "p": bootstrap_p(w[0], w[1:]), "seeds": len(seeds),
                          "row_sd": float(np.nanstd(per_row, ddof=1))})  # fmt: skip
    pairs = []
    for (a, da), wa in draws.items():
        for (b, db), wb in draws.items():
            if a == b or da != db:
                continue
            diff = wa - wb
            lo, hi = interval(diff[1:], settings.ci)
            p = bootstrap_p(diff[0], diff[1:])
            pairs.append({"side": da, "a": a, "b": b, "diff": float(diff[0]),
                          "diff_lo": lo, "diff_hi": hi, "p": p})  # fmt: skip
    return pd.DataFrame.from_records(gains), pd.DataFrame.from_records(pairs)
