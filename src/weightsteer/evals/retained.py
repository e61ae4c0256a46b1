"""How much of the full vector's effect an analysis variant keeps, computed from an
analysis results table (``variant`` column) with the same bootstrap as every metric."""

from __future__ import annotations

import numpy as np
import pandas as pd

from weightsteer.core.errors import UserError
from weightsteer.evals.bootstrap import (
    DEFAULTS,
    MetricsConfig,
    at_budget,
    interval,
    matrices,
    resample_weights,
    seed_weights,
    wmean,
)


def retained_effects(df: pd.DataFrame, settings: MetricsConfig = DEFAULTS) -> pd.DataFrame:
    """One row per (family, eval, point, variant) of an analysis table (``variant``
    column; ``full`` is the unchanged vector, scored on the same rows at the same
    strengths). A point is a fixed ±alpha or a calibrated ±budget (``calibrated``). Per
    row the effect is ``(score(+) - score(-)) / 2``; ``retained`` is the variant's mean
    effect over the full vector's (1: all of it, 0: none, < 0: the other way), with a
    percentile bootstrap CI that draws rows once for both (and seeds with at least
    ``min_seeds`` of them)."""
    df = df.assign(calibrated=df["calibrated_kl"].notna())
    df = at_budget(df)
    rng = np.random.default_rng(settings.seed)
    records = []
    keys = ["family", "eval", "calibrated"]
    for (family, suite, calibrated), sub in df.groupby(keys, sort=False):
        points = sorted({abs(s) for s in sub["strength"].unique() if s != 0})
        by_variant = {v: matrices(g, "score")[0] for v, g in sub.groupby("variant", sort=False)}
        if "full" not in by_variant:
            raise UserError(f"analysis table for {family}, {suite}: no full-vector rows")
        seeds, rows = matrices(sub[sub["variant"] == "full"], "score")[1:]
        ws = seed_weights(len(seeds), settings.bootstrap, rng, settings)
        wr = resample_weights(len(rows), settings.bootstrap, rng)
        for p in points:
            full = by_variant["full"]
            if p not in full or -p not in full:
                continue
            base = wmean((full[p] - full[-p]) / 2, ws, wr)
            for variant, m in by_variant.items():
                if p not in m or -p not in m:
                    continue
                eff = wmean((m[p] - m[-p]) / 2, ws, wr)
                with np.errstate(invalid="ignore", divide="ignore"):
                    ratio = eff / base
                lo, hi = interval(ratio[1:], settings.ci)
                records.append(
                    {
                        "family": family,
                        "eval": suite,
                        "point": p,
                        "calibrated": bool(calibrated),
                        "variant": variant,
                        "effect": float(eff[0]),
                        "full_effect": float(base[0]),
                        "retained": float(ratio[0]),
                        "lo": lo,
                        "hi": hi,
                    }
                )
    return pd.DataFrame.from_records(records)
