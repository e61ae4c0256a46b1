"""Corpus-centred mean difference (mean-centring, Jorgensen et al. 2023): steer toward a
side's average state measured from the average state of neutral text, not from the
other side's.

Per hooked layer, with the mean state ``c_l`` of a neutral corpus (each text read as the
assistant's answer to a neutral request, no system prompt, at the method's ``position``)::

    v+_l = mean_i h_l(pos_i) - c_l        v-_l = mean_i h_l(neg_i) - c_l
    h_l <- h_l + s * v+_l       for s > 0
    h_l <- h_l + |s| * v-_l     for s < 0

Why a corpus and not the pairs themselves: centring on the pooled POS and NEG states
gives ``v+ = (mean pos - mean neg) / 2``, half of ``act:mean_diff`` and the same method
after calibration. Centring on neutral text keeps what both personas share apart from
ordinary text (the chat format, the persona framing) in each side's vector, so the two
signs steer along different directions, as in the paper, where the target behaviour's
mean is centred on the mean over a generic corpus. Strength 0 is the unsteered model.

The corpus: ``corpus`` (a table with a ``column`` of text; the default
``builtin:neutral-text`` is also the ``nll`` capability suite's default rows, so pass
another table to keep the centring text out of that eval).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field

from weightsteer.core.errors import UserError
from weightsteer.core.table_files import read_table, require_columns
from weightsteer.methods import Candidate, MethodInputs, register
from weightsteer.methods.activation import (
    ActivationConfig,
    HookSteering,
    States,
    activation_candidate,
    chat_states,
    encode_chat,
    hooked_layers,
)

NEUTRAL_REQUEST = "Write a short passage of everyday prose."


class MeanCentredConfig(ActivationConfig):
    corpus: str = Field(
        "builtin:neutral-text", description="neutral text the states are centred on (table)"
    )
    column: str = Field("text", description="the corpus's text column")
    hf_split: str = Field("train", description="split of an hf: corpus")


@dataclass(frozen=True, kw_only=True)
class MeanCentredSteering(HookSteering):
    pos: dict[int, torch.Tensor]  # layer -> v+_l [hidden] float32
    neg: dict[int, torch.Tensor]  # layer -> v-_l [hidden] float32

    def layers(self) -> list[int]:
        return list(self.pos)

    def steer(self, h: torch.Tensor, s: float, layer: int) -> torch.Tensor:
        v = self.pos[layer] if s > 0 else self.neg[layer]
        return h + abs(s) * v.to(h.device)

    def fitted(self) -> dict[str, torch.Tensor]:
        out = {f"layers.{k}.pos": v for k, v in self.pos.items()}
        return out | {f"layers.{k}.neg": v for k, v in self.neg.items()}


def corpus_texts(cfg: MeanCentredConfig) -> list[str]:
    what = 'compare."act:mean_centred".corpus'
    table = read_table(cfg.corpus, what=what, hf_split=cfg.hf_split)
    require_columns(table, [cfg.column], what, cfg.corpus)
    texts = [t.strip() for t in table[cfg.column].tolist() if isinstance(t, str) and t.strip()]
    if not texts:
        raise UserError(f'compare."act:mean_centred".corpus {cfg.corpus}: no non-empty text')
    return texts


def corpus_mean(inputs: MethodInputs, cfg: MeanCentredConfig, texts: list[str]) -> torch.Tensor:
    """``[layers, hidden]`` mean state of the corpus at the method's layers and position
    (made once per stage)."""
    layers = hooked_layers(inputs, cfg)
    key = ("corpus_mean", tuple(layers), cfg.position, tuple(texts))
    if key not in inputs.shared:
        chats = [
            [{"role": "user", "content": NEUTRAL_REQUEST}, {"role": "assistant", "content": t}]
            for t in texts
        ]
        encoded = [encode_chat(inputs.tokenizer, c, None, cfg.position) for c in chats]
        bar = "fitting neutral activations" if inputs.progress else None
        states = chat_states(
            inputs.model, inputs.tokenizer, encoded, layers, batch_size=cfg.batch_size, progress=bar
        )
        inputs.shared[key] = states.mean(0)
    return inputs.shared[key]


def fit(states: States, centre: torch.Tensor, layers: list[int], cfg: Any) -> MeanCentredSteering:
    """``states`` {side: [pairs, layers, hidden]}, ``centre`` [layers, hidden]."""
    v_pos = states["pos"].mean(0) - centre
    v_neg = states["neg"].mean(0) - centre
    return MeanCentredSteering(
        method="act:mean_centred",
        pos=dict(zip(layers, v_pos, strict=True)),
        neg=dict(zip(layers, v_neg, strict=True)),
        position=cfg.position,
    )


@register("act:mean_centred", MeanCentredConfig)
def mean_centred_candidates(inputs: MethodInputs, cfg: MeanCentredConfig) -> list[Candidate]:
    texts = corpus_texts(cfg)
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    return activation_candidate(
        "act:mean_centred",
        inputs,
        cfg,
        lambda h, layers: fit(h, corpus_mean(inputs, cfg, texts), layers, cfg),
        sources={"corpus": digest},
    )
