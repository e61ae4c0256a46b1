"""Linear activation transport: a per-dimension affine map that carries the NEG
activation distribution onto the POS one (1-D optimal transport of Gaussians: means and
spreads), blended by strength.

Per hooked layer and hidden dimension, with the means ``m`` and standard deviations
``d`` of the training pairs' states on each side::

    T(x)    = m_pos + (d_pos / d_neg) (x - m_neg)       NEG -> POS
    T^-1(x) = m_neg + (d_neg / d_pos) (x - m_pos)       POS -> NEG
    h <- h + s (T(h) - h)          for s > 0
    h <- h + |s| (T^-1(h) - h)     for s < 0

At ``s = 1`` the NEG states land exactly on the POS means and spreads, dimension by
dimension; smaller ``s`` go part of the way. Strength 0 is the unsteered model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pydantic import Field

from weightsteer.methods import Candidate, MethodInputs, register
from weightsteer.methods.activation import (
    ActivationConfig,
    HookSteering,
    States,
    activation_candidate,
)


class LinearActConfig(ActivationConfig):
    min_std: float = Field(
        1e-4, gt=0, description="floor on a dimension's standard deviation (no divide by 0)"
    )


@dataclass(frozen=True, kw_only=True)
class LinearTransport(HookSteering):
    # layer -> [4, hidden]: m_pos, d_pos, m_neg, d_neg (float32)
    moments: dict[int, torch.Tensor]

    def layers(self) -> list[int]:
        return list(self.moments)

    def steer(self, h: torch.Tensor, s: float, layer: int) -> torch.Tensor:
        m_pos, d_pos, m_neg, d_neg = self.moments[layer].to(h.device)
        if s > 0:
            target = m_pos + (d_pos / d_neg) * (h - m_neg)
        else:
            target = m_neg + (d_neg / d_pos) * (h - m_pos)
        return h + abs(s) * (target - h)

    def fitted(self) -> dict[str, torch.Tensor]:
        return {f"layers.{k}.moments": m for k, m in self.moments.items()}


def fit(states: States, layers: list[int], cfg: LinearActConfig) -> LinearTransport:
    pos, neg = states["pos"], states["neg"]  # [pairs, layers, hidden]
    sides = [
        pos.mean(0),
        pos.std(0, unbiased=False).clamp_min(cfg.min_std),
        neg.mean(0),
        neg.std(0, unbiased=False).clamp_min(cfg.min_std),
    ]
    moments = torch.stack(sides, dim=1)  # [layers, 4, hidden]
    return LinearTransport(
        method="act:linear_act",
        moments=dict(zip(layers, moments, strict=True)),
        position=cfg.position,
    )


@register("act:linear_act", LinearActConfig)
def linear_act_candidates(inputs: MethodInputs, cfg: LinearActConfig) -> list[Candidate]:
    return activation_candidate(
        "act:linear_act", inputs, cfg, lambda h, layers: fit(h, layers, cfg)
    )
