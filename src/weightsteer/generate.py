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
from typing import Any

import torch

from weightsteer.errors import UserError
from weightsteer.io import atomic_path
from weightsteer.modelling import Message, left_padded_batches, render_chat
from weightsteer.personas import PersonaPair, persona_chat

SIDES = ("pos", "neg")


@dataclass(frozen=True)
class Completion:
    text: str
    finished: bool  # the model ended its turn within max_new_tokens


@torch.no_grad()
def generate_ids(
    model: torch.nn.Module,
    tokenizer,
    prompts: Sequence[str] | Sequence[list[int]],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    progress: str | None = None,
) -> list[list[int]]:
    """The new token ids after each rendered prompt (text or ids), up to and including the
    first end-of-turn token, in left-padded batches.

    Greedy for ``temperature == 0``; otherwise sampled, reseeded with ``seed`` + batch
    number before each batch, so the same call gives the same tokens.
    """
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    sampling = {"do_sample": False}
    if temperature > 0:
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0}
    out: list[list[int]] = [[] for _ in prompts]
    for b, (idx, ids, mask) in enumerate(
        left_padded_batches(tokenizer, prompts, batch_size, progress=progress)
    ):
        if temperature > 0:
            torch.manual_seed(seed * 1_000_003 + b)
        n = ids.shape[1]
        gen = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            eos_token_id=eos,
            pad_token_id=tokenizer.pad_token_id,
            **sampling,
        )
        for row, i in enumerate(idx):
            new = gen[row, n:].tolist()  # [new tokens], padded after the end of turn
            out[i] = new[: new.index(eos) + 1] if eos in new else new
    return out


def complete(
    model: torch.nn.Module,
    tokenizer,
    chats: Sequence[Sequence[Message]],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    progress: str | None = None,
) -> list[Completion]:
    """Complete the assistant turn of each chat (``generate_ids``, then decoded)."""
    if not chats:
        raise UserError("nothing to generate: the question list is empty")
    new = generate_ids(
        model,
        tokenizer,
        [render_chat(tokenizer, c) for c in chats],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        progress=progress,
    )
    eos = tokenizer.eos_token_id
    return [
        Completion(
            tokenizer.decode(ids, skip_special_tokens=True).strip(), bool(ids) and ids[-1] == eos
        )
        for ids in new
    ]


def generate(
    model,
    tokenizer,
    chats,
    *,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    progress: bool = False,
) -> list[str]:
    """Greedy completion texts of the assistant turn of each chat."""
    return [
        c.text
        for c in complete(
            model,
            tokenizer,
            chats,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            progress="generating" if progress else None,
        )
    ]


def pair_record(
    side: str,
    pair_id: str,
    question_id: str,
    user: str,
    persona: str,
    answer: str,
    behavior: str,
    seed: int,
) -> dict[str, Any]:
    """One line of a pairs file (design.md): the chat carries no system prompt."""
    return {
        "id": f"{side}-{pair_id}",
        "side": side,
        "behavior": behavior,
        "question_id": question_id,
        "persona": persona,
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
        "seed": seed,
    }


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
) -> dict[str, list[dict[str, Any]]]:
    """Greedy ``{"pos": records, "neg": records}``, one paraphrase per question (rotating).

    ``questions`` are ``(question_id, user message)``.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for side in SIDES:
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
) -> PairData:
    """POS and NEG records for every item; finished chunks in ``work_dir`` are reused.

    ``on_chunk(done, total, rows)`` is called after each chunk (rows of that chunk);
    ``keep(pairs) -> flags`` (``filters.py``) drops the pairs it flags False.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
    rows: list[dict] = []
    for c, chunk in enumerate(chunks):
        path = work_dir / f"chunk-{c:05d}.json"
        if path.is_file():
            part = json.loads(path.read_text())
        else:
            part = [{"item": it.__dict__} for it in chunk]
            for s, side in enumerate(SIDES):
                chats = [persona_chat(pair.prompt(side, it.paraphrase), it.user) for it in chunk]
                done = complete(
                    model,
                    tokenizer,
                    chats,
                    max_new_tokens=max_new_tokens,
                    batch_size=batch_size,
                    temperature=temperature,
                    top_p=top_p,
                    seed=(seed * 7919 + c) * 2 + s,
                )
                for row, comp in zip(part, done, strict=True):
                    row[side] = {"text": comp.text, "finished": comp.finished}
            with atomic_path(path, overwrite=True) as tmp:
                tmp.write_text(json.dumps(part))
        rows += part
        if on_chunk:
            on_chunk(c + 1, len(chunks), part)

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
            continue
        candidates.append(
            {
                side: pair_record(
                    side,
                    it.id,
                    it.question_id,
                    it.user,
                    pair.prompt(side, it.paraphrase),
                    row[side]["text"],
                    pair.behavior,
                    seed,
                )
                for side in SIDES
            }
        )
    flags = keep([(r["pos"], r["neg"]) for r in candidates]) if keep else [True] * len(candidates)
    for recs, kept in zip(candidates, flags, strict=True):
        if not kept:
            counts["filtered"] += 1
            continue
        counts["kept"] += 1
        for side in SIDES:
            out[side].append(recs[side])
    return PairData(out, counts)
