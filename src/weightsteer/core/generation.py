"""Batched generation: left-padded batches, greedy or seeded sampling, up to the end of turn.

The persona-conditioned data stage (``pairs/generate.py``), calibration and the
generative evals all generate through these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from weightsteer.core.errors import UserError
from weightsteer.core.models import Message, left_padded_batches, render_chat


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
