"""Persona-conditioned generation: the POS and NEG answers a vector is trained on.

Each question is asked under a POS system prompt and a NEG one (several paraphrases, one
or more samples each); the model's own answers become the training chats, with the system
prompt removed, so an adapter has to learn the behaviour the prompt elicited.

``generate_pair_data`` is the pipeline's data stage: it works in chunks written atomically
to a work folder, so a restarted run skips what is written, and each chunk's sampling
seed depends only on (seed, side, chunk), so a resumed run gives the same pairs as an
uninterrupted one. Degenerate answers (empty, or cut off at ``max_new_tokens``) are
dropped with their pair and counted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from weightsteer.core import dist
from weightsteer.core.config import Section
from weightsteer.core.files import atomic_path
from weightsteer.core.generation import complete, generate
from weightsteer.pairs.pairs_file import SIDES, pair_record
from weightsteer.pairs.personas import PersonaPair, persona_chat


class DataConfig(Section):
    paraphrases: int = Field(
        5, ge=1, description="persona paraphrases each question is asked under"
    )
    samples: int = Field(1, ge=1, description="answers sampled per question and paraphrase")
    max_new_tokens: int = Field(64, ge=1, description="answer length limit (longer: dropped)")
    temperature: float = Field(0.0, ge=0, description="0: greedy; > 0: sampling")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    seed: int = Field(0, description="sampling seed")
    batch_size: int = Field(32, ge=1, description="prompts generated together")
    chunk_size: int = Field(
        256,
        ge=1,
        description="prompts per chunk: the unit a resumed run skips and each of several "
        "processes takes (the sampling seed is per chunk)",
    )
    truncated: Literal["drop", "keep"] = Field(
        "drop",
        description="answers cut off at max_new_tokens: drop their pair, or keep them "
        "(trained as they are, without an end of turn)",
    )
    filter: str | None = Field(
        None,
        description="drop pairs that do not contrast: 'module:function' (pos, neg) -> keep, "
        "or 'judge:self' / 'judge:<model>' (a Yes/No judge, both answer orders)",
    )

    @model_validator(mode="after")
    def _samples_need_sampling(self) -> DataConfig:
        if self.samples > 1 and self.temperature == 0:
            raise ValueError("samples > 1 needs temperature > 0 (greedy answers are identical)")
        return self


def generate_pairs(
    model: torch.nn.Module,
    tokenizer,
    questions: Sequence[tuple[str, str]],
    pair: PersonaPair,
    *,
    seed: int = 0,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    progress: bool = False,
    sides: Sequence[str] = SIDES,
) -> dict[str, list[dict[str, Any]]]:
    """Greedy ``{"pos": records, "neg": records}`` (or only ``sides``), one paraphrase per
    question (rotating).

    ``questions`` are ``(question_id, user message)``.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for side in sides:
        personas = [pair.prompt(side, i) for i in range(len(questions))]
        chats = [persona_chat(p, q) for p, (_, q) in zip(personas, questions, strict=True)]
        answers = generate(
            model,
            tokenizer,
            chats,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            progress=progress,
        )
        out[side] = [
            pair_record(side, qid, qid, q, persona, a, pair.behavior, seed)
            for (qid, q), persona, a in zip(questions, personas, answers, strict=True)
        ]
    return out


# -- the pipeline's data stage -----------------------------------------------------------


@dataclass(frozen=True)
class PairItem:
    """One (question, paraphrase, sample) asked under both personas."""

    id: str
    question_id: str
    user: str
    paraphrase: int
    sample: int


def pair_items(questions, paraphrases: int, samples: int) -> list[PairItem]:
    return [
        PairItem(f"{q.id}-p{j}-s{k}", q.id, q.text, j, k)
        for q in questions
        for j in range(paraphrases)
        for k in range(samples)
    ]


@dataclass
class PairData:
    records: dict[str, list[dict[str, Any]]]
    counts: dict[str, int]


