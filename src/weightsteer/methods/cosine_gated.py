"""Cosine-gated activation steering: add the mean difference only where a state already
points along it (or against it), in proportion to how far past a threshold it does.

Per hooked layer, with the mean difference ``v_l`` (``act:mean_diff``) and its unit
direction ``u_l``, at every position::

    g(h) = max(0, |cos(h, u_l)| - tau) / (1 - tau)          in [0, 1]
    h   <- h + s * g(h) * v_l

A state less aligned than ``tau`` (``threshold``) is left exactly as it is, so the method
touches only the positions where the behaviour's direction is already present; ``tau =
0`` gates by ``|cos|`` alone. Strength 0 is the unsteered model; the sign comes from the
training pairs (POS minus NEG).
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
from weightsteer.methods.mean_diff import mean_difference


class CosineGatedConfig(ActivationConfig):
    threshold: float = Field(
        0.1, ge=0, lt=1, description="|cos(h, v)| below which a state is left untouched"
    )


def gate(h: torch.Tensor, u: torch.Tensor, threshold: float) -> torch.Tensor:
    """``[..., hidden]`` states, unit ``u`` -> ``[..., 1]`` gates in [0, 1]."""
    cos = (h @ u) / h.norm(dim=-1).clamp_min(1e-12)
    return ((cos.abs() - threshold).clamp_min(0) / (1 - threshold))[..., None]


@dataclass(frozen=True, kw_only=True)
class CosineGatedSteering(HookSteering):
    vectors: dict[int, torch.Tensor]  # layer -> v_l [hidden] float32
    threshold: float

    def layers(self) -> list[int]:
        return list(self.vectors)

    def steer(self, h: torch.Tensor, s: float, layer: int) -> torch.Tensor:
        v = self.vectors[layer].to(h.device)
        u = v / v.norm().clamp_min(1e-12)
        return h + s * gate(h, u, self.threshold) * v

    def fitted(self) -> dict[str, torch.Tensor]:
        return {f"layers.{k}.vector": v for k, v in self.vectors.items()}


def fit(states: States, layers: list[int], cfg: CosineGatedConfig) -> CosineGatedSteering:
    v = mean_difference(states["pos"], states["neg"])  # [layers, hidden]
    return CosineGatedSteering(
        method="act:cosine_gated",
        vectors=dict(zip(layers, v, strict=True)),
        threshold=cfg.threshold,
        position=cfg.position,
    )


@register("act:cosine_gated", CosineGatedConfig)
def cosine_gated_candidates(inputs: MethodInputs, cfg: CosineGatedConfig) -> list[Candidate]:
    return activation_candidate(
        "act:cosine_gated", inputs, cfg, lambda h, layers: fit(h, layers, cfg)
    )
