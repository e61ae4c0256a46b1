"""Mean-difference activation steering (CAA, Rimsky et al. 2024; persona vectors, Chen et
al. 2025).

Per hooked layer ``l``, from the POS/NEG training pairs (``activation.py``)::

    v_l = mean_i h_l(pos_i) - mean_i h_l(neg_i)
    h_l <- h_l + s * v_l            at every position

``s = 1`` moves the average NEG state onto the average POS state at each hooked layer
(the shifts compound over layers, so calibration usually lands below 1); ``s < 0`` steers
toward NEG. The sign is POS minus NEG by construction.
"""

from __future__ import annotations

import torch

from weightsteer.methods import Candidate, MethodInputs, register
from weightsteer.methods.activation import (
    ActivationConfig,
    ActivationSteering,
    States,
    activation_candidate,
)


def mean_difference(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """``[pairs, layers, hidden]`` x 2 -> ``[layers, hidden]``."""
    return pos.mean(0) - neg.mean(0)


@register("act:mean_diff", ActivationConfig)
def mean_diff_candidates(inputs: MethodInputs, cfg: ActivationConfig) -> list[Candidate]:
    def build(h: States, layers: list[int]) -> ActivationSteering:
        v = mean_difference(h["pos"], h["neg"])
        return ActivationSteering(
            method="act:mean_diff", vectors=dict(zip(layers, v, strict=True)), position=cfg.position
        )

    return activation_candidate("act:mean_diff", inputs, cfg, build)
