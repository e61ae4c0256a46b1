"""Spherical steering: rotate each state toward the behaviour's direction along the great
circle, keeping its norm.

Per hooked layer, with the unit mean difference ``u_l`` (``act:mean_diff``), at every
position, with ``r = |h|``, ``x = h / r``, the target ``w = sign(s) u_l`` and the angle
``theta = arccos(x . w)``::

    h <- r * (sin((1 - t) theta) x + sin(t theta) w) / sin(theta),     t = |s|

``t = 1`` turns the state onto ``w``, ``t`` in (0, 1) part of the way, ``t > 1`` past it
along the same circle; a state already on ``w`` stays. Every norm is kept, so the method
moves the direction of the residual stream and never its scale. Strength 0 is the
unsteered model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from weightsteer.methods import Candidate, MethodInputs, register
from weightsteer.methods.activation import (
    ActivationConfig,
    HookSteering,
    States,
    activation_candidate,
)
from weightsteer.methods.mean_diff import mean_difference


def slerp_toward(h: torch.Tensor, w: torch.Tensor, t: float) -> torch.Tensor:
    """``[..., hidden]`` states turned toward unit ``w`` by fraction ``t`` of their angle
    to it, norms kept."""
    r = h.norm(dim=-1, keepdim=True)
    x = h / r.clamp_min(1e-12)
    cos = (x @ w).clamp(-1.0, 1.0)[..., None]
    theta = torch.arccos(cos)
    sin = torch.sin(theta)
    aligned = sin < 1e-6  # on w (or opposite it: no unique circle): left as it is
    safe = torch.where(aligned, torch.ones_like(sin), sin)
    turned = (torch.sin((1 - t) * theta) * x + torch.sin(t * theta) * w) / safe
    return torch.where(aligned, h, r * turned)


@dataclass(frozen=True, kw_only=True)
class SphericalSteering(HookSteering):
    units: dict[int, torch.Tensor]  # layer -> u_l [hidden] float32, unit

    def layers(self) -> list[int]:
        return list(self.units)

    def steer(self, h: torch.Tensor, s: float, layer: int) -> torch.Tensor:
        w = self.units[layer].to(h.device) * (1.0 if s > 0 else -1.0)
        return slerp_toward(h, w, abs(s))

    def fitted(self) -> dict[str, torch.Tensor]:
        return {f"layers.{k}.unit": u for k, u in self.units.items()}


def fit(states: States, layers: list[int], cfg: ActivationConfig) -> SphericalSteering:
    v = mean_difference(states["pos"], states["neg"])  # [layers, hidden]
    units = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return SphericalSteering(
        method="act:spherical", units=dict(zip(layers, units, strict=True)), position=cfg.position
    )


@register("act:spherical", ActivationConfig)
def spherical_candidates(inputs: MethodInputs, cfg: ActivationConfig) -> list[Candidate]:
    return activation_candidate("act:spherical", inputs, cfg, lambda h, layers: fit(h, layers, cfg))
