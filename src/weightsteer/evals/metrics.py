"""Metrics, computed from the long results table only (``results.py``).

Per (method, family, eval, strength), over seeds and rows:

- ``mean``, ``std``: of ``score`` (std over rows, pooled over seeds).
- ``delta``: the paired shift ``score(s) - score(0)`` (same method, seed and row), its
  bootstrap CI, its sd over seeds and the fraction of seeds agreeing with its sign.
- ``pmass``: mean choice mass, and ``low_pmass``: the fraction of rows below
  ``pmass_min`` (the model has left the answer format; its logratio says little).
- Surgical informedness at ``+s`` (with ``-s`` in the table). With reference rows
  ``cho`` (score > 0 at strength 0) and ``rej`` (score < 0)::

      fix  = rej rows > 0 at +s      broke   = cho rows < 0 at +s
      flip = cho rows < 0 at -s      counter = rej rows > 0 at -s
      si_fwd = fix/n_rej - k * broke/n_cho
      si_rev = flip/n_cho - k * counter/n_rej
      SI = mean(si_fwd, si_rev) * 100 * min(pmass(+s), pmass(-s))^2

  for k = 1 and k = 2, per seed, then averaged over seeds. ``small`` flags a
  denominator under ``min_rows`` rows. Free-text rows (a generative suite) have no choice
  mass (``pmass`` NaN): their SI is not discounted.

Rows calibrated to a KL budget (``calibrated_kl`` set, ``methods/calibrate.py``) are grouped by
``strength = sign * budget``: each seed of a method may need its own coefficient to
spend the budget, and the comparison is at equal budget. ``comparison_frame`` turns the
unsteered model's rows (method ``none``) into strength 0 of every compared method.

Confidence intervals are percentile bootstraps resampling rows (the same draw for every
seed, as rows are shared) and, with several seeds, seeds. The point estimate is the
statistic on the table itself. Every function refuses tables whose methods were scored on
different rows (``check_same_rows``).
"""

from __future__ import annotations

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
    seed: int = Field(0, description="bootstrap seed")


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


def comparison_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A compare table: the ``none`` rows repeated as strength 0 of every other
    (method, family, seed), so each shift is paired against the unsteered model."""
    base = df[df["method"] == "none"]
    others = df[df["method"] != "none"]
    if base.empty:
        raise UserError("the comparison has no rows of the unsteered model (method none)")
    copies = [
        base.assign(method=m, family=f, seed=s, strength=0.0)
        for (m, f, s) in others[UNIT].drop_duplicates().itertuples(index=False)
    ]
    return pd.concat([*copies, others], ignore_index=True).astype(others.dtypes.to_dict())


def _at_budget(df: pd.DataFrame) -> pd.DataFrame:
    kl = df["calibrated_kl"]
    if kl.isna().all():
        return df
    budget = np.sign(df["strength"]) * kl
    return df.assign(strength=budget.where(kl.notna(), df["strength"]))


def _name(key) -> str:
    method, family, seed, strength = key
    return f"{method}{':' + family if family else ''} seed {seed} strength {strength:+g}"


def _resample_weights(n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``[1 + draws, n]`` multiplicities: row 0 all ones (the point estimate), then
    bootstrap draws of ``n`` items with replacement."""
    out = np.ones((1 + draws, n))
    if draws:
        out[1:] = rng.multinomial(n, np.full(n, 1 / n), size=draws)
    return out


