"""Score single-token choices at the answer slot: Yes/No, A/B, true/false.

For each prompt (already rendered, ending where the answer token goes):

    logratio = logsumexp_{t in POS variants} log p(t) - logsumexp_{t in NEG variants} log p(t)
    pmass    = sum_{t in POS u NEG} p(t)

Variants are the single-token spellings found in the vocabulary ("Yes", " yes", "YES"...);
a side with none (a small vocabulary without " false") is scored as the token sequence of
the word, ``log p(sequence)`` by teacher forcing.
Prompts are left-padded with explicit position ids, so a prompt scores the same alone or
in any batch. Logits are computed from the last hidden state only (one [batch, vocab]
matmul in float32), never for the whole sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from weightsteer.core.dose import active_dose, mix, prompted_ids
from weightsteer.core.errors import UserError
from weightsteer.core.models import input_device, left_padded_batches


@dataclass(frozen=True)
class Choices:
    """A two-way single-token choice: POS words vs NEG words."""

    name: str
    pos: tuple[str, ...]
    neg: tuple[str, ...]


YES_NO = Choices("yes/no", ("yes",), ("no",))
A_B = Choices("a/b", ("A",), ("B",))
TRUE_FALSE = Choices("true/false", ("true",), ("false",))


@dataclass(frozen=True)
class ChoiceScores:
    logratio: torch.Tensor  # [n] float32
    pmass: torch.Tensor  # [n] float32


def _spellings(word: str) -> list[str]:
    forms = dict.fromkeys([word, word.lower(), word.capitalize(), word.upper()])
    return [p + f for f in forms for p in ("", " ")]


def choice_token_ids(tokenizer: Any, choices: Choices) -> tuple[list[list[int]], list[list[int]]]:
    """Token sequences of each side: every single-token spelling of its words; a side
    with none (a small vocabulary) falls back to the word and " word" as token sequences,
    scored by teacher forcing."""
    sides = []
    for words in (choices.pos, choices.neg):
        seqs: dict[tuple[int, ...], None] = {}
        for word in words:
            for s in _spellings(word):
                toks = tokenizer.encode(s, add_special_tokens=False)
                if len(toks) == 1:
                    seqs[tuple(toks)] = None
        if not seqs:
            for word in words:
                for s in (word, " " + word):
                    toks = tokenizer.encode(s, add_special_tokens=False)
                    if toks:
                        seqs[tuple(toks)] = None
        if not seqs:
            raise UserError(f"the tokenizer encodes none of {'/'.join(words)!r}")
        sides.append([list(t) for t in seqs])
    if set(map(tuple, sides[0])) & set(map(tuple, sides[1])):
        raise UserError(f"choice sides of {choices.name!r} share tokens; pick distinct words")
    return sides[0], sides[1]


def _head_logits(model: Any, h: torch.Tensor, head_weight: torch.Tensor) -> torch.Tensor:
    """[batch, hidden] -> [batch, vocab] float32 logits, with the model's final soft cap."""
    head = model.get_output_embeddings()
    logits = F.linear(h.to(head_weight.device, head_weight.dtype), head_weight).float()
    if getattr(head, "bias", None) is not None:
        logits = logits + head.bias.float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = cap * torch.tanh(logits / cap)
    return logits


@torch.no_grad()
def score_choices(
    model: torch.nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    choices: Choices = YES_NO,
    *,
    batch_size: int = 16,
    progress: bool = False,
) -> ChoiceScores:
    """Logratio and probability mass of ``choices`` at the next token after each prompt.

    A side spelt by several tokens (``choice_token_ids``) has ``log p(sequence)`` instead:
    one extra forward of the prompt followed by each such sequence.
    """
    if not prompts:
        raise UserError("nothing to score: the prompt list is empty")
    sides = choice_token_ids(tokenizer, choices)
    encoded = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    single = [[t[0] for t in seqs if len(t) == 1] for seqs in sides]
    parts: list[list[torch.Tensor]] = [[], []]  # per side: [n] log p of each spelling group
    if any(single):
        first = torch.empty(2, len(prompts))
        for idx, logp in last_logprobs(model, tokenizer, encoded, batch_size, 1, progress):
            for s, ids in enumerate(single):
                if ids:
                    first[s, idx] = torch.logsumexp(logp[:, 0, ids], dim=-1).cpu()
        parts = [[first[s]] if ids else [] for s, ids in enumerate(single)]
    for s, seqs in enumerate(sides):
        for seq in (t for t in seqs if len(t) > 1):
            parts[s].append(_sequence_logprob(model, tokenizer, encoded, seq, batch_size))
    lp_pos, lp_neg = (torch.logsumexp(torch.stack(p), dim=0) for p in parts)
    return ChoiceScores(logratio=lp_pos - lp_neg, pmass=lp_pos.exp() + lp_neg.exp())


def last_logprobs(model, tokenizer, encoded, batch_size, k, progress=False):
    """Yield ``(indices, logp)``: log-softmax of the last ``k`` positions of each row,
    ``[batch, k, vocab]`` float32 on the model's device, from the last hidden states only.
    With a dose set on the model (``dose.py``), the geometric mix of the rows as given and
    the rows with the dose's system prompt in."""
    dose = active_dose(model)
    for idx, logp in _last_logprobs(model, tokenizer, encoded, batch_size, k, progress):
        if dose is not None:
            rows = [prompted_ids(tokenizer, dose, encoded[i]) for i in idx.tolist()]
            prompted = torch.empty_like(logp)
            for sub, lp in _last_logprobs(model, tokenizer, rows, len(rows), k):
                prompted[sub] = lp
            logp = mix(logp, prompted, dose.weight)
        yield idx, logp


