"""Metrics, computed from the long results table only (``results.py``).

Per (method, family, eval, strength), over seeds and rows:

- ``mean``, ``std``: of ``score`` (std over rows, pooled over seeds).
- ``delta``: the paired shift ``score(s) - score(0)`` (same method, seed and row), its
  bootstrap CI, its sd over seeds and the fraction of seeds agreeing with its sign.
- ``pmass``: mean choice mass, and ``low_pmass``: the fraction of rows below
  ``pmass_min`` (the model has left the answer format; its logratio says little).
- ``value``, ``value_delta`` (with CIs): a capability suite's measure (accuracy, or mean
  token NLL) and its paired change from strength 0; NaN for behaviour suites.
- Surgical informedness at ``+s`` (with ``-s`` in the table). With reference rows
  ``cho`` (score > 0 at strength 0) and ``rej`` (score < 0)::

      fix  = rej rows > 0 at +s      broke   = cho rows < 0 at +s
      flip = cho rows < 0 at -s      counter = rej rows > 0 at -s
      si_fwd = fix/n_rej - k * broke/n_cho
      si_rev = flip/n_cho - k * counter/n_rej
      SI = mean(si_fwd, si_rev) * 100 * min(pmass(+s), pmass(-s))^2

  for k = 1 and k = 2, per seed, then averaged over seeds. When one arm is NaN (its side
  was not scored, or every score on it is NaN) SI is the other arm alone and ``si_arms``
  says 1 (as the reference does); both NaN: SI is NaN. ``small`` flags a denominator under
  ``min_rows`` rows. Free-text rows (a generative suite) have no choice mass (``pmass``
  NaN): their SI is not discounted.

Rows calibrated to a KL budget (``calibrated_kl`` set, ``methods/calibrate.py``) are grouped by
``strength = sign * budget``: each seed of a method may need its own coefficient to
spend the budget, and the comparison is at equal budget. ``kl`` / ``audit_kl`` are the
achieved statistics (mean over seeds) and ``status`` the searches' outcome: ``at_budget``
is true only when every seed's search hit the budget within tolerance; a side that
missed keeps its row (flagged) and never enters a verdict. ``comparison_frame`` turns the
unsteered model's rows (method ``none``) into strength 0 of every compared method.

Confidence intervals and their resampling: ``bootstrap.py``.

``paired_effects`` answers "does A move the behaviour more than B" on identical rows: the
effect of a method is half its paired swing, ``(score(+s) - score(-s)) / 2`` per row, and
the difference of two methods' effects gets a bootstrap CI with the rows drawn once for
both (each method's seeds resampled on their own).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from weightsteer.core.errors import UserError
from weightsteer.evals.bootstrap import (
    DEFAULTS,
    UNIT,
    MetricsConfig,
    at_budget,
    check_same_rows,
    interval,
    keyed_rng,
    matrices,
    resample_weights,
    seed_sd_interval,
    seed_weights,
    wmean,
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


NOT_CALIBRATED = {"kl": float("nan"), "audit_kl": float("nan"), "status": "", "at_budget": False}


def _calibration(sub: pd.DataFrame) -> dict[float, dict]:
    """Per strength of one (method, family, eval): the achieved KL and audit KL (mean
    over seeds), the searches' outcome (``ok`` only when every seed's was; else each
    other outcome with its seed count) and ``at_budget``."""
    if "status" not in sub or not sub["status"].fillna("").astype(bool).any():
        return {}
    out = {}
    first = sub.drop_duplicates(["strength", "seed"])
    for strength, g in first.groupby("strength"):
        statuses = g["status"].fillna("").astype(str)
        if not statuses.astype(bool).any():
            continue
        missed = statuses[statuses != "ok"].value_counts()
        status = (
            "ok"
            if missed.empty
            else ", ".join(
                f"{k} ({v} of {len(g)} seeds)" if len(g) > 1 else k for k, v in missed.items()
            )
        )
        out[float(strength)] = {
            "kl": float(g["kl"].mean()),
            "audit_kl": float(g["audit_kl"].mean()),
            "status": status,
            "at_budget": bool(missed.empty and g["calibrated_kl"].notna().all()),
        }
    return out


def surgical(
    s0: np.ndarray,
    sp: np.ndarray,
    sn: np.ndarray | None,
    pp: np.ndarray,
    pn: np.ndarray | None,
    ws: np.ndarray,
    wr: np.ndarray,
    mass: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """SI and its parts per draw (``[draws]``), from ``[seeds, rows]`` scores at 0, +s, -s
    and pmass at +s, -s (``sn``/``pn`` None: -s was not scored); per-seed values are
    averaged with the seed weights. An arm whose side has no finite score in a seed is NaN
    there, and SI is the other arm alone (``si_arms`` = 1). A row whose ``s0`` is NaN is
    neither cho nor rej (left out). ``mass`` (``[seeds]``) replaces the smaller mean pmass
    of the two sides, for a caller whose mass is measured over other rows than these
    (tinymfv: every foundation's vignettes)."""
    cho, rej = (s0 > 0).astype(float), (s0 < 0).astype(float)
    if sn is None:
        sn, pn = np.full_like(sp, np.nan), np.full_like(pp, np.nan)

    def count(mask):  # [draws, seeds]
        return np.einsum("sr,br->bs", mask, wr)

    def scored(x):  # [1, seeds]: the side has a finite score in the seed
        return np.where(np.isfinite(x).any(1), 1.0, np.nan)[None, :]

    n_cho, n_rej = count(cho), count(rej)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = {
            "fix": count(rej * (sp > 0)) / n_rej * scored(sp),
            "broke": count(cho * (sp < 0)) / n_cho * scored(sp),
            "flip": count(cho * (sn < 0)) / n_cho * scored(sn),
            "counter": count(rej * (sn > 0)) / n_rej * scored(sn),
        }
        total = wr.sum(1)[:, None]
        assert pn is not None  # set with sn above
        means = [count(np.nan_to_num(p)) / total * scored(p) for p in (pp, pn)]
        mass = np.fmin(*means) if mass is None else np.broadcast_to(mass, means[0].shape)
        out = {}
        for k in (1, 2):
            arms = np.stack(
                [rates["fix"] - k * rates["broke"], rates["flip"] - k * rates["counter"]]
            )
            both = np.isfinite(arms)
            mean = np.where(both, arms, 0).sum(0) / both.sum(0)  # NaN when neither
            out[f"si_k{k}"] = mean * 100 * mass**2
        out["si_arms"] = np.isfinite(arms).sum(0).astype(float)
        out.update(rates)
        out["n_cho"], out["n_rej"] = n_cho, n_rej

    def over_seeds(v):  # [draws, seeds] -> [draws]
        ok = ~np.isnan(v)
        return (np.where(ok, v, 0) * ws).sum(1) / (ws * ok).sum(1)

    with np.errstate(invalid="ignore", divide="ignore"):
        return {k: over_seeds(v) for k, v in out.items()}


def suite_metrics(df: pd.DataFrame, settings: MetricsConfig = DEFAULTS) -> pd.DataFrame:
    """One row per (method, family, eval, strength); columns in the module docstring. A
    side with no finite score at all has NaN statistics (no warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _suite_metrics(df, settings)


VALUE_COLUMNS = ["value", "value_lo", "value_hi", "value_delta", "value_delta_lo", "value_delta_hi"]
NO_VALUE = dict.fromkeys(VALUE_COLUMNS, float("nan"))


def _value_stats(value: dict, strength: float, ws, wr, ci: float) -> dict[str, float]:
    """A capability suite's measure at ``strength`` (``value``: ``{strength: [seeds,
    rows]}``): its mean and its paired change from strength 0, each with the same bootstrap
    draws as the score's."""
    x = value[strength]
    mean, delta = wmean(x, ws, wr), wmean(x - value[0.0], ws, wr)
    lo, hi = interval(mean[1:], ci)
    dlo, dhi = interval(delta[1:], ci)
    return {
        "value": float(mean[0]),
        "value_lo": lo,
        "value_hi": hi,
        "value_delta": float(delta[0]),
        "value_delta_lo": dlo,
        "value_delta_hi": dhi,
    }


