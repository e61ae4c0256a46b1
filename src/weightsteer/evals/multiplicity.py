"""Many comparisons at once: adjusted p-values for a family of paired differences.

A verdict table sets every weight family against every baseline on one suite: a family
of ``m`` tests. Read at an unadjusted 95% each, about ``0.05 m`` of them exclude 0 by
chance alone. The p-value of one paired difference comes from its bootstrap standard error
(``bootstrap_p``); a family's p-values are adjusted by

* ``holm`` (Holm 1979, step-down Bonferroni): controls the family-wise error rate, the
  chance of any false claim in the family, under any dependence between the tests;
* ``bh`` (Benjamini & Hochberg 1995, step-up): controls the false discovery rate, the
  expected share of false claims among those made (valid for independent or positively
  dependent tests, as paired differences on shared rows are);

and a difference counts as ▲ / ▼ when its adjusted p is below ``1 - ci``. The raw
interval stays on the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ADJUSTMENTS = ("holm", "bh", "none")


def bootstrap_p(point: float, draws: np.ndarray) -> float:
    """Two-sided p-value of "the difference is 0": the point estimate over its bootstrap
    standard error, read on the normal curve (``erfc(|z| / sqrt 2)``). Not the share of
    draws beyond 0: that cannot go below ``1 / draws``, so after a Holm adjustment over
    dozens of pairs nothing could pass, however far from 0. A standard error of 0 gives 0
    (1 when the estimate is 0 too); fewer than two finite draws give NaN."""
    d = np.asarray(draws, dtype=float)
    d = d[~np.isnan(d)]
    if d.size < 2 or math.isnan(point):
        return float("nan")
    se = float(d.std(ddof=1))
    if se == 0:
        return 1.0 if point == 0 else 0.0
    return math.erfc(abs(point) / se / math.sqrt(2))


def holm(values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given: the i-th smallest of ``m`` is
    multiplied by ``m - i + 1``, then made non-decreasing in that order, capped at 1.
    NaN stays NaN and does not count in ``m``."""
    p = np.asarray(values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m, running = len(order), 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        out[j] = running
    return out.tolist()


def bh(values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the order given: the i-th
    smallest of ``m`` is multiplied by ``m / i``, then made non-increasing from the
    largest down, capped at 1. NaN stays NaN and does not count in ``m``."""
    p = np.asarray(values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m, running = len(order), 1.0
    for i in range(m - 1, -1, -1):
        j = order[i]
        running = min(running, m * p[j] / (i + 1))
        out[j] = running
    return out.tolist()


def adjust(p: Sequence[float], method: str) -> list[float]:
    """``p`` adjusted by ``method`` (one of ``ADJUSTMENTS``; ``none``: as given)."""
    if method == "holm":
        return holm(p)
    if method == "bh":
        return bh(p)
    if method == "none":
        return [float(x) for x in p]
    raise ValueError(f"unknown adjustment {method!r}; choose one of {', '.join(ADJUSTMENTS)}")
