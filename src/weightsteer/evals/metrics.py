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

Confidence intervals are percentile bootstraps resampling rows (the same draw for every
seed and every method, as rows are shared: drawn from the eval's name and the ``seed``
setting, so adding a method or a suite to a table moves no other interval) and, with at
least ``min_seeds`` seeds, seeds. With fewer seeds (two, say) a bootstrap over seeds
understates the between-seed variance (half the draws repeat one seed), so seeds are not
resampled and their spread is reported apart, as the sd over seeds with a normal-theory
interval (``seed_sd_interval``). The point estimate is the statistic on the table itself.
Every function refuses tables whose methods were scored on different rows
(``check_same_rows``).

``paired_effects`` answers "does A move the behaviour more than B" on identical rows: the
effect of a method is half its paired swing, ``(score(+s) - score(-s)) / 2`` per row, and
the difference of two methods' effects gets a bootstrap CI with the rows drawn once for
both (each method's seeds resampled on their own).
"""

from __future__ import annotations

import functools
import hashlib
import warnings

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


def _seed_weights(
    n: int, draws: int, rng: np.random.Generator, settings: MetricsConfig = DEFAULTS
) -> np.ndarray:
    """Like ``_resample_weights`` with at least ``settings.min_seeds`` seeds; fewer are
    all kept in every draw (module docstring)."""
    if n < settings.min_seeds:
        return np.ones((1 + draws, n))
    return _resample_weights(n, draws, rng)


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


def _keyed_rng(seed: int, *key: str) -> np.random.Generator:
    """A generator of its own for ``key`` (an eval's rows, a unit's seeds): a group's
    draws do not depend on which other groups a table holds, and every method of one eval
    resamples its rows alike."""
    digest = hashlib.sha256("\x1f".join(map(str, key)).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def _matrices(
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


def _si(
    s0: np.ndarray,
    sp: np.ndarray,
    sn: np.ndarray | None,
    pp: np.ndarray,
    pn: np.ndarray | None,
    ws: np.ndarray,
    wr: np.ndarray,
) -> dict[str, np.ndarray]:
    """SI and its parts per draw (``[draws]``), from ``[seeds, rows]`` scores at 0, +s, -s
    and pmass at +s, -s (``sn``/``pn`` None: -s was not scored); per-seed values are
    averaged with the seed weights. An arm whose side has no finite score in a seed is NaN
    there, and SI is the other arm alone (``si_arms`` = 1)."""
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
        means = [count(np.nan_to_num(p)) / total * scored(p) for p in (pp, pn)]
        mass = np.fmin(*means)  # [draws, seeds]: the smaller mean pmass of the scored sides
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
    mean, delta = _wmean(x, ws, wr), _wmean(x - value[0.0], ws, wr)
    lo, hi = _interval(mean[1:], ci)
    dlo, dhi = _interval(delta[1:], ci)
    return {
        "value": float(mean[0]),
        "value_lo": lo,
        "value_hi": hi,
        "value_delta": float(delta[0]),
        "value_delta_lo": dlo,
        "value_delta_hi": dhi,
    }


def _suite_metrics(df: pd.DataFrame, settings: MetricsConfig) -> pd.DataFrame:
    df = _at_budget(df)
    check_same_rows(df)
    records = []
    for (method, family, suite), sub in df.groupby(["method", "family", "eval"], sort=False):
        if 0.0 not in set(sub["strength"]):
            raise UserError(f"eval {suite!r}, {method} {family}: no strength 0 to compare with")
        score, seeds, rows = _matrices(sub, "score")
        pmass, _, _ = _matrices(sub, "pmass")
        measured = "value" in sub and bool(sub["value"].notna().any())
        value = _matrices(sub, "value")[0] if measured else None
        seed_rng = _keyed_rng(settings.seed, "seeds", method, family, suite)
        ws = _seed_weights(len(seeds), settings.bootstrap, seed_rng, settings)
        wr = _resample_weights(len(rows), settings.bootstrap, _keyed_rng(settings.seed, suite))
        s0 = score[0.0]
        sides = _calibration(sub)
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
                **sides.get(strength, NOT_CALIBRATED),
                **(_value_stats(value, strength, ws, wr, settings.ci) if value else NO_VALUE),
            }
            if strength > 0:
                # free text (a generative suite) has no choice mass: nothing to discount
                pp = np.nan_to_num(pmass[strength], nan=1.0)
                neg = -strength in score
                pn = np.nan_to_num(pmass[-strength], nan=1.0) if neg else None
                si = _si(s0, x, score[-strength] if neg else None, pp, pn, ws, wr)
                for k in ("si_k1", "si_k2"):
                    rec[k] = float(si[k][0])
                    rec[f"{k}_lo"], rec[f"{k}_hi"] = _interval(si[k][1:], settings.ci)
                for k in ("fix", "broke", "flip", "counter", "n_cho", "n_rej", "si_arms"):
                    rec[k] = float(si[k][0])
                rec["small"] = min(rec["n_cho"], rec["n_rej"]) < settings.min_rows
            records.append(rec)
    return pd.DataFrame.from_records(records)


# -- paired effects: does A move the behaviour more than B, on the same rows ------------


@functools.lru_cache(maxsize=256)
def _chi2_quantiles(dof: int, ci: float, seed: int) -> tuple[float, float]:
    """The central ``ci`` interval of chi-square(``dof``), by simulation (cached: a report
    asks for the same few seed counts hundreds of times)."""
    draws = np.random.default_rng(seed).chisquare(dof, size=200_000)
    lo = (1 - ci) / 2
    return float(np.quantile(draws, lo)), float(np.quantile(draws, 1 - lo))


@functools.lru_cache(maxsize=256)
def _f_quantiles(dof_a: int, dof_b: int, ci: float, seed: int) -> tuple[float, float]:
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
    q_lo, q_hi = _chi2_quantiles(n - 1, ci, seed)
    return float(sd * np.sqrt((n - 1) / q_hi)), float(sd * np.sqrt((n - 1) / q_lo))


def sd_ratio_interval(
    sd_a: float, n_a: int, sd_b: float, n_b: int, ci: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """``sd_a / sd_b`` and its normal-theory interval (the F distribution of the ratio of
    two sample variances; NaN where a side has < 2 seeds or no spread)."""
    if min(n_a, n_b) < 2 or not (np.isfinite(sd_a) and np.isfinite(sd_b)) or sd_b == 0:
        return float("nan"), float("nan"), float("nan")
    f_lo, f_hi = _f_quantiles(n_a - 1, n_b - 1, ci, seed)
    ratio = (sd_a / sd_b) ** 2
    return float(np.sqrt(ratio)), float(np.sqrt(ratio / f_hi)), float(np.sqrt(ratio / f_lo))


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
    df = _at_budget(df[df["eval"] == suite])
    check_same_rows(df)
    rows = sorted(df["row_id"].unique())
    rng = np.random.default_rng(settings.seed)
    wr = _resample_weights(len(rows), settings.bootstrap, rng)
    draws, effects = {}, []
    for unit in units:
        method, family, s = unit
        sub = df[(df["method"] == method) & (df["family"] == family)]
        score, seeds, have = _matrices(sub, "score")
        if s not in score or -s not in score:
            raise UserError(f"eval {suite!r}: {method} {family} has no strength ±{s:g}")
        assert have == rows  # check_same_rows: every unit has the suite's rows
        e = (score[s] - score[-s]) / 2
        ws = _seed_weights(len(seeds), settings.bootstrap, rng, settings)
        draws[unit] = _wmean(e, ws, wr)
        per_seed = np.nanmean(e, axis=1)
        sd = float(per_seed.std(ddof=1)) if len(seeds) > 1 else float("nan")
        lo, hi = _interval(draws[unit][1:], settings.ci)
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
            lo, hi = _interval(d[1:], settings.ci)
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
    over rows, at ``s = budget`` after budget grouping (a prompt at its own ±1). What a
    seed-spread figure draws."""
    df = _at_budget(df)
    fixed = df["status"].eq("fixed") if "status" in df else pd.Series(False, index=df.index)
    s = np.where(fixed, 1.0, budget)
    up = df[np.isclose(df["strength"], s)]
    down = df[np.isclose(df["strength"], -s)]
    keys = ["eval", "method", "family", "seed"]
    a = up.groupby(keys)["score"].mean()
    b = down.groupby(keys)["score"].mean()
    return ((a - b) / 2).dropna().rename("effect").reset_index()


# -- tinymfv: frames -> wrongness per vignette -> paired change per foundation ----------


def wrongness(df: pd.DataFrame, min_pmass: float) -> pd.DataFrame:
    """Per vignette and (method, family, seed, strength): ``w``, ``logit_w`` (w clipped to
    [0.01, 0.99]), ``ok`` (both frames have true/false mass >= ``min_pmass``) and the
    vignette's ``condition`` (the row id's ``<condition>/`` prefix, "" without one)."""
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
    ).reset_index()
    parts = out["vignette"].str.split("/", n=1)
    out["condition"] = parts.map(lambda p: p[0] if len(p) == 2 else "")
    return out