def _seed_weights(n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Like ``_resample_weights``; one seed is not resampled (it is all there is)."""
    return _resample_weights(n, draws, rng) if n > 1 else np.ones((1 + draws, 1))


def _wmean(x: np.ndarray, ws: np.ndarray, wr: np.ndarray) -> np.ndarray:
    """Weighted mean of ``x [seeds, rows]`` (NaN: absent) per draw: ``[draws]``."""
    ok = ~np.isnan(x)
    num = np.einsum("bs,sr,br->b", ws, np.where(ok, x, 0.0), wr)
    den = np.einsum("bs,sr,br->b", ws, ok.astype(float), wr)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def _interval(draws: np.ndarray, ci: float) -> tuple[float, float]:
    draws = draws[~np.isnan(draws)]
    if draws.size < 2:
        return float("nan"), float("nan")
    lo = (1 - ci) / 2
    return float(np.quantile(draws, lo)), float(np.quantile(draws, 1 - lo))


def _matrices(
    sub: pd.DataFrame, value: str, row: str = "row_id"
) -> tuple[dict[float, np.ndarray], list, list]:
    """``{strength: [seeds, rows]}`` of ``value`` for one (method, family, eval)."""
    wide = sub.pivot_table(index=["strength", "seed"], columns=row, values=value, dropna=False)
    seeds = sorted(sub["seed"].unique())
    rows = list(wide.columns)
    out = {s: wide.loc[s].reindex(seeds).to_numpy(float) for s in sorted(sub["strength"].unique())}
    return out, seeds, rows


def _si(
    s0: np.ndarray,
    sp: np.ndarray,
    sn: np.ndarray,
    pp: np.ndarray,
    pn: np.ndarray,
    ws: np.ndarray,
    wr: np.ndarray,
) -> dict[str, np.ndarray]:
    """SI and its parts per draw (``[draws]``), from ``[seeds, rows]`` scores at 0, +s, -s
    and pmass at +s, -s; per-seed values are averaged with the seed weights."""
    cho, rej = (s0 > 0).astype(float), (s0 < 0).astype(float)

    def count(mask):  # [draws, seeds]
        return np.einsum("sr,br->bs", mask, wr)

    n_cho, n_rej = count(cho), count(rej)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = {
            "fix": count(rej * (sp > 0)) / n_rej,
            "broke": count(cho * (sp < 0)) / n_cho,
            "flip": count(cho * (sn < 0)) / n_cho,
            "counter": count(rej * (sn > 0)) / n_rej,
        }
        total = wr.sum(1)[:, None]
        mass = np.minimum(count(pp), count(pn)) / total  # [draws, seeds]: min mean pmass
        out = {}
        for k in (1, 2):
            fwd = rates["fix"] - k * rates["broke"]
            rev = rates["flip"] - k * rates["counter"]
            out[f"si_k{k}"] = (fwd + rev) / 2 * 100 * mass**2
        out.update(rates)
        out["n_cho"], out["n_rej"] = n_cho, n_rej

    def over_seeds(v):  # [draws, seeds] -> [draws]
        ok = ~np.isnan(v)
        return (np.where(ok, v, 0) * ws).sum(1) / (ws * ok).sum(1)

    with np.errstate(invalid="ignore", divide="ignore"):
        return {k: over_seeds(v) for k, v in out.items()}


def suite_metrics(df: pd.DataFrame, settings: MetricsConfig = DEFAULTS) -> pd.DataFrame:
    """One row per (method, family, eval, strength); columns in the module docstring."""
    df = _at_budget(df)
    check_same_rows(df)
    rng = np.random.default_rng(settings.seed)
    records = []
    for (method, family, suite), sub in df.groupby(["method", "family", "eval"], sort=False):
        if 0.0 not in set(sub["strength"]):
            raise UserError(f"eval {suite!r}, {method} {family}: no strength 0 to compare with")
        score, seeds, rows = _matrices(sub, "score")
        pmass, _, _ = _matrices(sub, "pmass")
        ws = _seed_weights(len(seeds), settings.bootstrap, rng)
        wr = _resample_weights(len(rows), settings.bootstrap, rng)
        s0 = score[0.0]
        for strength, x in score.items():
            delta = x - s0
            per_seed = np.nanmean(delta, axis=1)
            mean_delta = float(per_seed.mean())
            draws = _wmean(delta, ws, wr)
            mean_draws = _wmean(x, ws, wr)
            mean_lo, mean_hi = _interval(mean_draws[1:], settings.ci)
            delta_lo, delta_hi = _interval(draws[1:], settings.ci)
            rec = {
                "method": method,
                "family": family,
                "eval": suite,
                "strength": strength,
                "seeds": len(seeds),
                "rows": len(rows),
                "mean": float(np.nanmean(x)),
                "mean_lo": mean_lo,
                "mean_hi": mean_hi,
                "std": float(np.nanstd(x, ddof=1)) if x.size > 1 else float("nan"),
                "delta": float(draws[0]),
                "delta_lo": delta_lo,
                "delta_hi": delta_hi,
                "delta_seed_sd": float(per_seed.std(ddof=1)) if len(seeds) > 1 else float("nan"),
                "sign_agree": float(np.mean(np.sign(per_seed) == np.sign(mean_delta)))
                if mean_delta != 0
                else float("nan"),
                "pmass": float(np.nanmean(pm))
                if np.isfinite(pm := pmass[strength]).any()
                else float("nan"),  # free text: no choice mass
                "low_pmass": float(np.nanmean(pmass[strength] < settings.pmass_min)),
            }
            if strength > 0 and -strength in score:
                # free text (a generative suite) has no choice mass: nothing to discount
                pp, pn = (np.nan_to_num(pmass[t], nan=1.0) for t in (strength, -strength))
                si = _si(s0, x, score[-strength], pp, pn, ws, wr)
                for k in ("si_k1", "si_k2"):
                    rec[k] = float(si[k][0])
                    rec[f"{k}_lo"], rec[f"{k}_hi"] = _interval(si[k][1:], settings.ci)
                for k in ("fix", "broke", "flip", "counter", "n_cho", "n_rej"):
                    rec[k] = float(si[k][0])
                rec["small"] = min(rec["n_cho"], rec["n_rej"]) < settings.min_rows
            records.append(rec)
    return pd.DataFrame.from_records(records)


# -- tinymfv: frames -> wrongness per vignette -> paired change per foundation ----------


def wrongness(df: pd.DataFrame, min_pmass: float) -> pd.DataFrame:
    """Per vignette and (method, family, seed, strength): ``w``, ``logit_w`` (w clipped to
    [0.01, 0.99]) and ``ok`` (both frames have true/false mass >= ``min_pmass``)."""
    d = df.copy()
    d["vignette"] = d["row_id"].str.rsplit(":", n=1).str[0]
    d["frame"] = d["row_id"].str.rsplit(":", n=1).str[1]
    d["p_true"] = 1 / (1 + np.exp(-d["logratio"]))
    keys = [*UNIT, "eval", "strength", "vignette", "group"]
    wide = d.pivot_table(index=keys, columns="frame", values=["p_true", "pmass"])
    if ("p_true", "wrong") not in wide.columns or ("p_true", "acceptable") not in wide.columns:
        raise UserError("tinymfv results need both the :wrong and :acceptable frame of each row")
    w = (wide[("p_true", "wrong")] + 1 - wide[("p_true", "acceptable")]) / 2
    clipped = w.clip(0.01, 0.99)
    mass = wide["pmass"][["wrong", "acceptable"]].min(axis=1)
    out = pd.DataFrame(
        {"w": w, "logit_w": np.log(clipped / (1 - clipped)), "ok": mass.ge(min_pmass)}
    )
    return out.reset_index()


def foundation_table(
    df: pd.DataFrame,
    *,
    target: str | None,
    sign: int,
    min_pmass: float,
    settings: MetricsConfig = DEFAULTS,
) -> pd.DataFrame:
    """Per (method, family, strength, foundation): the paired change in ``logit(w)`` vs
    strength 0 with its CI; (seed, vignette) cells with low mass at either strength are
    dropped and counted. ``as_expected``: the target foundation moved in the direction ``sign``."""
    df = _at_budget(df)
    check_same_rows(df)
    v = wrongness(df, min_pmass)
    rng = np.random.default_rng(settings.seed)
    records = []
    for (method, family, group), sub in v.groupby(["method", "family", "group"], sort=False):
        logit, seeds, rows = _matrices(sub, "logit_w", "vignette")
        ok, _, _ = _matrices(sub.assign(ok=sub["ok"].astype(float)), "ok", "vignette")
        ws = _seed_weights(len(seeds), settings.bootstrap, rng)
        wr = _resample_weights(len(rows), settings.bootstrap, rng)
        for strength, x in logit.items():
            keep = (ok[strength] > 0) & (ok[0.0] > 0)
            delta = np.where(keep, x - logit[0.0], np.nan)
            draws = _wmean(delta, ws, wr)
            lo, hi = _interval(draws[1:], settings.ci)
            records.append(
                {
                    "method": method,
                    "family": family,
                    "strength": strength,
                    "foundation": group,
                    "target": group == target,
                    "logit_w": float(np.nanmean(np.where(ok[strength] > 0, x, np.nan)))
                    if (ok[strength] > 0).any()
                    else float("nan"),
                    "delta": float(draws[0]),
                    "delta_lo": lo,
                    "delta_hi": hi,
                    "vignettes": len(rows),
                    "cells": int(keep.size),  # seeds x vignettes
                    "dropped": int((~keep).sum()),
                    "as_expected": bool(np.sign(draws[0]) == sign)
                    if group == target and strength > 0 and not np.isnan(draws[0])
                    else None,
                }
            )
    return pd.DataFrame.from_records(records)
