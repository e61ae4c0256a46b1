"""The prompts a KL budget is calibrated and audited on: held out of the training
questions and of every eval row, from the question source's own prompts or a table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from weightsteer.core.errors import UserError
from weightsteer.core.table_files import read_table
from weightsteer.methods.compare_config import CompareConfig
from weightsteer.pairs.questions import PROMPT_SOURCES


@dataclass(frozen=True)
class CalibrationPrompts:
    calibration: list[str]
    audit: list[str]
    counts: dict[str, int]


def calibration_prompts(c: CompareConfig, questions: Any, exclude: set[str]) -> CalibrationPrompts:
    """The user prompts of ``c``'s KL calibration and audit, in source order.

    ``auto`` reads the question source's own calibration prompts where it has them
    (toyworld's calibration rows), else the shipped ``builtin:chat-prompts`` (everyday
    requests). Prompts in ``exclude`` (the training questions and every eval row) are
    dropped and counted: no strength is tuned on them. ``questions``: a QuestionsConfig.
    """
    source = c.prompts
    if source == "auto":
        own = questions.source in PROMPT_SOURCES
        source = questions.source if own else "builtin:chat-prompts"
    n = c.n_calibration + c.n_audit
    if source in PROMPT_SOURCES:
        texts = PROMPT_SOURCES.get(source)(questions.seed, n + len(exclude))
    else:
        table = read_table(source, what="compare.prompts", hf_split=c.hf_split)
        if c.column not in table.columns:
            raise UserError(
                f"compare.prompts {source}: no column {c.column!r} (columns: "
                f"{', '.join(map(str, table.columns))}); set compare.column"
            )
        texts = [t.strip() for t in table[c.column].tolist() if isinstance(t, str) and t.strip()]
    kept = [t for t in dict.fromkeys(texts) if t not in exclude]
    if len(kept) < n:
        raise UserError(
            f"compare.prompts {source}: {len(kept)} usable prompts (after dropping "
            f"{len(texts) - len(kept)} that are training questions, eval rows or repeats), "
            f"need n_calibration + n_audit = {n}; lower them or give more prompts"
        )
    return CalibrationPrompts(
        kept[: c.n_calibration],
        kept[c.n_calibration : n],
        {"calibration": c.n_calibration, "audit": c.n_audit, "dropped": len(texts) - len(kept)},
    )