def foundation_table(
    df: pd.DataFrame,
    *,
    target: str | None,
    sign: int,
    min_pmass: float,
    settings: MetricsConfig = DEFAULTS,
) -> pd.DataFrame:
    """Per (method, family, condition, strength, foundation): the paired change in
    ``logit(w)`` vs strength 0 with its CI. ``delta``: over the (seed, vignette) cells in
    format (mass >= ``min_pmass``) at both strengths (the rest dropped and counted), so
    conditional on the survivors; ``delta_all``: over every cell, in format or not (the
    vignettes an intervention pushes off format count too). ``as_expected``: the target
    foundation moved in the direction ``sign``."""
    df = _at_budget(df)
    check_same_rows(df)
    v = wrongness(df, min_pmass)
    rng = np.random.default_rng(settings.seed)
    records = []
    groups = v.groupby(["method", "family", "condition", "group"], sort=False)
    for (method, family, condition, group), sub in groups:
        logit, seeds, rows = _matrices(sub, "logit_w", "vignette")
        ok, _, _ = _matrices(sub.assign(ok=sub["ok"].astype(float)), "ok", "vignette")
        ws = _seed_weights(len(seeds), settings.bootstrap, rng, settings)
        wr = _resample_weights(len(rows), settings.bootstrap, rng)
        for strength, x in logit.items():
            keep = (ok[strength] > 0) & (ok[0.0] > 0)
            every = x - logit[0.0]
            draws = _wmean(np.where(keep, every, np.nan), ws, wr)
            draws_all = _wmean(every, ws, wr)
            lo, hi = _interval(draws[1:], settings.ci)
            lo_all, hi_all = _interval(draws_all[1:], settings.ci)
            records.append(
                {
                    "method": method,
                    "family": family,
                    "condition": condition,
                    "strength": strength,
                    "foundation": group,
                    "target": group == target,
                    "logit_w": float(np.nanmean(np.where(ok[strength] > 0, x, np.nan)))
                    if (ok[strength] > 0).any()
                    else float("nan"),
                    "delta": float(draws[0]),
                    "delta_lo": lo,
                    "delta_hi": hi,
                    "delta_all": float(draws_all[0]),
                    "delta_all_lo": lo_all,
                    "delta_all_hi": hi_all,
                    "vignettes": len(rows),
                    "cells": int(keep.size),  # seeds x vignettes
                    "dropped": int((~keep).sum()),
                    "as_expected": bool(np.sign(draws[0]) == sign)
                    if group == target and strength > 0 and not np.isnan(draws[0])
                    else None,
                }
            )
    return pd.DataFrame.from_records(records)


