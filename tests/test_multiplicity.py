"""Adjusted p-values against hand computation, and the bootstrap p-value's closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from weightsteer.evals.multiplicity import adjust, bh, bootstrap_p, holm

P = [0.01, 0.04, 0.03, 0.005, 0.2]


def test_holm_matches_the_hand_computation_on_five_p_values():
    # sorted: 0.005 x5 = 0.025, 0.01 x4 = 0.04, 0.03 x3 = 0.09, 0.04 x2 = 0.08 -> 0.09
    # (non-decreasing), 0.2 x1 = 0.2; back in the given order:
    assert holm(P) == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.2])


def test_bh_matches_the_hand_computation_on_five_p_values():
    # sorted p(i) * 5 / i: 0.025, 0.025, 0.05, 0.05, 0.2 (already non-decreasing)
    assert bh(P) == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.2])
    # the step-up minimum: a larger p can lower a smaller one's q
    assert bh([0.02, 0.03, 0.031]) == pytest.approx([0.031, 0.031, 0.031])


def test_adjustments_cap_at_one_keep_nan_and_refuse_unknown_names():
    got = holm([0.5, float("nan"), 0.6])
    assert got[0] == pytest.approx(1.0) and math.isnan(got[1]) and got[2] == pytest.approx(1.0)
    assert bh([0.9, float("nan")])[0] == pytest.approx(0.9)
    assert adjust(P, "none") == P
    with pytest.raises(ValueError, match="holm, bh, none"):
        adjust(P, "bonferoni")


def test_the_bootstrap_p_value_is_the_normal_tail_of_estimate_over_its_standard_error():
    from statistics import NormalDist

    draws = np.random.default_rng(0).normal(0.0, 0.5, size=20_000)  # se 0.5
    for point in (0.0, 0.5, 1.0, 1.96 * 0.5):
        want = 2 * (1 - NormalDist().cdf(point / 0.5))
        assert bootstrap_p(point, draws) == pytest.approx(want, abs=0.01)
    assert bootstrap_p(-1.0, draws) == bootstrap_p(1.0, draws)  # two-sided
    # far beyond 1 / draws: a Holm adjustment over many pairs can still pass
    assert bootstrap_p(3.0, draws[:1000]) < 1e-6
    assert bootstrap_p(1.0, np.ones(10)) == 0.0 and bootstrap_p(0.0, np.ones(10)) == 1.0
    assert math.isnan(bootstrap_p(1.0, np.array([np.nan, 1.0])))
