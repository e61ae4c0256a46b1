"""Batched generation: left-padded batches, greedy or seeded sampling, up to the end of turn.

The persona-conditioned data stage (``pairs/generate.py``), calibration and the
generative evals all generate through these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from weightsteer.core.dose import DoseMixer, active_dose, prompted_ids
from weightsteer.core.errors import UserError
from weightsteer.core.models import (
    Message,
    assistant_suffix,
    input_device,
    left_padded_batches,
    render_chat,
)


@dataclass(frozen=True)
class Completion:
    text: str
    finished: bool  # the model ended its turn within max_new_tokens


@torch.no_grad()
def end_token_ids(model: torch.nn.Module, tokenizer: Any) -> list[int]:
    """Every token that ends an assistant turn: the tokenizer's EOS, the model's
    ``generation_config.eos_token_id`` (an int or a list), and the chat template's own end
    of turn when it is one special token (``<|eot_id|>``, ``<end_of_turn>``, ``<|im_end|>``),
    which is not the tokenizer's EOS in every family."""
    ends: list[int] = []
    config = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for tid in [tokenizer.eos_token_id, *(config if isinstance(config, list) else [config])]:
        if tid is not None and tid not in ends:
            ends.append(int(tid))
    suffix = assistant_suffix(tokenizer)
    if suffix:
        first = tokenizer(suffix, add_special_tokens=False)["input_ids"][:1]
        added = getattr(tokenizer, "added_tokens_decoder", {})
        special = set(tokenizer.all_special_ids) | {i for i, t in added.items() if t.special}
        if first and first[0] in special and first[0] not in ends:
            ends.append(first[0])
    return ends


def _until_end(ids: list[int], ends: Sequence[int]) -> list[int]:
    """``ids`` up to and including the first end-of-turn token."""
    stop = next((i for i, t in enumerate(ids) if t in ends), None)
    return ids if stop is None else ids[: stop + 1]


def generate_ids(
    model: Any,
    tokenizer: Any,
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
    number before each batch, so the same call gives the same tokens. On a model with a
    vLLM server attached (``served.serving``) the server answers, at the model's current
    steering, when it can.
    """
    from weightsteer.core.served import active_served

    dose = active_dose(model)
    served = active_served(model)
    if served is not None and dose is not None:
        served.servable(served.state)  # says once why the server cannot (a dosed prompt)
    elif served is not None:
        rows = [p if isinstance(p, list) else tokenizer.encode(p, add_special_tokens=False)
                for p in prompts]  # fmt: skip
        got = served.generate(rows, max_new_tokens=max_new_tokens, temperature=temperature,
                              top_p=top_p, seed=seed)  # fmt: skip
        if got is not None:
            return got
    device = input_device(model)
    ends = end_token_ids(model, tokenizer)
    if dose is not None:  # the mixer needs each row's tokens
        prompts = [p if isinstance(p, list) else tokenizer.encode(p, add_special_tokens=False)
                   for p in prompts]  # fmt: skip
    sampling: dict[str, Any] = {"do_sample": False}
    if temperature > 0:
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0}
    out: list[list[int]] = [[] for _ in prompts]
    for b, (idx, ids, mask) in enumerate(
        left_padded_batches(tokenizer, prompts, batch_size, progress=progress)
    ):
        if temperature > 0:
            torch.manual_seed(seed * 1_000_003 + b)
        n = ids.shape[1]
        extra: dict[str, Any] = {}
        if dose is not None:
            from transformers import LogitsProcessorList

            rows = [prompted_ids(tokenizer, dose, list(prompts[i])) for i in idx]  # type: ignore[arg-type]
            _, p_ids, p_mask = next(
                left_padded_batches(tokenizer, rows, len(rows), keep_order=True)
            )
            mixer = DoseMixer(model, p_ids, p_mask, dose.weight)
            extra["logits_processor"] = LogitsProcessorList([mixer])
        gen = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            eos_token_id=ends,
            pad_token_id=tokenizer.pad_token_id,
            **sampling,
            **extra,
        )
        for row, i in enumerate(idx):
            new = gen[row, n:].tolist()  # [new tokens], padded after the end of turn
            out[i] = _until_end(new, ends)
    return out


def complete(
    model: Any,
    tokenizer: Any,
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
    ends = set(end_token_ids(model, tokenizer))
    return [
        Completion(
            tokenizer.decode(ids, skip_special_tokens=True).strip(), bool(ids) and ids[-1] in ends
        )
        for ids in new
    ]


def generate(
    model: Any,
    tokenizer: Any,
    chats: Any,
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