def _suite_metrics(df: pd.DataFrame, settings: MetricsConfig) -> pd.DataFrame:
    df = at_budget(df)
    check_same_rows(df)
    records = []
    for (method, family, suite), sub in df.groupby(["method", "family", "eval"], sort=False):
        if 0.0 not in set(sub["strength"]):
            raise UserError(f"eval {suite!r}, {method} {family}: no strength 0 to compare with")
        score, seeds, rows = matrices(sub, "score")
        pmass, _, _ = matrices(sub, "pmass")
        measured = "value" in sub and bool(sub["value"].notna().any())
        value = matrices(sub, "value")[0] if measured else None
        seed_rng = keyed_rng(settings.seed, "seeds", method, family, suite)
        ws = seed_weights(len(seeds), settings.bootstrap, seed_rng, settings)
        wr = resample_weights(len(rows), settings.bootstrap, keyed_rng(settings.seed, suite))
        s0 = score[0.0]
        sides = _calibration(sub)
        for strength, x in score.items():
            delta = x - s0
            per_seed = np.nanmean(delta, axis=1)
            mean_delta = float(per_seed.mean())
            draws = wmean(delta, ws, wr)
            mean_draws = wmean(x, ws, wr)
            mean_lo, mean_hi = interval(mean_draws[1:], settings.ci)
            delta_lo, delta_hi = interval(draws[1:], settings.ci)
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
                **sides.get(strength, NOT_CALIBRATED),
                **(_value_stats(value, strength, ws, wr, settings.ci) if value else NO_VALUE),
            }
            if strength > 0:
                # free text (a generative suite) has no choice mass: nothing to discount
                pp = np.nan_to_num(pmass[strength], nan=1.0)
                neg = -strength in score
                pn = np.nan_to_num(pmass[-strength], nan=1.0) if neg else None
                si = surgical(s0, x, score[-strength] if neg else None, pp, pn, ws, wr)
                for k in ("si_k1", "si_k2"):
                    rec[k] = float(si[k][0])
                    rec[f"{k}_lo"], rec[f"{k}_hi"] = interval(si[k][1:], settings.ci)
                for k in ("fix", "broke", "flip", "counter", "n_cho", "n_rej", "si_arms"):
                    rec[k] = float(si[k][0])
                rec["small"] = min(rec["n_cho"], rec["n_rej"]) < settings.min_rows
            records.append(rec)
    return pd.DataFrame.from_records(records)


