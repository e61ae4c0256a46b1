"""Question pools: what the model is asked under each persona, and the held-out IID rows.

A question has an id, a text and, optionally, a label: the Yes/No answer the POS persona
gives. Training pairs are generated from the train split (labels unused); held-out
labelled questions are the IID eval, scored as a Yes/No logratio with no system prompt.

Sources: ``builtin:<name>`` (shipped pools, e.g. ``builtin:honesty``), a local
``.jsonl`` / ``.csv`` / ``.parquet`` file, ``hf:<dataset id>`` (``datasets.load_dataset``),
or a registered question source (``toyworld``: NARROW colour/evidence questions of the
embedded world), which makes its own split and may offer its own KL calibration prompts.
Files may use the Anthropic persona-eval schema: ``answer_matching_behavior``
(" Yes"/" No") stands in for a missing label column.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import Field

from weightsteer.core.config import Section
from weightsteer.core.errors import UserError
from weightsteer.core.registry import Registry
from weightsteer.core.table_files import read_table

ANTHROPIC_LABEL = "answer_matching_behavior"


class QuestionsConfig(Section):
    source: str = Field(
        "toyworld",
        description="toyworld, builtin:<name>, a .jsonl/.csv/.parquet file, or hf:<dataset id>",
    )
    column: str = Field("question", description="column holding the question text")
    label_column: str = Field(
        "label", description="column holding the POS answer (Yes/No) of held-out rows"
    )
    hf_split: str = Field("train", description="split of an hf: dataset")
    hf_config: str | None = Field(None, description="config name of an hf: dataset")
    n_train: int = Field(60, ge=1, description="questions used to generate training pairs")
    n_eval: int = Field(200, ge=0, description="held-out labelled questions for the IID eval")
    seed: int = Field(0, description="seed of the train/eval split")


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    label: str | None = None  # "Yes" / "No": the POS persona's answer; None: unlabelled


@dataclass(frozen=True)
class QuestionSplit:
    train: list[Question]
    eval: list[Question]  # labelled, held out of train


def _label(value, where: str) -> str | None:
    if value is None or (isinstance(value, float) and value != value) or value == "":
        return None
    text = str(value).strip().lower()
    if text in ("yes", "no"):
        return text.capitalize()
    raise UserError(f"{where}: label must be Yes or No, got {value!r}")


def load_questions(cfg: QuestionsConfig) -> list[Question]:
    """Every question of a non-toyworld source, in file order."""
    table = read_table(cfg.source, what="questions", hf_config=cfg.hf_config, hf_split=cfg.hf_split)
    if cfg.column not in table.columns:
        raise UserError(
            f"questions from {cfg.source}: no column {cfg.column!r} (columns: "
            f"{', '.join(map(str, table.columns))}); set questions.column"
        )
    label_col = cfg.label_column if cfg.label_column in table.columns else None
    if label_col is None and ANTHROPIC_LABEL in table.columns:
        label_col = ANTHROPIC_LABEL
    ids = table["id"].astype(str).tolist() if "id" in table.columns else None
    out = []
    for i, text in enumerate(table[cfg.column].tolist()):
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"questions from {cfg.source}, row {i + 1}: empty question text")
        label = (
            _label(table[label_col].iloc[i], f"{cfg.source}, row {i + 1}") if label_col else None
        )
        out.append(Question(ids[i] if ids else f"q{i:05d}", text.strip(), label))
    dup = len({q.id for q in out}) != len(out)
    if dup:
        raise UserError(f"questions from {cfg.source}: the id column has duplicates")
    return out


# name -> (QuestionsConfig -> QuestionSplit): sources that make their own split
QUESTION_SOURCES: Registry[Callable[[QuestionsConfig], QuestionSplit]] = Registry(
    "question source", "weightsteer.question_sources"
)
# name -> (seed, n) -> n user prompts for KL calibration, none of them a training question
PROMPT_SOURCES: Registry[Callable[[int, int], list[str]]] = Registry(
    "prompt source", "weightsteer.prompt_sources"
)


def split_questions(cfg: QuestionsConfig) -> QuestionSplit:
    """Train and held-out eval questions, deterministic in ``cfg.seed``.

    Held-out rows are drawn first from the labelled questions; the train split takes the
    next ``n_train`` of the rest. A pool smaller than asked for gives smaller splits.
    """
    if cfg.source in QUESTION_SOURCES:
        return QUESTION_SOURCES.get(cfg.source)(cfg)
    questions = load_questions(cfg)
    order = list(range(len(questions)))
    random.Random(f"questions/{cfg.seed}").shuffle(order)
    shuffled = [questions[i] for i in order]
    held = [q for q in shuffled if q.label is not None][: cfg.n_eval]
    held_ids = {q.id for q in held}
    train = [q for q in shuffled if q.id not in held_ids][: cfg.n_train]
    if not train:
        raise UserError(
            f"questions from {cfg.source}: nothing left to train on after holding out "
            f"{len(held)} labelled rows; lower questions.n_eval"
        )
    return QuestionSplit(train, held)


def questions(source: str = "toyworld", n: int = 60, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` training questions of ``source`` as ``(id, text)``, for ``generate_pairs``."""
    split = split_questions(QuestionsConfig(source=source, n_train=n, n_eval=0, seed=seed))
    return [(q.id, q.text) for q in split.train]
