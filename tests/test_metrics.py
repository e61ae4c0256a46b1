"""Metrics on hand-made results tables whose values are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from weightsteer.core.errors import UserError
from weightsteer.evals.bootstrap import MetricsConfig, check_same_rows
from weightsteer.evals.metrics import suite_metrics
from weightsteer.evals.results import COLUMNS
from weightsteer.evals.suites.tinymfv import foundation_table

FAST = MetricsConfig(bootstrap=200)


def rows(scores, *, strength, method="weight", family="lora", seed=0, suite="s", pmass=1.0,
         ids=None, group="", logratio=None, budget=float("nan"), kl=float("nan"),
         status=""):  # fmt: skip
    n = len(scores)
    return pd.DataFrame(
        {
            "method": method,
            "family": family,
            "strength": float(strength),
            "calibrated_kl": budget,
            "kl": kl,
            "audit_kl": kl,
            "status": status,
            "seed": seed,
            "eval": suite,
            "row_id": ids or [f"r{i}" for i in range(n)],
            "group": group,
            "label": 1,
            "logratio": scores if logratio is None else logratio,
            "pmass": pmass,
            "score": scores,
            "text": "",
            "value": float("nan"),
            "variant": "",
        }
    ).astype(COLUMNS)


def sweep(base, plus, minus, **kw) -> pd.DataFrame:
    return pd.concat(
        [rows(base, strength=0, **kw), rows(plus, strength=1, **kw), rows(minus, strength=-1, **kw)]
    )


BASE = [2.0, 1.0, 0.5, -0.5, -1.0, -2.0] * 4  # 12 cho, 12 rej


def at(table, strength):
    return table.set_index("strength").loc[strength]


def test_a_no_op_has_delta_0_and_si_0():
    m = suite_metrics(sweep(BASE, BASE, BASE), FAST)
    for s in (-1.0, 0.0, 1.0):
        r = at(m, s)
        assert r["delta"] == 0 and r["delta_lo"] == 0 and r["delta_hi"] == 0
    r = at(m, 1.0)
    assert r["si_k1"] == 0 and r["si_k2"] == 0
    assert r["fix"] == r["broke"] == r["flip"] == r["counter"] == 0
    assert r["n_cho"] == 12 and r["n_rej"] == 12 and not r["small"]


def test_flipping_exactly_the_rej_rows_fixes_all_of_them():
    plus = [abs(x) for x in BASE]  # every rej row turns positive, cho rows stay
    minus = [-abs(x) for x in BASE]  # every cho row turns negative, rej rows stay
    r = at(suite_metrics(sweep(BASE, plus, minus, pmass=0.8), FAST), 1.0)
    assert r["fix"] == 1 and r["broke"] == 0 and r["flip"] == 1 and r["counter"] == 0
    assert r["si_k1"] == pytest.approx(100 * 0.8**2) and r["si_k2"] == pytest.approx(64)
    assert r["delta"] == pytest.approx(np.mean(plus) - np.mean(BASE))


def test_si_counts_the_damage_twice_with_k_2():
    plus = [-x for x in BASE]  # fixes every rej row and breaks every cho row
    r = at(suite_metrics(sweep(BASE, plus, BASE), FAST), 1.0)
    assert r["fix"] == 1 and r["broke"] == 1
    # si_fwd = 1 - k, si_rev = 0: SI = (1 - k) / 2 * 100
    assert r["si_k1"] == 0 and r["si_k2"] == pytest.approx(-50)


def test_a_small_denominator_is_flagged():
    base = [1.0] * 20 + [-1.0] * 3
    r = at(suite_metrics(sweep(base, base, base), FAST), 1.0)
    assert r["n_rej"] == 3 and r["small"]


def test_cis_shrink_as_rows_grow():
    rng = np.random.default_rng(0)
    widths = []
    for n in (25, 400):
        base = rng.normal(size=n)
        plus = base + 0.5 + rng.normal(size=n)
        r = at(suite_metrics(sweep(list(base), list(plus), list(base)), FAST), 1.0)
        assert r["delta_lo"] < r["delta"] < r["delta_hi"]
        widths.append(r["delta_hi"] - r["delta_lo"])
    assert widths[1] < widths[0] / 2  # ~ 1/sqrt(n): 4x narrower expected


def test_an_interval_does_not_depend_on_what_else_the_table_holds():
    """Each eval draws its rows from its own name: adding a method or a suite moves no
    other interval, and two methods with the same scores get the same intervals."""
    rng = np.random.default_rng(1)
    base = list(rng.normal(size=30))
    plus = list(np.array(base) + 0.3 + rng.normal(size=30))
    alone = suite_metrics(sweep(base, plus, base), FAST)
    other = sweep(base, list(rng.normal(size=30)), base, suite="t")
    twin = sweep(base, plus, base, method="act:pca", family="")
    both = suite_metrics(pd.concat([other, sweep(base, plus, base), twin]), FAST)
    cols = ["delta", "delta_lo", "delta_hi", "mean_lo", "mean_hi"]
    mine = both[(both["eval"] == "s") & (both["method"] == "weight")].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine[cols], alone[cols])
    pca = both[both["method"] == "act:pca"].reset_index(drop=True)
    pd.testing.assert_frame_equal(pca[cols], alone[cols])


def test_seeds_are_aggregated_with_sign_agreement():
    frames = [sweep(BASE, [x + d for x in BASE], BASE, seed=k) for k, d in enumerate((1, 1, -1))]
    r = at(suite_metrics(pd.concat(frames), FAST), 1.0)
    assert r["seeds"] == 3
    assert r["delta"] == pytest.approx(1 / 3)
    assert r["delta_seed_sd"] == pytest.approx(np.std([1, 1, -1], ddof=1))
    assert r["sign_agree"] == pytest.approx(2 / 3)


def test_mismatched_rows_are_refused_with_the_rows_named():
    a = sweep(BASE, BASE, BASE)
    b = sweep(BASE, BASE, BASE, method="prompt:simple", family="")
    b.loc[b["row_id"] == "r3", "row_id"] = "other-row"
    with pytest.raises(UserError, match=r"prompt:simple seed 0 .*other-row"):
        check_same_rows(pd.concat([a, b]))
    with pytest.raises(UserError, match="other rows"):
        suite_metrics(pd.concat([a, b]), FAST)


def mfv(strength, lr_wrong, lr_acc, *, pmass=1.0, foundations=("Care", "Authority")):
    ids = [f"{f}-{i}" for f in foundations for i in range(3)]
    groups = [f for f in foundations for _ in range(3)]
    frames = []
    for frame, lr, label in (("wrong", lr_wrong, 1), ("acceptable", lr_acc, -1)):
        n = len(ids)
        df = rows([lr * label] * n, strength=strength, suite="tinymfv", pmass=pmass,
                  ids=[f"{i}:{frame}" for i in ids], logratio=[lr] * n)  # fmt: skip
        df["group"] = pd.array(groups, dtype="string")
        frames.append(df)
    return pd.concat(frames)


def test_tinymfv_wrongness_change_per_foundation_in_closed_form():
    # strength 0: p_true 0.5 in both frames -> w 0.5, logit 0.
    # +1: p_true(wrong) 0.75, p_true(acceptable) 0.25 -> w 0.75, logit log 3.
    df = pd.concat([mfv(0, 0.0, 0.0), mfv(1, math.log(3), -math.log(3)), mfv(-1, 0.0, 0.0)])
    t = foundation_table(df, target="Authority", sign=1, min_pmass=0.5, settings=FAST)
    r = t[(t["strength"] == 1) & (t["foundation"] == "Authority")].iloc[0]
    assert r["delta"] == pytest.approx(math.log(3)) and r["target"] and r["as_expected"]
    care = t[(t["strength"] == 1) & (t["foundation"] == "Care")].iloc[0]
    assert not care["target"] and care["as_expected"] is None
    assert (t["dropped"] == 0).all()


def test_tinymfv_low_mass_vignettes_are_dropped_and_counted():
    df = pd.concat([mfv(0, 0.0, 0.0), mfv(1, 1.0, -1.0, pmass=0.1)])
    t = foundation_table(df, target=None, sign=-1, min_pmass=0.5, settings=FAST)
    r = t[t["strength"] == 1].iloc[0]
    assert r["dropped"] == 3 and r["cells"] == 3 and math.isnan(r["delta"])


def test_a_table_keeps_its_config_and_old_tables_read_with_an_empty_group(tmp_path):
    from weightsteer.evals.results import read_results, results_config, write_results

    df = sweep(BASE, BASE, BASE)
    write_results([df], tmp_path / "r.parquet", {"eval": {"tinymfv": {"target": "Care"}}})
    assert results_config(tmp_path / "r.parquet") == {"eval": {"tinymfv": {"target": "Care"}}}
    pd.testing.assert_frame_equal(read_results([tmp_path / "r.parquet"]), df.reset_index(drop=True))
    df.drop(columns=["group", "kl", "audit_kl", "status"]).to_parquet(tmp_path / "old.parquet")
    assert results_config(tmp_path / "old.parquet") is None
    old = read_results([tmp_path / "old.parquet"])
    assert (old["group"] == "").all() and (old["status"] == "").all() and old["kl"].isna().all()


def test_free_text_rows_have_no_choice_mass_and_their_si_is_not_discounted():
    base, plus, minus = [1.0, -1.0, 2.0, -2.0], [1.0, 1.0, 2.0, 1.0], [-1.0, -1.0, -2.0, -2.0]
    text = suite_metrics(sweep(base, plus, minus, pmass=float("nan")), FAST)
    full = suite_metrics(sweep(base, plus, minus, pmass=1.0), FAST)
    at = text["strength"] == 1.0
    assert text.loc[at, "si_k1"].item() == full.loc[at, "si_k1"].item() == 100.0
