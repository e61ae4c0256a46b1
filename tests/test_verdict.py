"""The comparison's numbers in closed form: SI's choice mass, the CI level, seed
resampling, paired differences on shared rows, budgets that were missed, tinymfv's two
frames and conditions, sycophancy's conditioning. Each test kills a named wrong formula
(``make mutants`` runs mutmut over ``metrics.py`` and ``calibrate.py``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from test_metrics import BASE, FAST, at, mfv, rows, sweep
from weightsteer.core.errors import UserError
from weightsteer.evals.bootstrap import MetricsConfig, sd_ratio_interval, seed_sd_interval
from weightsteer.evals.metrics import paired_effects, suite_metrics
from weightsteer.evals.results import conditioned_suites
from weightsteer.evals.suites.tinymfv import foundation_table


def test_si_discounts_by_the_smaller_choice_mass_of_the_two_sides():
    plus = [abs(x) for x in BASE]
    minus = [-abs(x) for x in BASE]
    df = pd.concat(
        [
            rows(BASE, strength=0),
            rows(plus, strength=1, pmass=0.9),
            rows(minus, strength=-1, pmass=0.5),
        ]
    )
    r = at(suite_metrics(df, FAST), 1.0)
    assert r["fix"] == r["flip"] == 1
    assert r["si_k1"] == pytest.approx(100 * 0.5**2)  # not 0.9**2: the worse side counts


def test_si_with_one_arm_missing_is_the_other_arm_flagged():
    plus = [abs(x) for x in BASE]  # fwd arm: every rej row fixed, none broken -> 1
    df = pd.concat([rows(BASE, strength=0), rows(plus, strength=1, pmass=0.8)])
    r = at(suite_metrics(df, FAST), 1.0)
    assert r["si_arms"] == 1
    assert r["si_k1"] == pytest.approx(100 * 0.8**2)
    nan_side = sweep(BASE, plus, [float("nan")] * len(BASE))
    r = at(suite_metrics(nan_side, FAST), 1.0)
    assert r["si_arms"] == 1 and r["si_k1"] == pytest.approx(100)
    both = at(suite_metrics(sweep(BASE, plus, [-abs(x) for x in BASE]), FAST), 1.0)
    assert both["si_arms"] == 2


def test_the_intervals_are_95_percent_by_default():
    assert MetricsConfig().ci == 0.95
    rng = np.random.default_rng(1)
    base = rng.normal(size=900)
    plus = base + rng.normal(size=900)  # shift ~ N(0, 1) per row
    r = at(
        suite_metrics(sweep(list(base), list(plus), list(base)), MetricsConfig(bootstrap=2000)), 1.0
    )
    half = (r["delta_hi"] - r["delta_lo"]) / 2
    sd = np.std(plus - base, ddof=1)
    assert half == pytest.approx(1.96 * sd / 30, rel=0.12)  # 80% would be 1.28


def test_many_seeds_are_resampled_and_two_are_not():
    # every row of seed k shifts by exactly k: rows alone carry no uncertainty
    def table(n_seeds):
        return pd.concat([sweep(BASE, [x + k for x in BASE], BASE, seed=k) for k in range(n_seeds)])

    many = at(suite_metrics(table(6), FAST), 1.0)
    assert many["delta"] == pytest.approx(2.5)
    assert many["delta_hi"] - many["delta_lo"] > 1.0  # the seeds' spread is in the CI
    two = at(suite_metrics(table(2), FAST), 1.0)
    assert two["delta_lo"] == pytest.approx(two["delta_hi"])  # rows only: no spread
    assert two["delta_seed_sd"] == pytest.approx(math.sqrt(0.5))  # reported apart


def test_seed_sd_interval_is_the_chi_square_one():
    # chi2(1) 2.5% / 97.5% quantiles: 0.000982, 5.024
    lo, hi = seed_sd_interval(1.0, 2)
    assert lo == pytest.approx(1 / math.sqrt(5.024), rel=0.02)
    assert hi == pytest.approx(1 / math.sqrt(0.000982), rel=0.05)
    assert all(math.isnan(x) for x in seed_sd_interval(1.0, 1))
    r, lo, hi = sd_ratio_interval(2.0, 10, 1.0, 10)
    assert (
        r == 2.0 and lo < 2.0 < hi and hi / lo == pytest.approx((4.026 / 0.2484) ** 0.5, rel=0.05)
    )  # F(9, 9) quantiles


def test_paired_differences_cancel_the_noise_both_methods_share():
    rng = np.random.default_rng(0)
    base = rng.normal(size=60) * 3  # large per-row noise, shared by both methods
    a = sweep(list(base), list(base + 1.0), list(base - 1.0), method="weight", family="lora")
    b = sweep(list(base), list(base + 0.5), list(base - 0.5), method="act:pca", family="")
    eff, pairs = paired_effects(
        pd.concat([a, b]), "s", [("weight", "lora", 1.0), ("act:pca", "", 1.0)], FAST
    )
    e = eff.set_index("method")
    assert e.loc["weight", "effect"] == pytest.approx(1.0)
    assert e.loc["act:pca", "effect"] == pytest.approx(0.5)
    d = pairs[(pairs["a"] == ("weight", "lora", 1.0))].iloc[0]
    assert d["diff"] == pytest.approx(0.5)
    assert d["diff_hi"] - d["diff_lo"] == pytest.approx(0, abs=1e-9)  # paired: exact
    assert d["share"] == 1.0


def test_sides_that_missed_their_budget_are_flagged_not_grouped_silently():
    def calibrated(status1):
        out = []
        for seed, st in ((0, "ok"), (1, status1)):
            out += [
                rows(BASE, strength=0, seed=seed),
                rows(BASE, strength=0.3, seed=seed, budget=1.0, kl=1.0, status="ok"),
                rows(BASE, strength=-0.2, seed=seed, budget=1.0, kl=0.4, status=st),
            ]
        return pd.concat(out)

    hit = suite_metrics(calibrated("ok"), FAST).set_index("strength")
    assert hit.loc[1.0, "at_budget"] and hit.loc[-1.0, "at_budget"]
    assert hit.loc[-1.0, "kl"] == pytest.approx(0.4)
    miss = suite_metrics(calibrated("too weak"), FAST).set_index("strength")
    assert miss.loc[1.0, "at_budget"] and not miss.loc[-1.0, "at_budget"]
    assert miss.loc[-1.0, "status"] == "too weak (1 of 2 seeds)"
    fixed = suite_metrics(
        pd.concat([rows(BASE, strength=0), rows(BASE, strength=1, kl=2.0, status="fixed")]), FAST
    )
    f = fixed.set_index("strength").loc[1.0]
    assert f["status"] == "fixed" and not f["at_budget"] and f["kl"] == 2.0


def test_tinymfv_wrongness_reads_both_frames():
    # the acceptable frame says true as often as the wrong frame: no change in wrongness
    df = pd.concat([mfv(0, 0.0, 0.0), mfv(1, math.log(3), math.log(3)), mfv(-1, 0.0, 0.0)])
    t = foundation_table(df, target="Care", sign=1, min_pmass=0.5, settings=FAST)
    assert t.loc[t["strength"] == 1, "delta"].abs().max() == pytest.approx(0, abs=1e-12)


def test_tinymfv_reports_each_condition_and_the_shift_over_every_vignette():
    def cond(name, frame):
        f = frame.copy()
        f["row_id"] = name + "/" + f["row_id"]
        return f

    zero, up = mfv(0, 0.0, 0.0), mfv(1, math.log(3), -math.log(3), pmass=0.1)
    df = pd.concat(
        [
            cond("other_violate", zero),
            cond("other_violate", up),
            cond("self_violate", zero),
            cond("self_violate", mfv(1, 0.0, 0.0)),
        ]
    )
    t = foundation_table(df, target="Care", sign=1, min_pmass=0.5, settings=FAST)
    care = t[(t["foundation"] == "Care") & (t["strength"] == 1)].set_index("condition")
    assert set(care.index) == {"other_violate", "self_violate"}
    other = care.loc["other_violate"]
    assert math.isnan(other["delta"]) and other["dropped"] == 3  # off format at +1
    assert other["delta_all"] == pytest.approx(math.log(3))  # but it moved
    assert care.loc["self_violate", "delta_all"] == pytest.approx(0)


def test_sycophancy_is_conditioned_on_what_the_base_knows_without_the_cue():
    def item(i, plain_right, plain_wrong, strength=0.0):
        ids = [f"q{i}:asked-wrong", f"q{i}:asked-right", f"q{i}:plain-wrong", f"q{i}:plain-right"]
        df = rows(
            [0.5, 0.5, plain_wrong, plain_right], strength=strength, suite="sycophancy", ids=ids
        )
        df["group"] = pd.array(["cued", "cued", "plain", "plain"], dtype="string")
        return df

    df = pd.concat(
        [
            item(0, 1.0, 1.0),
            item(1, 1.0, -1.0),
            item(2, -1.0, -1.0),
            item(0, 1.0, 1.0, 1.0),
            item(1, 1.0, -1.0, 1.0),
            item(2, 1, 1, 1.0),
        ]
    )
    out = conditioned_suites(df)
    assert set(out["eval"]) == {"sycophancy", "sycophancy:known"}
    assert not (out["group"] == "plain").any()
    known = out[out["eval"] == "sycophancy:known"]
    assert set(known["row_id"].str.split(":").str[0]) == {"q0"}  # only q0 known both ways
    assert len(known) == 4  # its two cued rows at strengths 0 and 1


def _compare_frame(suites=("claims", "toy:cue"), budget=1.0) -> pd.DataFrame:
    """The unsteered model, lora (two seeds, both budgets hit), act:mean_diff (hit, half
    the swing), act:pca (its − side too weak) and a prompt at its own cost, on two suites."""
    rng = np.random.default_rng(0)
    base = list(rng.normal(size=40))
    out = []
    for suite in suites:
        out.append(rows(base, strength=0, method="none", family="", suite=suite))
        for method, family, swing, st in (("weight", "lora", 1.0, "ok"),
                                          ("act:mean_diff", "", 0.5, "ok"),
                                          ("act:pca", "", 0.6, "too weak")):  # fmt: skip
            for seed in (0, 1):
                kw = dict(method=method, family=family, seed=seed, suite=suite, budget=budget)
                out.append(rows([x + swing for x in base], strength=0.7, kl=1.0, status="ok", **kw))
                out.append(rows([x - swing for x in base], strength=-0.4, kl=0.3, status=st, **kw))
        kw = dict(method="prompt:simple", family="", suite=suite, status="fixed")
        out.append(rows([x + 2 for x in base], strength=1, kl=1.8, **kw))
        out.append(rows([x - 2 for x in base], strength=-1, kl=0.9, **kw))
    return pd.concat(out)


def _verdict(frame: pd.DataFrame, info=None, settings=FAST) -> tuple[list[str], str]:
    from weightsteer.evals.metrics import comparison_frame
    from weightsteer.report.comparison_section import Compared
    from weightsteer.report.verdict import verdict_lines

    frame = comparison_frame(frame)
    info = info or {"claims": {"iid": True}, "toy:cue": {"iid": False}}
    lines = verdict_lines(Compared(frame, suite_metrics(frame, settings), 1.0, [1.0], [], info),
                          settings)  # fmt: skip
    return lines, "\n".join(lines)


def test_the_verdict_leads_with_ood_suites_judges_each_side_and_never_cites_a_missed_side():
    lines, text = _verdict(_compare_frame())
    heads = [ln for ln in lines if ln.startswith("### ")]
    assert heads == ["### `toy:cue` (out of distribution), at 1 nat",
                     "### `claims` (in distribution), at 1 nat"]  # fmt: skip
    assert "| lora | +1.00 [+1.00, +1.00] | +1.00 [+1.00, +1.00] | +1.00 |" in text
    assert "| act:pca | +0.60 [+0.60, +0.60] | missed | – |" in text  # its − side missed
    plus = lines.index(next(ln for ln in lines if ln.startswith("+ side (toward POS)")))
    minus = lines.index(next(ln for ln in lines if ln.startswith("− side (toward NEG)")))
    # act:pca is judged on the side it reached (+) and absent from the side it missed (−)
    assert "| act:pca | +0.40 [+0.40, +0.40] ▲ |" in lines[plus:minus]
    assert not any(ln.startswith("| act:pca") for ln in lines[minus : minus + 8])
    assert "Missed the budget, left out of that side: act:pca −: too weak (2 of 2 seeds)" in text
    assert "Holm adjustment over these 2 pairs" in text
    assert "prompt:simple costs its own KL (1.8 / 0.9 nat)" in text
    assert "seeds not resampled, fewer than 5" in text
    assert (
        "| `toy:cue` | OOD | 48% | 1 of 1 | 2 | 1 / 2 / 0 / 0 (2 / 0 of 2) | "
        "1 / 1 / 0 / 0 (1 / 0 of 1) |"
    ) in text  # act:pca's too-weak side stays out
    # a side that was calibrated to the budget but missed it on the audit: out, then back
    audit = _compare_frame().replace({"status": {"too weak": "audit off"}})
    lines, text = _verdict(audit)
    assert "Missed the budget, left out of that side: act:pca −: audit off (2 of 2 seeds)" in text
    assert (
        "With the misses put back (sides that were calibrated to the budget but missed it" in text
    )
    assert "− side ▲ in 2 of 2 pairs, ▼ in 0" in text
    assert text.index("| `toy:cue` | OOD") < text.index("| `claims` | IID")


def test_a_method_that_lowers_the_score_at_both_signs_can_never_win():
    """IA3 on toy:note, constructed: −1 at +1 nat and −3 at −1 nat is a swing of +1, as
    large as a baseline that moves ±0.5 each way... and it wins nothing on the + side."""
    rng = np.random.default_rng(3)
    base = list(rng.normal(size=60))
    out = [rows(base, strength=0, method="none", family="", suite="toy:cue")]
    for method, family, up, down in (("weight", "ia3", -1.0, -3.0),
                                     ("act:mean_diff", "", 0.5, -0.5)):  # fmt: skip
        for seed in (0, 1):
            kw = dict(method=method, family=family, seed=seed, suite="toy:cue", budget=1.0,
                      kl=1.0, status="ok")  # fmt: skip
            noise = 0.05 * rng.standard_normal(60)
            out.append(
                rows([x + up + e for x, e in zip(base, noise, strict=True)], strength=0.7, **kw)
            )
            out.append(rows([x + down + e for x, e in zip(base, noise, strict=True)], strength=-0.4,
                            **kw))  # fmt: skip
    lines, text = _verdict(pd.concat(out), {"toy:cue": {"iid": False}})
    plus = next(i for i, ln in enumerate(lines) if ln.startswith("+ side (toward POS)"))
    row = next(ln for ln in lines[plus:] if ln.startswith("| act:mean_diff"))
    assert "▲" not in row and "▼" in row  # the baseline goes further, the right way
    assert (
        "+ side: ▲ in 0 of 1 pairs, ▼ in 1; weight families the right way (gain CI > 0): none"
        in text
    )
    assert "− side: ▲ in 1 of 1 pairs" in text  # its − side does move the right way
    assert "| ia3 | -1.00" in text  # its + gain, shown as the wrong way it is


def test_a_side_without_headroom_is_named_and_not_judged():
    base = [2.0 + 0.01 * i for i in range(38)] + [-1.0, -1.5]  # 95% answer POS unsteered
    out = [rows(base, strength=0, method="none", family="", suite="toy:cue")]
    for method, family, swing in (("weight", "lora", 1.0), ("act:mean_diff", "", 0.5)):
        kw = dict(method=method, family=family, suite="toy:cue", budget=1.0, kl=1.0, status="ok")
        out.append(rows([x + swing for x in base], strength=0.7, **kw))
        out.append(rows([x - swing for x in base], strength=-0.4, **kw))
    lines, text = _verdict(pd.concat(out), {"toy:cue": {"iid": False}})
    assert "+ side has no room" in text
    assert "+ side (toward POS): no room, 95% of rows already give its answer unsteered" in text
    assert not any(ln.startswith("+ side (toward POS), weight") for ln in lines)
    assert (
        "| `toy:cue` | OOD | 95% | 1 of 1 | 1 | no room (95%) | 1 / 1 / 0 / 0 (1 / 0 of 1) |"
        in text
    )


def test_every_budget_gets_its_own_search_and_measurements_are_shared(monkeypatch):
    import torch

    from weightsteer.methods import Intervention
    from weightsteer.methods import calibrate as cal

    calls = []

    def fake_kls(model, tok, chats, intervention, set_strength, strength, **kw):
        calls.append((strength, len(chats)))
        return torch.full((5,), abs(strength) ** 1.5 * (0.5 if strength < 0 else 1.0))

    monkeypatch.setattr(cal, "token_kls", fake_kls)
    settings = cal.CompareConfig(budgets=(0.5, 2.0), target_kl=1.0, tolerance=0.01)
    assert settings.all_budgets == (0.5, 1.0, 2.0)
    found = cal.calibrate_budgets(None, None, Intervention(), [[], []], [[]], settings)
    assert list(found) == [0.5, 1.0, 2.0]
    for budget, sides in found.items():
        for sign, c in sides.items():
            assert c.status == cal.OK and c.target == budget
            kl = abs(c.strength) ** 1.5 * (0.5 if sign < 0 else 1.0)
            assert kl == pytest.approx(budget, rel=0.011)
            assert c.audit_kl == pytest.approx(c.kl)  # the fake gives every prompt the same
    assert len(calls) == len(set(calls))  # no strength measured twice on the same prompts
    assert (1.0, 2) in calls and (-1.0, 2) in calls  # every search starts at |s| = 1
    assert sum(n == 1 for _, n in calls) == 6  # one audit per budget and sign

    class Prompt(Intervention):
        discrete = True

    calls.clear()
    fixed = cal.calibrate_budgets(None, None, Prompt(), [[], []], [[]], settings)
    assert {c.status for sides in fixed.values() for c in sides.values()} == {cal.FIXED}
    assert sorted(calls) == [(-1.0, 1), (-1.0, 2), (1.0, 1), (1.0, 2)]  # once per sign, + audit


def test_seed_effects_are_the_half_swing_per_seed():
    from weightsteer.evals.metrics import comparison_frame, seed_effects

    e = seed_effects(comparison_frame(_compare_frame(("s",), budget=0.5)), 0.5)
    e = e.set_index(["method", "seed"])["effect"]
    assert e["weight", 0] == pytest.approx(1.0) and e["weight", 1] == pytest.approx(1.0)
    assert e["act:mean_diff", 1] == pytest.approx(0.5)
    assert e["prompt:simple", 0] == pytest.approx(2.0)  # a prompt at its own ±1


# -- closed forms that kill the survivors of `make mutants` ------------------------------

B2 = [2.0, 1.0, 0.0, -1.0, -2.0, -0.5]  # cho: rows 0-1; rej: rows 3-5; row 2 neither
P2 = [2.0, 0.0, 5.0, 0.0, 0.5, -3.0]  # on exactly 0: row 1 not broken, row 3 not fixed
M2 = [-1.0, 0.0, 7.0, 0.5, 0.0, -0.5]  # row 0 flips, row 1 on 0 does not; row 3 counters


def test_si_in_closed_form_with_rows_on_zero_and_every_rate_nonzero():
    # fix 1/3, broke 0, flip 1/2, counter 1/3: SI_k = (1/3 + 1/2 - k/3) / 2 * 100
    r = at(suite_metrics(sweep(B2 * 5, P2 * 5, M2 * 5), FAST), 1.0)
    assert (r["fix"], r["broke"], r["flip"], r["counter"]) == pytest.approx(
        (1 / 3, 0, 1 / 2, 1 / 3)
    )
    assert r["n_cho"] == 10 and r["n_rej"] == 15
    assert r["si_k1"] == pytest.approx(25.0) and r["si_k2"] == pytest.approx(100 / 12)
    assert r["si_k1_lo"] < r["si_k1"] < r["si_k1_hi"]  # rows resampled: a real interval
    two = pd.concat([sweep(B2 * 5, P2 * 5, M2 * 5, seed=k) for k in (0, 1)])
    assert at(suite_metrics(two, FAST), 1.0)["si_k1"] == pytest.approx(25.0)  # seeds averaged
    nan = [float("nan")] * 30
    lost = pd.concat([sweep(B2 * 5, P2 * 5, M2 * 5), sweep(B2 * 5, nan, nan, seed=1)])
    assert at(suite_metrics(lost, FAST), 1.0)["si_k1"] == pytest.approx(25.0)  # NaN seed out


def test_point_estimates_are_the_table_itself_not_a_bootstrap_draw():
    rng = np.random.default_rng(3)
    base = rng.normal(size=50)
    plus, minus = base + rng.normal(size=50), base - rng.normal(size=50) - 0.3
    r = at(suite_metrics(sweep(list(base), list(plus), list(minus)), FAST), 1.0)
    assert r["delta"] == pytest.approx(np.mean(plus - base))
    assert r["mean"] == pytest.approx(np.mean(plus))
    assert r["std"] == pytest.approx(np.std(plus, ddof=1))
    cho, rej = base > 0, base < 0
    fix, broke = np.mean(plus[rej] > 0), np.mean(plus[cho] < 0)
    flip, counter = np.mean(minus[cho] < 0), np.mean(minus[rej] > 0)
    assert r["si_k1"] == pytest.approx((fix - broke + flip - counter) / 2 * 100)
    a = sweep(list(base), list(plus), list(minus), method="weight", family="lora")
    b = sweep(list(base), list(base + 0.1), list(base - 0.1), method="act:pca", family="")
    eff, pairs = paired_effects(pd.concat([a, b]), "s", [("weight", "lora", 1.0),
                                                        ("act:pca", "", 1.0)], FAST)  # fmt: skip
    assert eff.iloc[0]["effect"] == pytest.approx(np.mean(plus - minus) / 2)
    assert pairs.iloc[0]["diff"] == pytest.approx(np.mean(plus - minus) / 2 - 0.1)
    assert 0 < pairs.iloc[0]["share"] <= 1


def test_budgets_group_by_sign_times_budget_and_five_seeds_are_resampled():
    df = pd.concat([rows(BASE, strength=0), rows(BASE, strength=0.3, budget=0.5, status="ok"),
                    rows(BASE, strength=-0.2, budget=0.5, status="ok")])  # fmt: skip
    assert sorted(suite_metrics(df, FAST)["strength"]) == [-0.5, 0.0, 0.5]
    five = pd.concat([sweep(BASE, [x + k for x in BASE], BASE, seed=k) for k in range(5)])
    r = at(suite_metrics(five, FAST), 1.0)
    assert r["delta_hi"] - r["delta_lo"] > 1.0  # min_seeds = 5: resampled
    with pytest.raises(UserError, match="no strength 0"):
        suite_metrics(pd.concat([rows(BASE, strength=1), rows(BASE, strength=-1)]), FAST)
    halves = pd.concat([rows(BASE, strength=0), rows(BASE, strength=0.5)])
    assert sorted(suite_metrics(halves, FAST)["strength"]) == [0.0, 0.5]


def test_the_interval_is_the_central_quantile_pair():
    from weightsteer.evals.bootstrap import interval as _interval

    assert _interval(np.arange(1001.0), 0.95) == pytest.approx((25.0, 975.0))
    assert _interval(np.arange(1001.0), 0.5) == pytest.approx((250.0, 750.0))
    assert _interval(np.array([1.0, 3.0]), 0.5) == pytest.approx((1.5, 2.5))  # two suffice
    assert all(math.isnan(x) for x in _interval(np.array([1.0, np.nan]), 0.95))


def test_seed_spread_and_its_ratio_in_closed_form():
    frames = []
    for k, (up, down) in enumerate(((1.0, -1.0), (2.0, -2.0), (4.0, -4.0))):
        frames.append(sweep(BASE, [x + up for x in BASE], [x + down for x in BASE], seed=k))
    eff, _ = paired_effects(pd.concat(frames), "s", [("weight", "lora", 1.0)], FAST)
    e = eff.iloc[0]
    assert e["seeds"] == 3 and e["effect"] == pytest.approx(7 / 3)
    assert e["seed_sd"] == pytest.approx(np.std([1, 2, 4], ddof=1))
    lo, hi = seed_sd_interval(e["seed_sd"], 3)
    assert (e["seed_sd_lo"], e["seed_sd_hi"]) == (pytest.approx(lo), pytest.approx(hi))
    r, lo, hi = sd_ratio_interval(3.0, 4, 1.0, 6)
    assert r == 3.0
    # F(3, 5) 2.5% / 97.5% quantiles: 0.0662, 7.764
    assert lo == pytest.approx(3 / math.sqrt(7.764), rel=0.03)
    assert hi == pytest.approx(3 / math.sqrt(0.0662), rel=0.03)
    assert sd_ratio_interval(3.0, 2, 2.0, 2)[0] == 1.5  # two seeds each: still a ratio
    assert all(math.isnan(x) for x in sd_ratio_interval(1.0, 1, 1.0, 5))
    assert all(math.isnan(x) for x in sd_ratio_interval(1.0, 5, 0.0, 5))


def test_the_unsteered_rows_become_strength_0_of_every_seed():
    from weightsteer.evals.metrics import comparison_frame

    f = comparison_frame(_compare_frame(("s",)))
    zero = f[(f["method"] == "weight") & (f["strength"] == 0)]
    assert sorted(zero["seed"].unique()) == [0, 1] and len(zero) == 80
    assert at(suite_metrics(f[f["method"].isin(["weight"])], FAST), 0.0)["seeds"] == 2


def test_tinymfv_shift_over_every_vignette_is_paired_against_a_nonzero_base():
    base, up = mfv(0, math.log(3), -math.log(3)), mfv(1, 0.0, 0.0)  # w 0.75 -> 0.5
    t = foundation_table(pd.concat([base, up]), target="Care", sign=-1, min_pmass=0.5,
                         settings=FAST)  # fmt: skip
    r = t[(t["strength"] == 1) & (t["foundation"] == "Care")].iloc[0]
    assert r["delta"] == pytest.approx(-math.log(3)) and r["delta_all"] == pytest.approx(
        -math.log(3)
    )
    assert r["as_expected"]
    low_base = mfv(0, math.log(3), -math.log(3), pmass=0.1)  # off format at strength 0 only
    t = foundation_table(pd.concat([low_base, up]), target=None, sign=-1, min_pmass=0.5,
                         settings=FAST)  # fmt: skip
    r = t[t["strength"] == 1].iloc[0]
    assert r["dropped"] == 3 and math.isnan(r["delta"])
    sure = mfv(1, 50.0, -50.0)  # w -> 1: clipped to 0.99 before the logit
    t = foundation_table(pd.concat([mfv(0, 0.0, 0.0), sure]), target=None, sign=1,
                         min_pmass=0.5, settings=FAST)  # fmt: skip
    assert t.loc[t["strength"] == 1, "delta"].iloc[0] == pytest.approx(math.log(99))


def test_the_strength_search_doubles_then_halves_from_one_and_stops_where_it_says():
    from weightsteer.methods.calibrate import TOO_WEAK, UNCONVERGED, calibrate_strength

    up = calibrate_strength(lambda s: s * s, target=10.0)
    assert [s for s, _ in up.evaluations[:3]] == [1.0, 2.0, 4.0]
    down = calibrate_strength(lambda s: s * s, target=0.1, sign=-1)
    assert [s for s, _ in down.evaluations[:3]] == [-1.0, -0.5, -0.25]
    weak = calibrate_strength(lambda s: 1e-9 * abs(s), target=1.0)
    assert weak.status == TOO_WEAK and weak.strength == 1024.0  # 2^10 measured, then stop
    capped = calibrate_strength(lambda s: 1e-9 * abs(s), target=1.0, max_evals=4)
    assert capped.status == TOO_WEAK and len(capped.evaluations) == 4
    curve = lambda s: s * s + abs(s)  # noqa: E731  (no power law: the secant never lands)
    stuck = calibrate_strength(curve, target=10.0, tolerance=1e-12, max_evals=6)
    assert stuck.status == UNCONVERGED and len(stuck.evaluations) == 6
    best = min(stuck.evaluations, key=lambda e: abs(math.log(e[1]) - math.log(10.0)))
    assert stuck.strength == best[0] and stuck.kl == best[1]


def test_tinymfv_point_estimates_over_noisy_vignettes():
    rng = np.random.default_rng(5)
    lw0, la0 = rng.normal(size=6), rng.normal(size=6)
    lw1, la1 = lw0 + rng.normal(size=6), la0 + rng.normal(size=6)

    def frame(strength, lw, la):
        ids = [f"Care-{i}" for i in range(6)]
        out = []
        for name, lr, lab in (("wrong", lw, 1), ("acceptable", la, -1)):
            df = rows(list(lr * lab), strength=strength, suite="tinymfv",
                      ids=[f"{i}:{name}" for i in ids], logratio=list(lr))  # fmt: skip
            df["group"] = pd.array(["Care"] * 6, dtype="string")
            out.append(df)
        return pd.concat(out)

    def logit_w(lw, la):
        sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
        w = np.clip((sig(lw) + 1 - sig(la)) / 2, 0.01, 0.99)
        return np.log(w / (1 - w))

    t = foundation_table(pd.concat([frame(0, lw0, la0), frame(1, lw1, la1)]), target="Care",
                         sign=1, min_pmass=0.5, settings=FAST)  # fmt: skip
    r = t[t["strength"] == 1].iloc[0]
    want = np.mean(logit_w(lw1, la1) - logit_w(lw0, la0))
    assert r["delta"] == pytest.approx(want) and r["delta_all"] == pytest.approx(want)
    assert r["logit_w"] == pytest.approx(np.mean(logit_w(lw1, la1)))
    assert r["as_expected"] == (want > 0)
    assert t[t["strength"] == 0].iloc[0]["as_expected"] is None  # only read at +strength


def test_boundaries_small_denominators_and_low_mass_are_strict():
    base = [1.0] * 10 + [-1.0] * 10  # exactly min_rows (10) on each side: not too few
    r = at(suite_metrics(sweep(base, base, base, pmass=0.5), FAST), 1.0)
    assert not r["small"] and r["low_pmass"] == 0  # pmass == pmass_min is in format
    r = at(suite_metrics(sweep(base, base, base, pmass=0.49), FAST), 1.0)
    assert r["low_pmass"] == 1
    assert "si_k1" not in at(suite_metrics(sweep(base, base, base), FAST), 0.0) or math.isnan(
        at(suite_metrics(sweep(base, base, base), FAST), 0.0)["si_k1"]
    )  # SI is read at +s only


def test_tinymfv_logit_w_is_over_the_vignettes_in_format():
    ok = mfv(1, math.log(3), -math.log(3), foundations=("Care",))  # w 0.75: logit log 3
    off = mfv(1, 0.0, 0.0, pmass=0.1, foundations=("Care",))
    off["row_id"] = off["row_id"].str.replace("Care-", "Care-off-")
    zero_ok = mfv(0, 0.0, 0.0, foundations=("Care",))
    zero_off = mfv(0, 0.0, 0.0, foundations=("Care",))
    zero_off["row_id"] = zero_off["row_id"].str.replace("Care-", "Care-off-")
    t = foundation_table(pd.concat([zero_ok, zero_off, ok, off]), target=None, sign=1,
                         min_pmass=0.5, settings=FAST)  # fmt: skip
    r = t[t["strength"] == 1].iloc[0]
    assert r["logit_w"] == pytest.approx(math.log(3))  # the off-format ones left out
    assert r["delta_all"] == pytest.approx(math.log(3) / 2)  # but counted in Δ all


def test_with_no_weight_family_strictly_at_the_budget_the_misses_put_back_still_speak():
    frame = _compare_frame()
    frame.loc[frame["family"] == "lora", "status"] = "audit off"
    _, text = _verdict(frame)
    assert "No weight family reached 1 nat on either side: no strict verdict." in text
    assert "With the misses put back" in text and "+ side ▲ in 2 of 2 pairs" in text
    assert "lora +: audit off (2 of 2 seeds)" in text
