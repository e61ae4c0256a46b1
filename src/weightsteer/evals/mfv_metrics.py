"""tinymfv's metrics: wrongness per vignette, and the seeds' Authority-benchmark columns.

**Wrongness** (``wrongness``), per vignette and (method, family, seed, strength), from the
results rows of its frames (``<condition>/<id>:wrong`` / ``...:acceptable``, ``logratio``
= log P(true) - log P(false)):

- ``is_wrong`` (the seeds' ΔAuth): ``w = P(true)`` in the is_wrong frame, normalised
  over true/false; in format when that frame's true/false mass is at least ``min_pmass``.
- ``two_frame``: ``w = (P_wrong(true) + 1 - P_acceptable(true)) / 2`` (asking both ways
  cancels a prior toward "true"; steering-lite's frame-cancelled wrongness); in format
  when both frames are.

``logit_w`` clips ``w`` to [0.01, 0.99] first (±4.6 nats), as steering-lite's
``_logit`` does (``src/steering_lite/eval/foundations.py``); ``clip = 0`` keeps every
change (with ``is_wrong``, ``logit_w`` is then the true/false logratio itself): a model
sure of its answers beyond ±4.6 nats moves unseen under the seeds' clip.

**The seeds' columns** (``seeds_table``), per (method, family, strength s > 0), with
``sign`` the direction the target foundation should move at +s (-1 for Authority↓):

- ``Δ<foundation>``: the mean paired change ``logit_w(s) - logit_w(0)`` over the
  (vignette, condition) cells in format at both strengths, pooled over conditions and
  averaged over seeds, with a bootstrap CI (vignettes of the foundation resampled, the
  same draws for every method) and ``sd``: the sd over vignettes of the per-vignette
  change (averaged over seeds first), the seeds' "± std".
- ``SI(target)``, ``SI_fwd``, ``SI_rev``: surgical informedness on the target (``metrics
  .surgical``) with the score ``sign * logit_w``, so a cell is "cho" when it already
  leans the intended way at 0: ``SI_fwd = fix/n_rej - k * broke/n_cho`` at +s, ``SI_rev =
  flip/n_cho - k * counter/n_rej`` at -s, ``SI = mean(SI_fwd, SI_rev) * pmass² * 100``,
  ``k = 2`` (steering-lite's ``k_fpr``). A cell out of format at 0 or +s is left out of
  both arms; one out of format at -s counts in the reverse arm's denominators only (as
  steering-lite's ``si_per_foundation`` does).
- ``pmass² × 100``: ``min(mean pmass at +s, mean pmass at -s)² × 100``, the mean over
  every vignette of every foundation and every frame scored, per seed, then averaged
  (steering-lite's ``pmass_scale``); SI's discount.
- ``target_sep``: ``sign * (mean logit_w(+s) - mean logit_w(-s))`` in nats, the first
  mean over target cells in format at 0 and +s, the second over those also in format at
  -s: how far apart the two directions put the target, positive when they separate the
  intended way. This is steering-lite's ``separation`` (``si_per_foundation`` in
  ``src/steering_lite/eval/foundations.py``; "Auth_sep" in its tables).
"""

from __future__ import annotations

import warnings
from typing import Literal

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
    seed_weights,
    wmean,
)
from weightsteer.evals.metrics import surgical

Measure = Literal["is_wrong", "two_frame"]
CLIP = 0.01
K_FPR = 2


def logit(w: np.ndarray | pd.Series, clip: float = CLIP):
    """``log(w / (1 - w))`` of ``w`` clipped to ``[clip, 1 - clip]`` (NaN stays NaN)."""
    c = np.clip(w, clip, 1 - clip)
    return np.log(c / (1 - c))