def generate_pair_data(
    model: torch.nn.Module,
    tokenizer,
    items: Sequence[PairItem],
    pair: PersonaPair,
    *,
    work_dir: str | Path,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 32,
    chunk_size: int = 256,
    keep: Callable[[list[tuple[dict, dict]]], list[bool]] | None = None,
    on_chunk: Callable[[int, int, list[dict]], None] | None = None,
    truncated: str = "drop",
) -> PairData | None:
    """POS and NEG records for every item; finished chunks in ``work_dir`` are reused
    (on a model with a vLLM server attached, the server generates: ``core/served.py``).

    ``on_chunk(done, total, rows)`` is called after each chunk (rows of that chunk);
    ``keep(pairs) -> flags`` (``filters.py``) drops the pairs it flags False. Answers cut
    off at ``max_new_tokens`` are dropped with their pair (``truncated="drop"``) or kept
    and marked ``"truncated": true`` (``"keep"``: trained without an end of turn).

    Under several processes (``core/dist.py``) each rank generates every N-th chunk into
    ``work_dir`` (a folder all ranks see); rank 0 then reads them all and returns the pairs,
    the others return None. A chunk's sampling seed depends only on its number, so the
    pairs are the same as one process makes.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
    paths = [work_dir / f"chunk-{c:05d}.json" for c in range(len(chunks))]
    reported: set[int] = set()
    for c in dist.shard(len(chunks)):
        if paths[c].is_file():
            continue  # made before this (resumed) call: read below
        part = [{"item": it.__dict__} for it in chunks[c]]
        for s, side in enumerate(SIDES):
            chats = [persona_chat(pair.prompt(side, it.paraphrase), it.user) for it in chunks[c]]
            chunk_seed = (seed * 7919 + c) * 2 + s
            done = complete(model, tokenizer, chats, max_new_tokens=max_new_tokens,
                            batch_size=batch_size, temperature=temperature, top_p=top_p,
                            seed=chunk_seed)  # fmt: skip
            for row, comp in zip(part, done, strict=True):
                row[side] = {"text": comp.text, "finished": comp.finished}
        with atomic_path(paths[c], overwrite=True) as tmp:
            tmp.write_text(json.dumps(part))
        reported.add(c)
        if on_chunk:
            on_chunk(len(reported), len(chunks), part)
    dist.barrier()  # every rank's chunks are written
    if not dist.is_main():
        return None
    rows: list[dict] = []
    for c, path in enumerate(paths):
        part = json.loads(path.read_text())
        rows += part
        if on_chunk and c not in reported:
            reported.add(c)
            on_chunk(len(reported), len(chunks), part)

    return _pair_records(rows, pair, seed, keep, truncated)


def _pair_records(rows: list[dict], pair: PersonaPair, seed: int, keep, truncated: str) -> PairData:
    """The pairs-file records of the generated rows, with what was dropped and why: an
    empty answer, an answer cut off at the token limit (``truncated="drop"``), or the
    filter's verdict."""
    counts = {"pairs": len(rows), "kept": 0, "empty": 0, "unterminated": 0, "filtered": 0}
    out: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    candidates: list[dict[str, dict[str, Any]]] = []
    for row in rows:
        it = PairItem(**row["item"])
        answers = [row[side] for side in SIDES]
        if any(not a["text"] for a in answers):
            counts["empty"] += 1
            continue
        if any(not a["finished"] for a in answers):
            counts["unterminated"] += 1
            if truncated == "drop":
                continue
        recs = {}
        for side in SIDES:
            rec = pair_record(side, it.id, it.question_id, it.user,
                              pair.prompt(side, it.paraphrase), row[side]["text"],
                              pair.behavior, seed)  # fmt: skip
            if not row[side]["finished"]:
                rec["truncated"] = True
            recs[side] = rec
        candidates.append(recs)
    flags = keep([(r["pos"], r["neg"]) for r in candidates]) if keep else [True] * len(candidates)
    for recs, kept in zip(candidates, flags, strict=True):
        if not kept:
            counts["filtered"] += 1
            continue
        counts["kept"] += 1
        for side in SIDES:
            out[side].append(recs[side])
    return PairData(out, counts)
