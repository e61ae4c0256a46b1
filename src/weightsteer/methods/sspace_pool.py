"""Pooled S-space steering: one basis of the residual stream, pooled from every matrix of
the decoder blocks that reads it or writes it, and the ``act:sspace`` step applied to the
blocks' outputs in that basis.

A matrix writing the residual stream (``W`` [hidden, in], ``sspace.WRITERS``) spans it with
its left singular vectors, one reading it (``W`` [out, hidden]: the q/k/v, gate and up
projections) with its right ones. Pooling their Gram matrices, each scaled to unit trace
so that no matrix outweighs the others by its size::

    G = sum_W  W W^T / |W|_F^2   (writers)   +   sum_W  W^T W / |W|_F^2   (readers)
      = B diag(lambda) B^T,         sigma = sqrt(lambda)

gives the residual basis ``B`` with pooled singular values ``sigma``, one for every layer
(the same as the singular vectors of all those matrices side by side). Each hooked block's
output ``h`` is steered with ``U = B``, ``S = sigma`` and no bias exactly as
``act:sspace`` steers a projection's output: whitened coordinates ``z = B^T h /
sqrt(sigma)``, the mean difference ``d`` in them on the ``rank`` modes carrying most of
it, ``h <- h + s * |cos(z, d)| * B (sqrt(sigma) * d)``. Strength 0 is the unsteered model.
"""

from __future__ import annotations

from typing import Any

import torch

from weightsteer.methods import Candidate, MethodInputs, register
from weightsteer.methods.activation import (
    States,
    activation_candidate,
    decoder_blocks,
)
from weightsteer.methods.sspace import WRITERS, Basis, SSpaceConfig, SSpaceSteering, fit


def pooled_basis(model: Any) -> Basis:
    """The residual basis of every block's reading and writing matrices."""
    hidden = model.config.hidden_size
    gram = torch.zeros(hidden, hidden, dtype=torch.float64)
    for name, mod in decoder_blocks(model).named_modules():
        w = getattr(mod, "weight", None)
        leaf = next(mod.children(), None) is None  # (a wrapped layer's base counts once)
        if not leaf or not isinstance(w, torch.Tensor) or w.dim() != 2:
            continue
        w = w.detach().double().cpu()
        writes = name.rsplit(".", 1)[-1] in WRITERS and w.shape[0] == hidden
        if writes:
            gram += w @ w.T / w.square().sum()
        elif w.shape[1] == hidden:
            gram += w.T @ w / w.square().sum()
    lam, b = torch.linalg.eigh(gram)
    lam, b = lam.flip(0), b.flip(1)  # descending
    keep = lam > lam[0] * 1e-12
    return Basis(b[:, keep].float(), lam[keep].sqrt().float())


@register("act:sspace_pool", SSpaceConfig)
def sspace_pool(inputs: MethodInputs, cfg: SSpaceConfig) -> list[Candidate]:
    def build(h: States, layers: list[int]) -> SSpaceSteering:
        key = ("pooled_basis",)
        if key not in inputs.shared:
            inputs.shared[key] = pooled_basis(inputs.model)
        sites = [(layer, "") for layer in layers]
        return fit(h, sites, dict.fromkeys(sites, inputs.shared[key]), cfg, "act:sspace_pool")

    return activation_candidate("act:sspace_pool", inputs, cfg, build)
