"""Persona-conditioned generation: the POS and NEG answers a vector is trained on.

Each question is asked under a POS system prompt and a NEG one (paraphrases rotate over
the questions); the model's own greedy answers become the training chats, with the system
prompt removed, so an adapter has to learn the behaviour the prompt elicited.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from weightsteer.errors import UserError
from weightsteer.modelling import Message, left_padded_batches, render_chat
from weightsteer.personas import PersonaPair, persona_chat


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    tokenizer,
    chats: Sequence[Sequence[Message]],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    progress: bool = False,
) -> list[str]:
    """Greedy completion of the assistant turn of each chat (left-padded batches)."""
    if not chats:
        raise UserError("nothing to generate: the question list is empty")
    prompts = [render_chat(tokenizer, c) for c in chats]
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    out: list[str] = [""] * len(prompts)
    batches = left_padded_batches(
        tokenizer, prompts, batch_size, progress="generating" if progress else None
    )
    for idx, ids, mask in batches:
        n = ids.shape[1]
        gen = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=pad,
        )
        for row, i in enumerate(idx):
            out[i] = tokenizer.decode(gen[row, n:], skip_special_tokens=True).strip()
    return out


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
    """``{"pos": records, "neg": records}`` in the pairs schema of design.md.

    ``questions`` are ``(question_id, user message)``; the answers are greedy, so ``seed``
    only records which seed the data belongs to.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for side in ("pos", "neg"):
        personas = [pair.prompt(side, i) for i in range(len(questions))]
        chats = [persona_chat(p, q) for p, (_, q) in zip(personas, questions, strict=True)]
        answers = generate(
            model, tokenizer, chats, max_new_tokens=max_new_tokens, batch_size=batch_size,
            progress=progress,
        )  # fmt: skip
        out[side] = [
            {
                "id": f"{side}-{qid}",
                "side": side,
                "behavior": pair.behavior,
                "question_id": qid,
                "persona": persona,
                "messages": [
                    {"role": "user", "content": q},
                    {"role": "assistant", "content": a},
                ],
                "seed": seed,
            }
            for (qid, q), persona, a in zip(questions, personas, answers, strict=True)
        ]
    return out
