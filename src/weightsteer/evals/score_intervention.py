"""Score an intervention on suites: the long results table's rows at each strength.

Weight, prompt and activation methods all go through this one loop (``methods``'
contract): the strength is switched in place inside one ``attach``, so a sweep costs
only the forwards. Strength 0 is the unsteered model bit for bit for every method (the
same contract), so its scores can be made once and shared by every intervention of a
stage (``unsteered``).
"""

from __future__ import annotations

from collections.abc import Sequence

from weightsteer.core.served import active_served, steering_served
from weightsteer.evals import score_suite
from weightsteer.evals.results import result_rows


def calibration_columns(cal: dict | None) -> dict:
    """The results columns of one calibrated strength: the budget it was calibrated to
    (NaN for a fixed strength such as a prompt, which has none), the KL it achieved on the
    calibration and audit prompts, and the search's status."""
    if cal is None:
        return {}
    fixed = cal["status"] == "fixed"
    return {
        "calibrated_kl": float("nan") if fixed else cal["target"],
        "kl": cal["kl"],
        "audit_kl": cal["audit_kl"],
        "status": cal["status"],
    }


def evaluate_intervention(
    model,
    tok,
    intervention,
    suites: Sequence,
    strengths: Sequence[float],
    *,
    calibrations: Sequence[dict] | None = None,
    batch_size: int = 64,
    bar=None,
    task=None,
    unsteered: dict | None = None,
) -> list:
    """Long-table frames of every suite at every strength of ``intervention``
        (``methods``), the strength switched in place; ``methods.NONE`` at ``[0]`` scores the
        unsteered model. ``calibrations``: per strength, the ``Calibration.to_json()`` that
        found it (its budget, achieved KL and status go into every row). ``unsteered``: a dict
    the caller keeps across calls (one model, one batch size): the suites' scores at
    strength 0, filled the first time and read after."""
    frames = []
    cals = list(calibrations) if calibrations is not None else [None] * len(strengths)
    with (
        intervention.attach(model) as in_process,
        steering_served(model, intervention, in_process) as set_strength,
    ):
        _prefetch(model, tok, intervention, suites, strengths, unsteered, batch_size)
        for strength, cal in zip(strengths, cals, strict=True):
            set_strength(strength)
            system = intervention.system_prompt(strength)
            for suite in suites:
                key = (suite.name, batch_size)
                if strength == 0 and unsteered is not None and key in unsteered:
                    s = unsteered[key]
                else:
                    s = score_suite(model, tok, suite, batch_size=batch_size, system=system)
                    if strength == 0 and unsteered is not None:
                        unsteered[key] = s
                frames.append(
                    result_rows(
                        **intervention.describe(),
                        strength=strength,
                        suite=suite,
                        logratio=s.logratio,
                        pmass=s.pmass,
                        **calibration_columns(cal),
                        texts=s.texts,
                        values=s.values,
                    )
                )
                if bar is not None:
                    bar.advance(task, len(suite.rows))
    return frames


def _prefetch(model, tok, intervention, suites, strengths, unsteered, batch_size) -> None:
    """On a vLLM server: the greedy answers of every generative suite at every strength,
    as one batch of requests, each naming the adapter of its strength (``core/served.py``)."""
    from weightsteer.evals.suite_contract import suite_prompts

    served = active_served(model)
    if served is None:
        return
    groups = []
    for suite in suites:
        if suite.scorer is None or suite.score_fn is not None:
            continue  # scored from log-probs: nothing to generate
        for s in strengths:
            if s == 0 and unsteered is not None and (suite.name, batch_size) in unsteered:
                continue
            prompts = suite_prompts(tok, suite, intervention.system_prompt(s))
            ids = [tok.encode(p, add_special_tokens=False) for p in prompts]
            groups.append((intervention.served(s), ids, suite.max_new_tokens))
    served.prefetch(groups)