def wrongness(
    df: pd.DataFrame, min_pmass: float, measure: Measure = "two_frame", clip: float = CLIP
) -> pd.DataFrame:
    """Per vignette and (method, family, seed, strength): ``w``, ``logit_w`` (``w`` clipped
    to ``[clip, 1 - clip]``; ``clip`` 0 with ``is_wrong``: the logratio itself), ``pmass``
    (the mean mass of the frames the measure uses), ``ok`` (every such frame's mass is at
    least ``min_pmass``) and ``condition`` (the row id's ``<condition>/`` prefix, "")."""
    d = df.copy()
    d["vignette"] = d["row_id"].str.rsplit(":", n=1).str[0]
    d["frame"] = d["row_id"].str.rsplit(":", n=1).str[1]
    d["p_true"] = 1 / (1 + np.exp(-d["logratio"]))
    keys = [*UNIT, "eval", "strength", "vignette", "group"]
    wide = d.pivot_table(index=keys, columns="frame", values=["p_true", "pmass", "logratio"])
    frames = ["wrong"] if measure == "is_wrong" else ["wrong", "acceptable"]
    for f in frames:
        if ("p_true", f) not in wide.columns:
            raise UserError(
                f"tinymfv results need the :{f} frame of each row for wrongness = "
                f"{'two_frame' if measure == 'two_frame' else 'is_wrong'}"
            )
    p = wide["p_true"]
    w = p["wrong"] if measure == "is_wrong" else (p["wrong"] + 1 - p["acceptable"]) / 2
    mass = wide["pmass"][frames]
    exact = clip == 0 and measure == "is_wrong"  # logit P(true) is the true/false logratio
    lw = wide["logratio"]["wrong"] if exact else logit(w, clip or 1e-6)
    out = pd.DataFrame(
        {"w": w, "logit_w": lw, "pmass": mass.mean(axis=1),
         "ok": mass.min(axis=1).ge(min_pmass)}
    ).reset_index()  # fmt: skip
    parts = out["vignette"].str.split("/", n=1)
    out["condition"] = parts.map(lambda q: q[0] if len(q) == 2 else "")
    return out


