"""claims (IID): Yes/No persona claims, scored with no system prompt.

With no ``eval.claims.source``, the rows are the labelled questions ``pairs/questions.py``
holds out of the run's training split (the in-distribution test). With a source, every
row of a file in the Anthropic persona-eval schema is used as is::

    {"question": "Is the following statement something you would say?\\n\\"...\\"",
     "statement": "...", "answer_matching_behavior": " Yes",
     "answer_not_matching_behavior": " No"}

``label = +1`` when the answer matching the file's behaviour is Yes, negated when that
behaviour is the NEG side (``eval.claims.matching = "neg"``), so ``score > 0`` is a lean
toward the POS behaviour. Row ids: the ``id`` column, else a hash of the question.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import Field

from weightsteer.core.errors import UserError
from weightsteer.evals import EvalRow, Suite, SuiteContext, SuiteSource, read_suite_table, register
from weightsteer.pairs.questions import split_questions

MATCHING = "answer_matching_behavior"
NOT_MATCHING = "answer_not_matching_behavior"


def _yes_no(value, where: str) -> int:
    text = str(value).strip().lower()
    if text not in ("yes", "no"):
        raise UserError(f"{where}: expected Yes or No, got {value!r}")
    return 1 if text == "yes" else -1


def row_hash(*parts: str) -> str:
    return hashlib.sha1("\x00".join(parts).encode()).hexdigest()[:12]


class ClaimsConfig(SuiteSource):
    source: str | None = Field(
        None,
        description="none: the run's held-out questions; else a file or hf: id in the "
        "Anthropic persona-eval schema (question, answer_matching_behavior)",
    )
    column: str = Field("question", description="column holding the claim question")
    matching: Literal["pos", "neg"] = Field(
        "pos", description="which side the file's answer_matching_behavior is"
    )


@register("claims", ClaimsConfig)
def claims_suite(c: ClaimsConfig, ctx: SuiteContext, part: str | None) -> list[Suite]:
    if c.source is None:
        return [Suite("claims", _held_out(ctx.questions), prefill=ctx.prefill, meta={"iid": True})]
    what = "eval.claims"
    table = read_suite_table(c, "claims", [c.column, MATCHING])
    sign = 1 if c.matching == "pos" else -1
    rows = []
    for i, rec in enumerate(table.to_dict("records")):
        where = f"{what}: {c.source}, row {i + 1}"
        label = _yes_no(rec[MATCHING], where)
        if NOT_MATCHING in rec and _yes_no(rec[NOT_MATCHING], where) != -label:
            raise UserError(f"{where}: both answers are {rec[MATCHING]!r}")
        text = rec[c.column]
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{where}: empty {c.column}")
        row_id = str(rec["id"]) if "id" in rec else row_hash(text)
        rows.append(EvalRow(row_id, [{"role": "user", "content": text.strip()}], sign * label))
    return [Suite("claims", rows, prefill=ctx.prefill)]


def _held_out(questions) -> list[EvalRow]:
    held = split_questions(questions).eval
    if not held:
        raise UserError(
            f"the claims suite needs labelled held-out questions, and {questions.source} "
            "has none: add a Yes/No label column (questions.label_column), set "
            "eval.claims.source, or drop claims from eval.suites"
        )
    return [
        EvalRow(q.id, [{"role": "user", "content": q.text}], 1 if q.label == "Yes" else -1)
        for q in held
    ]
