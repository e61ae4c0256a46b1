"""Per-side effects on constructed tables: a method that lowers the score at both signs
has a positive two-sided swing but a wrong-way + side; headroom is the unsteered share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from weightsteer.evals.bootstrap import MetricsConfig
from weightsteer.evals.metrics import comparison_frame
from weightsteer.evals.sides import headroom, side_effects

ROWS = 40


def table(shifts: dict[str, tuple[float, float]], base_pos: float = 0.6) -> pd.DataFrame:
    """A compare table at 1 nat: the unsteered scores (``base_pos`` of rows > 0) and, per
    method, its score at +1 and -1 nat = base + shift + noise."""
    rng = np.random.default_rng(0)
    base = np.where(np.arange(ROWS) < base_pos * ROWS, 1.0, -1.0) + 0.1 * rng.standard_normal(ROWS)
    rows = [{"eval": "s", "method": "none", "family": "", "seed": 0, "strength": 0.0,
             "row_id": f"r{i}", "score": base[i], "calibrated_kl": np.nan}
            for i in range(ROWS)]  # fmt: skip
    for method, (up, down) in shifts.items():
        for sign, shift in ((1, up), (-1, down)):
            noise = 0.2 * rng.standard_normal(ROWS)
            rows += [{"eval": "s", "method": method, "family": "", "seed": 0,
                      "strength": float(sign), "row_id": f"r{i}",
                      "score": base[i] + shift + noise[i], "calibrated_kl": 1.0}
                     for i in range(ROWS)]  # fmt: skip
    return comparison_frame(pd.DataFrame(rows))


def test_a_method_lowering_the_score_at_both_signs_gains_only_on_its_minus_side():
    df = table({"good": (1.0, -1.0), "bad": (-1.0, -3.0)})
    units = [("good", "", 1.0), ("bad", "", 1.0)]
    gains, pairs = side_effects(df, "s", units, MetricsConfig(bootstrap=400))
    g = gains.set_index(["method", "side"])
    # the swing of "bad" is ((-1) - (-3)) / 2 = +1, as large as "good"'s; its sides are not
    assert g.loc[("bad", 1), "gain"] == pytest.approx(-1.0, abs=0.15)
    assert g.loc[("bad", 1), "gain_hi"] < 0  # the wrong way, and sure of it
    assert g.loc[("bad", -1), "gain"] == pytest.approx(3.0, abs=0.15)
    assert g.loc[("good", 1), "gain_lo"] > 0 and g.loc[("good", -1), "gain_lo"] > 0
    plus = pairs[(pairs["side"] == 1) & (pairs["a"] == units[0])].iloc[0]
    assert plus["diff"] == pytest.approx(2.0, abs=0.2) and plus["diff_lo"] > 0 and plus["p"] < 0.01
    assert set(gains.columns) >= {"row_sd", "p", "seeds"} and (gains["row_sd"] > 0).all()


def test_headroom_is_the_unsteered_share_of_each_answer():
    df = table({"good": (1.0, -1.0)}, base_pos=0.95)
    room = headroom(df, "s")
    assert room[1] == pytest.approx(0.95) and room[-1] == pytest.approx(0.05)
