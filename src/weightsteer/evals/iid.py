"""IID claims: held-out questions of the training distribution, scored Yes/No.

The rows are the labelled questions ``questions.py`` holds out of the training split;
the label is the answer the POS persona gives.
"""

from __future__ import annotations

from weightsteer.errors import UserError
from weightsteer.evals import EvalRow, Suite, register
from weightsteer.questions import split_questions


@register("iid")
def iid_suite(cfg, part: str | None) -> list[Suite]:
    held = split_questions(cfg.questions).eval
    if not held:
        raise UserError(
            f"the iid suite needs labelled held-out questions, and {cfg.questions.source} has "
            "none: add a Yes/No label column (questions.label_column) or drop iid from "
            "eval.suites"
        )
    rows = [
        EvalRow(q.id, [{"role": "user", "content": q.text}], 1 if q.label == "Yes" else -1)
        for q in held
    ]
    return [Suite("iid", rows, prefill=cfg.eval.prefill)]