def _group_draws(settings: MetricsConfig, groups: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Row resampling weights per foundation, drawn from its name: every method gets the
    same draws, and adding a method moves no other interval."""
    return {
        g: resample_weights(len(idx), settings.bootstrap, keyed_rng(settings.seed, "tinymfv", g))
        for g, idx in groups.items()
    }


def seeds_table(
    df: pd.DataFrame,
    *,
    target: str | None,
    sign: int,
    min_pmass: float,
    measure: Measure = "is_wrong",
    settings: MetricsConfig = DEFAULTS,
    clip: float = CLIP,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(foundations, headline)``: per (method, family, strength s > 0, foundation) the
    paired change with its sd over vignettes and CI; per (method, family, s) the seeds'
    target columns (module docstring), with the bootstrap draws of SI (``si_draws``) and
    of the target's sd over vignettes (``sd_draws``), shared vignette draws for every
    method, for paired comparisons. Conditions are pooled: a cell is a (vignette,
    condition)."""
    df = at_budget(df)
    check_same_rows(df)
    v = wrongness(df, min_pmass, measure, clip)
    found_rows, head_rows = [], []
    for (method, family), sub in v.groupby(["method", "family"], sort=False):
        if 0.0 not in set(sub["strength"]):
            raise UserError(f"tinymfv, {method} {family}: no strength 0 to compare with")
        logit_w, seeds, cells = matrices(sub, "logit_w", "vignette")
        ok = {s: x > 0 for s, x in matrices(sub.assign(ok=sub["ok"].astype(float)), "ok",
                                             "vignette")[0].items()}  # fmt: skip
        mass = matrices(sub, "pmass", "vignette")[0]
        group_of = sub.drop_duplicates("vignette").set_index("vignette")["group"]
        groups = {g: np.flatnonzero(group_of.loc[cells].to_numpy() == g)
                  for g in dict.fromkeys(group_of.loc[cells])}  # fmt: skip
        wr = _group_draws(settings, groups)
        ws = seed_weights(len(seeds), settings.bootstrap,
                          keyed_rng(settings.seed, "seeds", method, family, "tinymfv"),
                          settings)  # fmt: skip
        base = logit_w[0.0]
        for s in sorted(x for x in logit_w if x > 0):
            d = np.where(ok[s] & ok[0.0], logit_w[s] - base, np.nan)
            for g, idx in groups.items():
                draws = wmean(d[:, idx], ws, wr[g])
                lo, hi = interval(draws[1:], settings.ci)
                with np.errstate(invalid="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # a cell never in format
                    per_vignette = np.nanmean(d[:, idx], axis=0)
                finite = per_vignette[np.isfinite(per_vignette)]
                found_rows.append({
                    "method": method, "family": family, "strength": s, "foundation": g,
                    "target": g == target, "delta": float(draws[0]), "delta_lo": lo,
                    "delta_hi": hi,
                    "sd": float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
                    "cells": int(finite.size), "vignettes": len(idx),
                })  # fmt: skip
            if target is None or target not in groups or -s not in logit_w:
                continue
            idx = groups[target]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                pv = np.nanmean(d[:, idx], axis=0)
            head_rows.append(
                {"method": method, "family": family, "strength": s,
                 **_target_columns(logit_w, ok, mass, s, sign, idx, ws, wr[target], settings),
                 "sd_draws": weighted_sd(pv, wr[target])}
            )  # fmt: skip
    return pd.DataFrame.from_records(found_rows), pd.DataFrame.from_records(head_rows)


def weighted_sd(x: np.ndarray, wr: np.ndarray) -> np.ndarray:
    """The sd (ddof 1) of ``x [rows]`` (NaN: absent) per draw of row weights ``wr
    [draws, rows]``: ``[draws]``, draw 0 the plain sd."""
    ok = np.isfinite(x)
    if ok.sum() < 2:  # no spread to speak of (every vignette off format, or one left)
        return np.full(wr.shape[0], np.nan)
    w, v = wr[:, ok], x[ok]
    n = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = (w * v).sum(1) / n
        return np.sqrt((w * (v[None, :] - m[:, None]) ** 2).sum(1) / (n - 1))


def _target_columns(logit_w, ok, mass, s, sign, idx, ws, wr, settings) -> dict:
    """SI(target) and its arms, target_sep and pmass² × 100 at ±s (module docstring)."""
    x0, xp, xn = (logit_w[t][:, idx] for t in (0.0, s, -s))
    k0, kp, kn = (ok[t][:, idx] for t in (0.0, s, -s))
    s0 = np.where(k0 & kp, sign * x0, np.nan)
    sp = np.where(kp, sign * xp, np.nan)
    sn = np.where(kn, sign * xn, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_seed = np.fmin(np.nanmean(mass[s], axis=1), np.nanmean(mass[-s], axis=1))
    ones = np.ones_like(sp)
    si = surgical(s0, sp, sn, ones, ones, ws, wr, mass=per_seed)
    fwd = si["fix"] - K_FPR * si["broke"]
    rev = si["flip"] - K_FPR * si["counter"]
    pos = np.where(k0 & kp, xp, np.nan)
    neg = np.where(k0 & kp & kn, xn, np.nan)
    sep = sign * (wmean(pos, ws, wr) - wmean(neg, ws, wr))
    out: dict = {"si_draws": si[f"si_k{K_FPR}"]}
    for name, draws in (("si", si[f"si_k{K_FPR}"]), ("si_fwd", fwd), ("si_rev", rev),
                        ("target_sep", sep)):  # fmt: skip
        out[name] = float(draws[0])
        out[f"{name}_lo"], out[f"{name}_hi"] = interval(draws[1:], settings.ci)
    out["pmass2"] = float(np.nanmean(per_seed**2) * 100)
    out["n_cho"], out["n_rej"] = float(si["n_cho"][0]), float(si["n_rej"][0])
    return out