# -- analysis variants: how much of the full vector's effect a part of it keeps ---------------


def retained_effects(df: pd.DataFrame, settings: MetricsConfig = DEFAULTS) -> pd.DataFrame:
    """One row per (family, eval, point, variant) of an analysis table (``variant``
    column; ``full`` is the unchanged vector, scored on the same rows at the same
    strengths). A point is a fixed ±alpha or a calibrated ±budget (``calibrated``). Per
    row the effect is ``(score(+) - score(-)) / 2``; ``retained`` is the variant's mean
    effect over the full vector's (1: all of it, 0: none, < 0: the other way), with a
    percentile bootstrap CI that draws rows once for both (and seeds with at least
    ``min_seeds`` of them)."""
    df = df.assign(calibrated=df["calibrated_kl"].notna())
    df = _at_budget(df)
    rng = np.random.default_rng(settings.seed)
    records = []
    keys = ["family", "eval", "calibrated"]
    for (family, suite, calibrated), sub in df.groupby(keys, sort=False):
        points = sorted({abs(s) for s in sub["strength"].unique() if s != 0})
        matrices = {v: _matrices(g, "score")[0] for v, g in sub.groupby("variant", sort=False)}
        if "full" not in matrices:
            raise UserError(f"analysis table for {family}, {suite}: no full-vector rows")
        seeds, rows = _matrices(sub[sub["variant"] == "full"], "score")[1:]
        ws = _seed_weights(len(seeds), settings.bootstrap, rng, settings)
        wr = _resample_weights(len(rows), settings.bootstrap, rng)
        for p in points:
            full = matrices["full"]
            if p not in full or -p not in full:
                continue
            base = _wmean((full[p] - full[-p]) / 2, ws, wr)
            for variant, m in matrices.items():
                if p not in m or -p not in m:
                    continue
                eff = _wmean((m[p] - m[-p]) / 2, ws, wr)
                with np.errstate(invalid="ignore", divide="ignore"):
                    ratio = eff / base
                lo, hi = _interval(ratio[1:], settings.ci)
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
