"""Angular steering (Vu & Nguyen 2025): rotate each state inside one fixed plane to a
target angle, keeping its norm.

Per hooked layer, the plane is spanned by ``b1``, the unit mean difference
(``act:mean_diff``), and ``b2``, the first principal component of the paired differences
``pos_i - neg_i`` (centred), orthogonalised against ``b1``. A state's in-plane part
``p = (h . b1) b1 + (h . b2) b2`` has norm ``rho`` and angle ``phi`` from ``b1``.
The paper sets ``phi`` to a target angle; here the strength says how far toward it::

    target = 0 (onto b1) for s > 0,  pi (onto -b1) for s < 0
    phi'   = phi + |s| * wrap(target - phi)            wrap: into (-pi, pi]
    h     <- h - p + rho (cos phi' b1 + sin phi' b2)

``|s| = 1`` is the paper's form at the target angle (every state's in-plane part turned
onto ``+-b1``), smaller ``|s|`` part of the way; a larger ``|s|`` is the same as 1 (a
state past its target would turn back toward the other side), so the method's KL has a
ceiling and calibration searches no further than ``|s| = 1`` (``max_strength``). The
out-of-plane part and the in-plane norm are untouched, so every norm is kept; strength 0
is the unsteered model (the paper's parameterisation, the angle itself, has no such
point).
"""

from __future__ import annotations

import math
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


def plane(pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[pairs, hidden]`` x 2 -> orthonormal ``(b1, b2)`` [hidden] each."""
    b1 = mean_difference(pos, neg)
    b1 = b1 / b1.norm().clamp_min(1e-12)
    diffs = pos - neg
    _, _, vh = torch.linalg.svd(diffs - diffs.mean(0), full_matrices=False)
    b2 = vh[0] - (vh[0] @ b1) * b1
    if b2.norm() < 1e-6:  # the first component is b1 itself: take the next
        b2 = vh[1] - (vh[1] @ b1) * b1
    return b1, b2 / b2.norm().clamp_min(1e-12)


def rotate(h: torch.Tensor, b1: torch.Tensor, b2: torch.Tensor, s: float) -> torch.Tensor:
    """``[..., hidden]`` states with their in-plane angle moved ``min(|s|, 1)`` of the way
    to 0 (``s > 0``) or pi (``s < 0``)."""
    a, b = h @ b1, h @ b2  # [...]
    rho = torch.sqrt(a * a + b * b)
    phi = torch.atan2(b, a)
    target = 0.0 if s > 0 else math.pi
    gap = torch.remainder(target - phi + math.pi, 2 * math.pi) - math.pi  # into [-pi, pi)
    turned = phi + min(abs(s), 1.0) * gap
    p = a[..., None] * b1 + b[..., None] * b2
    new = rho[..., None] * (torch.cos(turned)[..., None] * b1 + torch.sin(turned)[..., None] * b2)
    return h - p + new


@dataclass(frozen=True, kw_only=True)
class AngularSteering(HookSteering):
    planes: dict[int, torch.Tensor]  # layer -> [2, hidden] float32: b1, b2
    max_strength: float = 1.0  # at the target angle: further is the same

    def layers(self) -> list[int]:
        return list(self.planes)

    def steer(self, h: torch.Tensor, s: float, layer: int) -> torch.Tensor:
        b1, b2 = self.planes[layer].to(h.device)
        return rotate(h, b1, b2, s)

    def fitted(self) -> dict[str, torch.Tensor]:
        return {f"layers.{k}.plane": p for k, p in self.planes.items()}


def fit(states: States, layers: list[int], cfg: ActivationConfig) -> AngularSteering:
    planes = {
        layer: torch.stack(plane(states["pos"][:, j], states["neg"][:, j]))
        for j, layer in enumerate(layers)
    }
    return AngularSteering(method="act:angular", planes=planes, position=cfg.position)


@register("act:angular", ActivationConfig)
def angular_candidates(inputs: MethodInputs, cfg: ActivationConfig) -> list[Candidate]:
    return activation_candidate("act:angular", inputs, cfg, lambda h, layers: fit(h, layers, cfg))
