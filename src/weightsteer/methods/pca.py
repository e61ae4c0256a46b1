"""PCA activation steering (RepE-style): the first principal direction of the paired
differences, WITHOUT centring them.

Per hooked layer, with ``D = h(pos) - h(neg)`` ``[pairs, hidden]`` (pair i: the same
question under each persona)::

    u_l = argmax_{|u|=1} sum_i (D_i . u)^2       (top right singular vector of D)
    u_l <- sign(mean_i D_i . u_l) * u_l         (sign from the training pairs)
    v_l = mean_i (D_i . u_l) * u_l
    h_l <- h_l + s * v_l

Centring D first (``D - mean D``) removes exactly the mean difference, the behaviour's
own direction, and leaves the direction pairs vary most in: a known bug of two popular
implementations. Uncentred, the top direction is the mean difference whenever it
dominates the spread. ``v_l`` is scaled to the average pair's shift along ``u_l``, so
``s = 1`` compares with ``act:mean_diff``'s ``s = 1``.
"""

from __future__ import annotations

import torch

from weightsteer.core.errors import UserError
from weightsteer.methods import Candidate, MethodInputs, register
from weightsteer.methods.activation import (
    ActivationConfig,
    ActivationSteering,
    States,
    activation_candidate,
)


def principal_direction(diffs: torch.Tensor) -> torch.Tensor:
    """``[pairs, hidden]`` paired differences -> ``[hidden]``: the uncentred first
    principal direction, signed and scaled by the mean projection of the pairs."""
    _, _, vh = torch.linalg.svd(diffs.double(), full_matrices=False)
    u = vh[0]  # [hidden], unit
    proj = (diffs.double() @ u).mean()
    if proj < 0:
        u, proj = -u, -proj
    return (u * proj).float()


@register("act:pca", ActivationConfig)
def pca_candidates(inputs: MethodInputs, cfg: ActivationConfig) -> list[Candidate]:
    def build(h: States, layers: list[int]) -> ActivationSteering:
        if len(h["pos"]) != len(h["neg"]):
            raise UserError(
                f"act:pca pairs line i of pos.jsonl with line i of neg.jsonl, but they hold "
                f"{len(h['pos'])} and {len(h['neg'])} pairs; give both sides the same questions"
            )
        diffs = h["pos"] - h["neg"]  # [pairs, layers, hidden]: line i of each side is a pair
        vectors = {layer: principal_direction(diffs[:, j]) for j, layer in enumerate(layers)}
        return ActivationSteering(method="act:pca", vectors=vectors, position=cfg.position)

    return activation_candidate("act:pca", inputs, cfg, build)
