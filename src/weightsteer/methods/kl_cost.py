"""What an intervention costs: the KL statistic a budget is calibrated to.

For an intervention at strength ``s`` and a set of prompts:

1. take ``N`` tokens (default 20) after each prompt: the unsteered model's greedy
   continuation (``continuations = "unsteered"``, the default), or the intervention's own
   greedy continuation (``"steered"``);
2. teacher-force those same tokens through the intervened model and through the base
   (no system prompt, no change), and take the per-token
   ``KL(steered || base) = sum_v p_s(v) (log p_s(v) - log p_b(v))`` over the whole
   vocabulary, at every position (up to and including an end of turn);
3. pool the tokens of all prompts; the statistic is their mean (``statistic = "mean"``,
   the default) or a quantile of them (``"quantile"``, 0.95 by default: the seeds'
   "worst-5% KL").

Why the mean: a budget is only equal if it holds on prompts it was not tuned on. A few
answer tokens carry most of a steered model's KL and the 95th percentile sits among them,
so it follows which of them a prompt set holds: tuned on one half of the demo's prompts, a
weight vector's p95 on the other half is off by more than 1.5x many times as often as its
mean (``scripts/kl_holdout.py`` measures it; docs/methods.md has its table).

Why the unsteered continuation: it is the same tokens at every strength, so the statistic
is a continuous function of ``s`` (a product of smooth log-probs) and every budget is
reachable. On the steered model's own greedy tokens, the continuation changes discretely
with ``s`` (one token flips, the rest of the rollout follows), and the statistic jumps:
some budgets then have no strength at all (the ``jumps`` outcome). The unsteered tokens
are generated once per prompt and kept (``BaseLogprobs``).

Both passes go through the same teacher-forced forward, so a no-op intervention scores
exactly 0. The base pass depends only on the prompt and the tokens, so it is kept per
continuation (``BaseLogprobs``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch

from weightsteer.core.errors import UserError
from weightsteer.core.models import Message, render_chat, with_system


@torch.no_grad()
def token_kls(
    model: Any,
    tokenizer: Any,
    chats: Sequence[Sequence[Message]],
    intervention: Any,
    set_strength: Callable[[float], None],
    strength: float,
    *,
    tokens: int = 20,
    batch_size: int = 16,
    base_cache: BaseLogprobs | None = None,
    continuations: str = "unsteered",
) -> torch.Tensor:
    """``[tokens]`` float32 per-token ``KL(steered || base)`` of every prompt, pooled
    (step 1-2 of the module docstring), on the ``continuations`` of each prompt
    (``"unsteered"`` or ``"steered"``). Leaves the strength at 0. ``base_cache``: the
    unsteered log-probs and continuations seen before (``BaseLogprobs``)."""
    from weightsteer.core.generation import generate_ids

    if not chats:
        raise UserError("no calibration prompts")
    system = intervention.system_prompt(strength)
    enc = lambda chat, sys: tokenizer.encode(  # noqa: E731
        render_chat(tokenizer, with_system(chat, sys)), add_special_tokens=False
    )
    if continuations not in ("unsteered", "steered"):
        raise UserError(f"continuations must be unsteered or steered, got {continuations!r}")
    cache = base_cache if base_cache is not None else BaseLogprobs(0)
    kls = []
    for start in range(0, len(chats), batch_size):
        chunk = chats[start : start + batch_size]
        steered_prompts = [enc(c, system) for c in chunk]
        base_prompts = [enc(c, None) for c in chunk]
        if continuations == "unsteered":
            set_strength(0.0)
            gen = cache.continuations(model, tokenizer, base_prompts, tokens)
        set_strength(strength)
        try:
            if continuations == "steered":
                gen = generate_ids(
                    model, tokenizer, steered_prompts, max_new_tokens=tokens, batch_size=len(chunk)
                )
            steered = _logprobs(model, tokenizer, steered_prompts, gen)
        finally:
            set_strength(0.0)
        base = cache.get(model, tokenizer, base_prompts, gen)
        for lp_s, lp_b in zip(steered, base, strict=True):  # [k, vocab] each
            lp_b = lp_b.to(lp_s.device)
            p_s = lp_s.exp()
            kl = torch.where(p_s > 0, p_s * (lp_s - lp_b), 0.0).sum(-1)  # [k]
            kls.append(kl.clamp_min(0.0).cpu())
    return torch.cat(kls)


def _logprobs(model: Any, tokenizer: Any, prompts: Any, gen: Any) -> list[torch.Tensor]:
    """Per prompt, ``[len(gen_i), vocab]`` log-probs of the distributions that predicted
    each generated token: one teacher-forced pass over ``prompt + gen[:-1]``."""
    from weightsteer.core.scoring import last_logprobs

    k = max(len(g) for g in gen)
    seqs = [p + g[:-1] for p, g in zip(prompts, gen, strict=True)]
    out: list[torch.Tensor] = [torch.empty(0)] * len(prompts)
    for idx, logp in last_logprobs(model, tokenizer, seqs, len(seqs), k):  # [b, k, vocab]
        for row, i in enumerate(idx.tolist()):
            n = len(gen[i])
            out[i] = logp[row, k - n :]  # right-aligned: the last n positions
    return out


class BaseLogprobs:
    """The unsteered model's teacher-forced log-probs (``_logprobs``) of ``(prompt,
    continuation)`` token pairs, kept on the CPU up to ``max_bytes`` (least recently used
    dropped first; 0 keeps nothing). Valid while the model's weights are unchanged at
    strength 0, which every intervention guarantees (``methods``' contract). A kept entry
    was computed in another batch: equal to a fresh one up to float rounding."""

    def __init__(self, max_bytes: int = 2**30):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = self.misses = 0
        self._kept: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._gen: dict[tuple, list[int]] = {}  # (prompt, tokens) -> unsteered greedy tokens

    def continuations(self, model: Any, tokenizer: Any, prompts: Any, tokens: int) -> list:
        """The unsteered model's greedy ``tokens`` after each prompt (the model must be at
        strength 0), generated once and kept: token ids only, a few KB."""
        from weightsteer.core.generation import generate_ids

        keys = [(tuple(p), tokens) for p in prompts]
        todo = [i for i, k in enumerate(keys) if k not in self._gen]
        if todo:
            fresh = generate_ids(model, tokenizer, [prompts[i] for i in todo],
                                 max_new_tokens=tokens, batch_size=len(todo))  # fmt: skip
            for i, g in zip(todo, fresh, strict=True):
                self._gen[keys[i]] = g
        return [self._gen[k] for k in keys]

    def get(self, model: Any, tokenizer: Any, prompts: Any, gen: Any) -> list[torch.Tensor]:
        keys = [(tuple(p), tuple(g)) for p, g in zip(prompts, gen, strict=True)]
        out: list[torch.Tensor | None] = [self._kept.get(k) for k in keys]
        todo = [i for i, lp in enumerate(out) if lp is None]
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        for i, k in enumerate(keys):
            if out[i] is not None:
                self._kept.move_to_end(k)
        if todo:
            fresh = _logprobs(model, tokenizer, [prompts[i] for i in todo], [gen[i] for i in todo])
            for i, lp in zip(todo, fresh, strict=True):
                out[i] = lp
                self._keep(keys[i], lp)
        return out  # type: ignore[return-value]

    def _keep(self, key: tuple, lp: torch.Tensor) -> None:
        size = lp.numel() * lp.element_size()
        if key in self._kept or size > self.max_bytes:
            return
        self._kept[key] = lp.to("cpu", copy=True)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self._kept.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()


def kl_statistic(kls: torch.Tensor, statistic: str = "mean", quantile: float = 0.95) -> float:
    """The pooled per-token KLs reduced to one number (step 3 of the module docstring)."""
    if not kls.numel():
        return float("nan")
    if statistic == "mean":
        return float(kls.double().mean())
    if statistic == "quantile":
        return float(torch.quantile(kls.double(), quantile))
    raise UserError(f"compare.statistic must be mean or quantile, got {statistic!r}")
