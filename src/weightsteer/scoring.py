"""Score single-token choices at the answer slot: Yes/No, A/B, true/false.

For each prompt (already rendered, ending where the answer token goes):

    logratio = logsumexp_{t in POS variants} log p(t) - logsumexp_{t in NEG variants} log p(t)
    pmass    = sum_{t in POS u NEG} p(t)

Variants are the single-token spellings found in the vocabulary ("Yes", " yes", "YES"...).
Prompts are left-padded with explicit position ids, so a prompt scores the same alone or
in any batch. Logits are computed from the last hidden state only (one [batch, vocab]
matmul in float32), never for the whole sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from weightsteer.errors import UserError
from weightsteer.modelling import left_padded_batches


@dataclass(frozen=True)
class Choices:
    """A two-way single-token choice: POS words vs NEG words."""

    name: str
    pos: tuple[str, ...]
    neg: tuple[str, ...]


YES_NO = Choices("yes/no", ("yes",), ("no",))
A_B = Choices("a/b", ("A",), ("B",))
TRUE_FALSE = Choices("true/false", ("true",), ("false",))
CHOICES = {c.name: c for c in (YES_NO, A_B, TRUE_FALSE)}


@dataclass(frozen=True)
class ChoiceScores:
    logratio: torch.Tensor  # [n] float32
    pmass: torch.Tensor  # [n] float32


def _spellings(word: str) -> list[str]:
    forms = dict.fromkeys([word, word.lower(), word.capitalize(), word.upper()])
    return [p + f for f in forms for p in ("", " ")]


def choice_token_ids(tokenizer, choices: Choices) -> tuple[list[int], list[int]]:
    """Token ids of every single-token spelling of each side; a side with none is an error."""
    sides = []
    for words in (choices.pos, choices.neg):
        ids: dict[int, None] = {}
        for word in words:
            for s in _spellings(word):
                toks = tokenizer.encode(s, add_special_tokens=False)
                if len(toks) == 1:
                    ids[toks[0]] = None
        if not ids:
            raise UserError(
                f"no spelling of {'/'.join(words)!r} is a single token in this tokenizer "
                f"(tried {', '.join(repr(s) for w in words for s in _spellings(w))}); "
                f"choose another choice set than {choices.name!r}"
            )
        sides.append(list(ids))
    overlap = set(sides[0]) & set(sides[1])
    if overlap:
        raise UserError(f"choice sides share tokens {sorted(overlap)}; pick distinct words")
    return sides[0], sides[1]


def _head_logits(model, h: torch.Tensor, head_weight: torch.Tensor) -> torch.Tensor:
    """[batch, hidden] -> [batch, vocab] float32 logits, with the model's final soft cap."""
    head = model.get_output_embeddings()
    logits = F.linear(h.to(head_weight.dtype), head_weight).float()
    if getattr(head, "bias", None) is not None:
        logits = logits + head.bias.float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = cap * torch.tanh(logits / cap)
    return logits


@torch.no_grad()
def score_choices(
    model: torch.nn.Module,
    tokenizer,
    prompts: Sequence[str],
    choices: Choices = YES_NO,
    *,
    batch_size: int = 16,
    progress: bool = False,
) -> ChoiceScores:
    """Logratio and probability mass of ``choices`` at the next token after each prompt."""
    if not prompts:
        raise UserError("nothing to score: the prompt list is empty")
    pos_ids, neg_ids = choice_token_ids(tokenizer, choices)
    device = next(model.parameters()).device
    backbone = model.base_model
    weight = model.get_output_embeddings().weight
    # bf16 matmul on CPU is slow; one float32 copy of the head per call is not.
    head_weight = weight.float() if device.type == "cpu" else weight

    logratio = torch.empty(len(prompts))
    pmass = torch.empty(len(prompts))
    batches = left_padded_batches(
        tokenizer, prompts, batch_size, progress="scoring" if progress else None
    )
    for idx, ids, mask in batches:
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = backbone(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            use_cache=False,
        )
        h = out.last_hidden_state[:, -1]  # [batch, hidden]
        logp = torch.log_softmax(_head_logits(model, h, head_weight), dim=-1)  # [batch, vocab]
        lp_pos = torch.logsumexp(logp[:, pos_ids], dim=-1)
        lp_neg = torch.logsumexp(logp[:, neg_ids], dim=-1)
        sel = torch.tensor(idx)
        logratio[sel] = (lp_pos - lp_neg).cpu()
        pmass[sel] = (lp_pos.exp() + lp_neg.exp()).cpu()
    return ChoiceScores(logratio=logratio, pmass=pmass)
