"""Does dW ride the pretrained singular directions? Crops of dW in the base weights' basis.

Per 2-D tensor with base weight ``W = U0 S0 V0ᵀ`` (``k = min(m, n)`` directions, by
descending ``S0``), ``dS = U0ᵀ dW V0`` is dW in that basis. Cropping ``dS`` to the rows
and columns of a set ``Q`` of base directions and mapping back gives
``U0[:, Q] dS[Q, Q] V0[:, Q]ᵀ``:

- ``base_top25`` / ``base_bottom25``: ``Q`` = the top / bottom quarter of the base's
  directions (its largest / smallest singular values);
- ``base_all``: every direction; what is left out is the part of dW outside the base's
  row and column spaces plus nothing else (``dW - base_all`` is that part).

Each variant's ``info["energy"]`` is its share of ``||dW||²``. Tensors without a 2-D base
weight (biases, norms) are left out of every crop.
"""

from __future__ import annotations

import torch

from weightsteer.analysis import AnalysisContext, Variant, register
from weightsteer.core.errors import UserError
from weightsteer.core.vector import WeightVector

CROPS = ("base_top25", "base_bottom25", "base_all")


def base_crop(w: torch.Tensor, dw: torch.Tensor, crop: str) -> torch.Tensor:
    u0, _, vh0 = torch.linalg.svd(w.double(), full_matrices=False)
    k = u0.shape[1]
    q = max(1, k // 4)
    idx = {"base_top25": slice(0, q), "base_bottom25": slice(k - q, k), "base_all": slice(0, k)}[
        crop
    ]
    u, v = u0[:, idx], vh0[idx].T
    return (u @ (u.T @ dw.double() @ v) @ v.T).float()


@register("basis")
def basis_variants(vector: WeightVector, ctx: AnalysisContext, settings: None) -> list[Variant]:
    if ctx.base is None:
        raise UserError("analysis basis needs the base model's weights")
    params = dict(ctx.base.named_parameters())
    parts: dict[str, dict] = {c: {} for c in CROPS}
    total = vector.norm() ** 2
    for n in vector:
        w = params[n].detach().float().cpu()
        if w.dim() != 2:
            continue
        dw = vector.dense(n)
        for c in CROPS:
            parts[c][n] = base_crop(w, dw, c)
    out = []
    for c in CROPS:
        v = WeightVector(parts[c], vector.meta.derived(c))
        energy = v.norm() ** 2 / total if total > 0 else float("nan")
        out.append(Variant(c, v, {"kind": "base_crop", "crop": c, "energy": energy}))
    return out
