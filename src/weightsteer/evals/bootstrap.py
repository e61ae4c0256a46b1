"""Bootstrap intervals over rows and seeds, and the settings every metric shares.

Confidence intervals are percentile bootstraps resampling rows (the same draw for every
seed and every method, as rows are shared: drawn from the eval's name and the ``seed``
setting, so adding a method or a suite to a table moves no other interval) and, with at
least ``min_seeds`` seeds, seeds. With fewer seeds (two, say) a bootstrap over seeds
understates the between-seed variance (half the draws repeat one seed), so seeds are not
resampled and their spread is reported apart, as the sd over seeds with a normal-theory
interval (``seed_sd_interval``). The point estimate is the statistic on the table itself.
Every function refuses tables whose methods were scored on different rows
(``check_same_rows``).

Matrices are ``[seeds, rows]`` per strength (``matrices``); a draw is a pair of weight
matrices, ``ws`` ``[draws, seeds]`` and ``wr`` ``[draws, rows]``, whose row 0 is all ones
(the point estimate); ``wmean`` is the weighted mean per draw and ``interval`` the
percentile interval of the draws.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from weightsteer.core.config import Section
from weightsteer.core.errors import UserError


class MetricsConfig(Section):
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for CIs (0: none)")
    ci: float = Field(0.95, gt=0, lt=1, description="confidence level of the intervals")
    pmass_min: float = Field(
        0.5, ge=0, le=1, description="rows below this choice mass are counted as off-format"
    )
    min_rows: int = Field(
        10, ge=1, description="an SI denominator smaller than this is flagged as too small"
    )
    min_seeds: int = Field(
        5,
        ge=2,
        description="seeds are resampled in the bootstrap only when there are this many "
        "(fewer understate the between-seed variance; their sd is reported apart)",
    )
    headline: tuple[str, ...] = Field(
        (),
        description="suites the verdict covers, in order (empty: every suite, those outside "
        "the training questions' distribution first)",
    )
    seed: int = Field(0, description="bootstrap seed")
    headroom: float = Field(
        0.9, gt=0.5, le=1, description="a side is not judged when the unsteered model already "
        "gives its answer on this share of a suite's rows (no room to move)"
    )  # fmt: skip
    adjust: Literal["holm", "bh", "none"] = Field(
        "holm", description="multiplicity adjustment over each verdict table's pairs: holm "
        "(family-wise error), bh (false discovery rate) or none"
    )  # fmt: skip


UNIT = ["method", "family", "seed"]  # one scored intervention
DEFAULTS = MetricsConfig()


def check_same_rows(df: pd.DataFrame) -> None:
    """Refuse a table where, within one eval, some (method, family, seed, strength) was
    scored on other rows than the rest; name the rows that differ."""
    for suite, sub in df.groupby("eval", sort=False):
        sets = sub.groupby([*UNIT, "strength"], sort=False)["row_id"].agg(frozenset)
        ref_key, ref = sets.index[0], sets.iloc[0]
        for key, rows in sets.items():
            if rows != ref:
                extra, missing = sorted(rows - ref), sorted(ref - rows)
                show = ", ".join((extra + missing)[:5])
                raise UserError(
                    f"eval {suite!r}: {_name(key)} was scored on other rows than {_name(ref_key)} "
                    f"({len(extra)} extra, {len(missing)} missing, e.g. {show}); score every "
                    "method on the same rows"
                )


def at_budget(df: pd.DataFrame) -> pd.DataFrame:
    kl = df["calibrated_kl"]
    if kl.isna().all():
        return df
    budget = np.sign(df["strength"]) * kl
    return df.assign(strength=budget.where(kl.notna(), df["strength"]))


def _name(key) -> str:
    method, family, seed, strength = key
    return f"{method}{':' + family if family else ''} seed {seed} strength {strength:+g}"


def resample_weights(n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``[1 + draws, n]`` multiplicities: row 0 all ones (the point estimate), then
    bootstrap draws of ``n`` items with replacement."""
    out = np.ones((1 + draws, n))
    if draws:
        out[1:] = rng.multinomial(n, np.full(n, 1 / n), size=draws)
    return out


def seed_weights(
    n: int, draws: int, rng: np.random.Generator, settings: MetricsConfig = DEFAULTS
) -> np.ndarray:
    """Like ``resample_weights`` with at least ``settings.min_seeds`` seeds; fewer are
    all kept in every draw (module docstring)."""
    if n < settings.min_seeds:
        return np.ones((1 + draws, n))
    return resample_weights(n, draws, rng)


