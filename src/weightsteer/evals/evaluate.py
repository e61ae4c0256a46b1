"""Score an intervention on suites: the long results table's rows at each strength.

Weight, prompt and activation methods all go through this one loop (``methods``'
contract): the strength is switched in place inside one ``attach``, so a sweep costs
only the forwards.
"""

from __future__ import annotations

from collections.abc import Sequence

from weightsteer.evals import score_suite
from weightsteer.evals.results import result_rows


def evaluate_intervention(
    model,
    tok,
    intervention,
    suites: Sequence,
    strengths: Sequence[float],
    *,
    calibrated_kl: float = float("nan"),
    batch_size: int = 64,
    bar=None,
    task=None,
) -> list:
    """Long-table frames of every suite at every strength of ``intervention``
    (``methods``), the strength switched in place; ``methods.NONE`` at ``[0]`` scores the
    unsteered model."""
    frames = []
    with intervention.attach(model) as set_strength:
        for strength in strengths:
            set_strength(strength)
            system = intervention.system_prompt(strength)
            for suite in suites:
                s = score_suite(model, tok, suite, batch_size=batch_size, system=system)
                frames.append(
                    result_rows(
                        **intervention.describe(),
                        strength=strength,
                        suite=suite,
                        logratio=s.logratio,
                        pmass=s.pmass,
                        calibrated_kl=calibrated_kl,
                        texts=s.texts,
                    )
                )
                if bar is not None:
                    bar.advance(task, len(suite.rows))
    return frames