# -- paired effects: does A move the behaviour more than B, on the same rows ------------


Unit = tuple[str, str, float]  # (method, family, strength > 0)


def paired_effects(
    df: pd.DataFrame, suite: str, units: list[Unit], settings: MetricsConfig = DEFAULTS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Effects of ``units`` on ``suite`` and every ordered pair's difference.

    A unit's effect is ``(score(+s) - score(-s)) / 2`` per row and seed, averaged (strength
    ``s`` after budget grouping, so ``+1`` nat for a calibrated method). One row
    resampling is shared by every unit (the rows are the same); each unit's seeds are
    resampled on their own (``min_seeds``). Returns ``(effects, pairs)``: per unit the
    effect with CI, seeds, the sd over seeds of the per-seed effect with its interval;
    per pair ``(a, b)``, ``diff = effect(a) - effect(b)`` with its CI and ``share`` (the
    fraction of draws with diff > 0)."""
    df = at_budget(df[df["eval"] == suite])
    check_same_rows(df)
    rows = sorted(df["row_id"].unique())
    rng = np.random.default_rng(settings.seed)
    wr = resample_weights(len(rows), settings.bootstrap, rng)
    draws, effects = {}, []
    for unit in units:
        method, family, s = unit
        sub = df[(df["method"] == method) & (df["family"] == family)]
        score, seeds, have = matrices(sub, "score")
        if s not in score or -s not in score:
            raise UserError(f"eval {suite!r}: {method} {family} has no strength ±{s:g}")
        assert have == rows  # check_same_rows: every unit has the suite's rows
        e = (score[s] - score[-s]) / 2
        ws = seed_weights(len(seeds), settings.bootstrap, rng, settings)
        draws[unit] = wmean(e, ws, wr)
        per_seed = np.nanmean(e, axis=1)
        sd = float(per_seed.std(ddof=1)) if len(seeds) > 1 else float("nan")
        lo, hi = interval(draws[unit][1:], settings.ci)
        sd_lo, sd_hi = seed_sd_interval(sd, len(seeds), settings.ci, settings.seed)
        effects.append(
            {
                "method": method,
                "family": family,
                "strength": s,
                "effect": float(draws[unit][0]),
                "effect_lo": lo,
                "effect_hi": hi,
                "seeds": len(seeds),
                "seed_sd": sd,
                "seed_sd_lo": sd_lo,
                "seed_sd_hi": sd_hi,
            }
        )
    pairs = []
    for a in units:
        for b in units:
            if a == b:
                continue
            d = draws[a] - draws[b]
            lo, hi = interval(d[1:], settings.ci)
            ok = d[1:][~np.isnan(d[1:])]
            pairs.append(
                {
                    "a": a,
                    "b": b,
                    "diff": float(d[0]),
                    "diff_lo": lo,
                    "diff_hi": hi,
                    "share": float((ok > 0).mean()) if ok.size else float("nan"),
                }
            )
    return pd.DataFrame.from_records(effects), pd.DataFrame.from_records(pairs)


def seed_effects(df: pd.DataFrame, budget: float) -> pd.DataFrame:
    """Per (eval, method, family, seed): the effect ``(score(+s) - score(-s)) / 2`` averaged
    over rows, at ``s = budget`` after budget grouping (a prompt at its own ±1), with
    ``fixed`` (a prompt at its own cost) and ``hit`` (both sides at the budget). What a
    seed-spread figure draws."""
    df = at_budget(df)
    fixed = df["status"].eq("fixed") if "status" in df else pd.Series(False, index=df.index)
    s = np.where(fixed, 1.0, budget)
    up = df[np.isclose(df["strength"], s)]
    down = df[np.isclose(df["strength"], -s)]
    keys = ["eval", "method", "family", "seed"]
    a = up.groupby(keys)["score"].mean()
    b = down.groupby(keys)["score"].mean()
    out = ((a - b) / 2).dropna().rename("effect").reset_index()
    if "status" not in df:
        return out.assign(fixed=False, hit=True)
    status = {k: set(v) for k, v in pd.concat([up, down]).groupby(keys)["status"].unique().items()}
    st = [status[k] for k in out.set_index(keys).index]
    return out.assign(fixed=[x == {"fixed"} for x in st], hit=[x <= {"ok", "fixed"} for x in st])