def wmean(x: np.ndarray, ws: np.ndarray, wr: np.ndarray) -> np.ndarray:
    """Weighted mean of ``x [seeds, rows]`` (NaN: absent) per draw: ``[draws]``."""
    ok = ~np.isnan(x)
    num = np.einsum("bs,sr,br->b", ws, np.where(ok, x, 0.0), wr)
    den = np.einsum("bs,sr,br->b", ws, ok.astype(float), wr)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def interval(draws: np.ndarray, ci: float) -> tuple[float, float]:
    draws = draws[~np.isnan(draws)]
    if draws.size < 2:
        return float("nan"), float("nan")
    lo = (1 - ci) / 2
    return float(np.quantile(draws, lo)), float(np.quantile(draws, 1 - lo))


def keyed_rng(seed: int, *key: str) -> np.random.Generator:
    """A generator of its own for ``key`` (an eval's rows, a unit's seeds): a group's
    draws do not depend on which other groups a table holds, and every method of one eval
    resamples its rows alike."""
    digest = hashlib.sha256("\x1f".join(map(str, key)).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def matrices(
    sub: pd.DataFrame, value: str, row: str = "row_id"
) -> tuple[dict[float, np.ndarray], list, list]:
    """``{strength: [seeds, rows]}`` of ``value`` for one (method, family, eval); rows in
    sorted order, NaN where a cell was not scored, the mean of the finite values where
    one was scored twice (a ``pivot_table``, without its cost: the report runs this for
    every group)."""
    strengths = np.sort(sub["strength"].unique())
    seeds = sorted(sub["seed"].unique())
    row_idx, rows = pd.factorize(sub[row], sort=True)
    shape = (len(strengths), len(seeds), len(rows))
    cell = np.ravel_multi_index(
        (
            np.searchsorted(strengths, sub["strength"].to_numpy()),
            np.searchsorted(np.asarray(seeds), sub["seed"].to_numpy()),
            row_idx,
        ),
        shape,
    )
    x = sub[value].to_numpy(float)
    ok = ~np.isnan(x)
    size = int(np.prod(shape))
    n = np.bincount(cell[ok], minlength=size)
    with np.errstate(invalid="ignore"):
        grid = (np.bincount(cell[ok], weights=x[ok], minlength=size) / n).reshape(shape)
    return {float(s): grid[i] for i, s in enumerate(strengths)}, seeds, list(rows)


@functools.lru_cache(maxsize=256)
def chi2_quantiles(dof: int, ci: float, seed: int) -> tuple[float, float]:
    """The central ``ci`` interval of chi-square(``dof``), by simulation (cached: a report
    asks for the same few seed counts hundreds of times)."""
    draws = np.random.default_rng(seed).chisquare(dof, size=200_000)
    lo = (1 - ci) / 2
    return float(np.quantile(draws, lo)), float(np.quantile(draws, 1 - lo))


@functools.lru_cache(maxsize=256)
def f_quantiles(dof_a: int, dof_b: int, ci: float, seed: int) -> tuple[float, float]:
    """The central ``ci`` interval of F(``dof_a``, ``dof_b``), by simulation (cached)."""
    rng = np.random.default_rng(seed)
    f = (rng.chisquare(dof_a, 200_000) / dof_a) / (rng.chisquare(dof_b, 200_000) / dof_b)
    lo = (1 - ci) / 2
    return float(np.quantile(f, lo)), float(np.quantile(f, 1 - lo))


def seed_sd_interval(sd: float, n: int, ci: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """The normal-theory interval of a standard deviation ``sd`` over ``n`` seeds:
    ``sd * sqrt((n - 1) / q)`` at the chi-square(n - 1) quantiles (NaN with < 2 seeds)."""
    if n < 2 or not np.isfinite(sd):
        return float("nan"), float("nan")
    q_lo, q_hi = chi2_quantiles(n - 1, ci, seed)
    return float(sd * np.sqrt((n - 1) / q_hi)), float(sd * np.sqrt((n - 1) / q_lo))


def sd_ratio_interval(
    sd_a: float, n_a: int, sd_b: float, n_b: int, ci: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """``sd_a / sd_b`` and its normal-theory interval (the F distribution of the ratio of
    two sample variances; NaN where a side has < 2 seeds or no spread)."""
    if min(n_a, n_b) < 2 or not (np.isfinite(sd_a) and np.isfinite(sd_b)) or sd_b == 0:
        return float("nan"), float("nan"), float("nan")
    f_lo, f_hi = f_quantiles(n_a - 1, n_b - 1, ci, seed)
    ratio = (sd_a / sd_b) ** 2
    return float(np.sqrt(ratio)), float(np.sqrt(ratio / f_hi)), float(np.sqrt(ratio / f_lo))
