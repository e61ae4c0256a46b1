"""A dose of a system prompt: the next-token distribution as a geometric mix of the model
without the prompt and with it (``methods/prompt_dosed.py``)::

    log p(v) = (1 - w) log p(v | chat) + w log p(v | system + chat) - log Z

``w = 0`` is the unprompted model, ``w = 1`` the prompted one, ``w > 1`` classifier-free
guidance (Sanchez et al. 2023), ``w`` in (0, 1) part of the prompt's effect.

While a dose is set on a model (``dosing``), every log-prob the project reads from it
goes through the mix: ``scoring.last_logprobs`` (choices, options, text NLL, the KL of a
calibration) and ``generation.generate_ids`` (greedy or sampled, step by step with a
second KV cache for the prompted context). Callers keep rendering the chat without a
system prompt; the prompted context is made from those tokens by swapping the rendered
head (``chat_heads``), so both contexts end with the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from weightsteer.core.errors import UserError
from weightsteer.core.models import render_chat, with_system

_ATTR = "_weightsteer_dose"
_PROBE = "Probe question for the chat template, what comes after it is kept?"


@dataclass(frozen=True)
class Dose:
    system: str  # the prompt dosed in
    weight: float  # w


def active_dose(model: Any) -> Dose | None:
    """The dose set on ``model`` (None: none)."""
    return model.__dict__.get(_ATTR)


@contextmanager
def dosing(model: Any) -> Iterator[Callable[[Dose | None], None]]:
    """Yield ``set_dose(dose)`` (None: off); the dose is removed on exit, also on error."""
    try:
        yield lambda dose: model.__dict__.__setitem__(_ATTR, dose)
    finally:
        model.__dict__.pop(_ATTR, None)


@lru_cache(maxsize=64)
def _heads(tokenizer: Any, system: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    chat = [{"role": "user", "content": _PROBE}]
    enc = lambda sys: tokenizer.encode(  # noqa: E731
        render_chat(tokenizer, with_system(chat, sys)), add_special_tokens=False
    )
    bare, prompted = enc(None), enc(system)
    n = 0
    while n < min(len(bare), len(prompted)) and bare[-1 - n] == prompted[-1 - n]:
        n += 1
    if n == 0 or tokenizer.encode(_PROBE, add_special_tokens=False)[-1] not in bare[-n:]:
        raise UserError("this chat template does not render a system prompt as a head before "
                        "the chat; a dosed prompt cannot be used with it")  # fmt: skip
    return tuple(bare[: len(bare) - n]), tuple(prompted[: len(prompted) - n])


def chat_heads(tokenizer: Any, system: str) -> tuple[list[int], list[int]]:
    """``(bare, prompted)``: the tokens a rendered chat starts with without ``system`` and
    with it; everything after them is the same in both renderings."""
    bare, prompted = _heads(tokenizer, system)
    return list(bare), list(prompted)


def prompted_ids(tokenizer: Any, dose: Dose, ids: list[int]) -> list[int]:
    """A rendered chat's tokens (no system prompt) with the dose's system prompt in."""
    bare, prompted = chat_heads(tokenizer, dose.system)
    if ids[: len(bare)] != bare:
        raise UserError(
            "a dosed prompt met a sequence that does not start with the chat template's "
            "head; it only applies to chats rendered without a system prompt"
        )
    return prompted + ids[len(bare) :]


def mix(bare: torch.Tensor, prompted: torch.Tensor, weight: float) -> torch.Tensor:
    """Log-probs ``[..., vocab]`` of the geometric mix, renormalised (log-probs floored at
    -1e4 first, so a weight above 1 never multiplies -inf by a negative number)."""
    bare, prompted = bare.clamp_min(-1e4), prompted.clamp_min(-1e4)
    return torch.log_softmax((1 - weight) * bare + weight * prompted, dim=-1)


class DoseMixer:
    """A ``generate`` logits processor: runs the prompted context of each row alongside
    (its own KV cache, fed the token ``generate`` chose at each step) and returns the
    mix's log-probs in place of the bare logits. One per batch."""

    def __init__(self, model: Any, prompted: torch.Tensor, mask: torch.Tensor, weight: float):
        self.model, self.weight = model, weight
        self.ids, self.mask = prompted, mask  # [batch, seq] left-padded prompted prompts
        self.cache: Any = None
        self.pos = torch.empty(0)

    @torch.no_grad()
    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.cache is None:
            ids, mask = self.ids.to(input_ids.device), self.mask.to(input_ids.device)
            self.pos = (mask.cumsum(-1) - 1).clamp(min=0)
        else:
            ids = input_ids[:, -1:]
            mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=-1)
            self.pos = self.pos[:, -1:] + 1
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=self.pos,
            past_key_values=self.cache,
            use_cache=True,
        )
        self.mask, self.cache = mask, out.past_key_values
        prompted = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        bare = torch.log_softmax(scores.float(), dim=-1)
        return mix(bare, prompted, self.weight).to(scores.dtype)