def _last_logprobs(model, tokenizer, encoded, batch_size, k, progress=False):
    device = input_device(model)
    backbone = model.base_model
    weight = model.get_output_embeddings().weight
    # bf16 matmul on CPU is slow; one float32 copy of the head per call is not.
    head_weight = weight.float() if weight.device.type == "cpu" else weight
    batches = left_padded_batches(
        tokenizer, encoded, batch_size, progress="scoring" if progress else None
    )
    for idx, ids, mask in batches:
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = backbone(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            use_cache=False,
        )
        h = out.last_hidden_state[:, -k:]  # [batch, k, hidden]
        logits = _head_logits(model, h.reshape(-1, h.shape[-1]), head_weight)
        yield torch.tensor(idx), torch.log_softmax(logits, dim=-1).view(h.shape[0], k, -1)


def _sequence_logprob(
    model: Any, tokenizer: Any, encoded: Any, seq: list[int], batch_size: Any
) -> torch.Tensor:
    """``[n]`` log p(seq | prompt) by teacher forcing ``prompt + seq[:-1]``."""
    k = len(seq)
    extended = [e + seq[:-1] for e in encoded]
    out = torch.empty(len(encoded))
    for idx, logp in last_logprobs(model, tokenizer, extended, batch_size, k):
        target = torch.tensor(seq, device=logp.device).expand(len(idx), k)  # [batch, k]
        out[idx] = logp.gather(-1, target[..., None]).sum(dim=(1, 2)).cpu()
    return out


@torch.no_grad()
def option_logprobs(
    model: torch.nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    options: Sequence[str],
    *,
    batch_size: int = 16,
) -> torch.Tensor:
    """``[n, len(options)]`` log p of each option word (``A``, ``B``, ...) at the next token
    after each prompt: the logsumexp over its single-token spellings (``A``, `` A``)."""
    if not prompts:
        raise UserError("nothing to score: the prompt list is empty")
    ids = []
    for word in options:
        spelt = {
            t[0]
            for s in dict.fromkeys([word, " " + word])
            if len(t := tokenizer.encode(s, add_special_tokens=False)) == 1
        }
        if not spelt:
            raise UserError(f"option {word!r} is not one token for this tokenizer")
        ids.append(sorted(spelt))
    encoded = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    out = torch.empty(len(prompts), len(options))
    for idx, logp in last_logprobs(model, tokenizer, encoded, batch_size, 1):
        for j, token_ids in enumerate(ids):
            out[idx, j] = torch.logsumexp(logp[:, 0, token_ids], dim=-1).cpu()
    return out


def option_scores(logp: torch.Tensor, answers: Sequence[int]) -> dict[str, torch.Tensor]:
    """What a multiple-choice row scores from its options' log-probs ``[n, k]`` and right
    option: ``correct`` (1 when the right option is the most likely one), ``logodds`` (log
    p(right) - log p(any wrong): > 0 means more than half the options' mass is on the right
    one), ``p_right`` (its share of the options' mass) and ``mass`` (the options' total
    probability: how much the model answers in format)."""
    n, k = logp.shape
    right = torch.as_tensor(list(answers), dtype=torch.long)
    if n != len(right) or bool(((right < 0) | (right >= k)).any()):
        raise ValueError("every answer must index one of the options")
    lp_right = logp[torch.arange(n), right]
    wrong = logp.masked_fill(torch.nn.functional.one_hot(right, k).bool(), float("-inf"))
    lp_wrong = torch.logsumexp(wrong, dim=-1)
    best = logp.argmax(dim=-1)
    return {
        "correct": (best == right).float(),
        "logodds": lp_right - lp_wrong,
        "p_right": torch.exp(lp_right - torch.logsumexp(logp, dim=-1)),
        "mass": torch.logsumexp(logp, dim=-1).exp(),
    }


@torch.no_grad()
def text_nll(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    prefixes: Sequence[str],
    *,
    batch_size: int = 8,
    max_tokens: int = 128,
) -> torch.Tensor:
    """``[n]`` mean negative log-likelihood per token of each text (its first
    ``max_tokens`` tokens) following its rendered ``prefix`` (a chat up to the answer),
    float32. Only the text's tokens count."""
    heads = [tokenizer.encode(p, add_special_tokens=False) for p in prefixes]
    bodies = [tokenizer.encode(t, add_special_tokens=False)[:max_tokens] for t in texts]
    if any(not b for b in bodies) or any(not h for h in heads):
        raise UserError("a text to score, or its prompt, has no tokens")
    # teacher forcing: prefix + text[:-1]; the last len(text) positions predict the text
    encoded = [h + b[:-1] for h, b in zip(heads, bodies, strict=True)]
    k = max(len(b) for b in bodies)
    out = torch.empty(len(texts))
    for idx, logp in last_logprobs(model, tokenizer, encoded, batch_size, k):  # [b, k, vocab]
        for row, i in enumerate(idx.tolist()):
            n = len(bodies[i])
            target = torch.tensor(bodies[i], device=logp.device)
            out[i] = -logp[row, k - n :].gather(-1, target[:, None]).mean().cpu()
    return out
