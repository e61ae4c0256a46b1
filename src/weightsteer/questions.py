"""Question pools: what the model is asked under each persona, and the held-out IID rows.

A question has an id, a text and, optionally, a label: the Yes/No answer the POS persona
gives. Training pairs are generated from the train split (labels unused); held-out
labelled questions are the IID eval, scored as a Yes/No logratio with no system prompt.

Sources: ``toyworld`` (NARROW colour/evidence questions of the embedded world),
``builtin:<name>`` (shipped pools, e.g. ``builtin:honesty``), a local ``.jsonl`` /
``.csv`` / ``.parquet`` file, or ``hf:<dataset id>`` (``datasets.load_dataset``). Files
may use the Anthropic persona-eval schema: ``answer_matching_behavior`` (" Yes"/" No")
stands in for a missing label column.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from weightsteer.config import QuestionsConfig
from weightsteer.errors import UserError
from weightsteer.tables import read_table

ANTHROPIC_LABEL = "answer_matching_behavior"


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


def _toyworld_split(cfg: QuestionsConfig) -> QuestionSplit:
    from weightsteer.toy.world import World

    world = World(cfg.seed)
    train = [Question(f"pool-{i}", r.user) for i, r in enumerate(world.narrow_pool(cfg.n_train))]
    held = world.suites()["narrow"][: cfg.n_eval]
    return QuestionSplit(
        train, [Question(f"narrow-{i}", r.user, r.honest) for i, r in enumerate(held)]
    )


def split_questions(cfg: QuestionsConfig) -> QuestionSplit:
    """Train and held-out eval questions, deterministic in ``cfg.seed``.

    Held-out rows are drawn first from the labelled questions; the train split takes the
    next ``n_train`` of the rest. A pool smaller than asked for gives smaller splits.
    """
    if cfg.source == "toyworld":
        return _toyworld_split(cfg)
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


@dataclass(frozen=True)
class CalibrationPrompts:
    calibration: list[str]
    audit: list[str]
    counts: dict[str, int]


def calibration_prompts(cfg, exclude: set[str]) -> CalibrationPrompts:
    """The user prompts of ``cfg.compare``'s KL calibration and audit, in source order.

    ``auto`` reads toyworld's calibration rows for a toyworld run, else the shipped
    ``builtin:chat-prompts`` (everyday requests). Prompts in ``exclude`` (the training
    questions and every eval row) are dropped and counted: no strength is tuned on them.
    """
    c = cfg.compare
    source = c.prompts
    if source == "auto":
        source = "toyworld" if cfg.questions.source == "toyworld" else "builtin:chat-prompts"
    n = c.n_calibration + c.n_audit
    if source == "toyworld":
        from weightsteer.toy.world import World

        texts = [r.user for r in World(cfg.questions.seed).calibration(n + len(exclude))]
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
