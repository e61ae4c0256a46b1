"""Is dW low-rank in its own basis? Crops of each tensor's singular directions.

Per 2-D tensor ``dW = U S Vᵀ`` (low-rank factors stay exact: ``lowrank_svd``):

- ``top25`` / ``mid50`` / ``bottom25``: the top quarter, middle half and bottom quarter
  of its singular directions (by index, of its nonzero rank);
- ``energy50`` / ``energy90``: the fewest top directions holding 50% / 90% of
  ``sum(S^2)``;
- ``rest:<crop>``: the residual ``dW - crop``, so component + residual = dW exactly (to
  float tolerance). 1-D deltas (IA3-like scalings, biases) have no singular directions:
  they stay whole in every component and are absent from the residuals.

A crop is stored as the factors of its directions (``LowRank``) where they are smaller
than the dense tensor: ten crops of a LoRA vector then weigh what the vector does (as
dense tensors they held 3.5x SmolLM2's model in memory, ``benchmarks/bench_memory.py``).
"""

from __future__ import annotations

import torch

from weightsteer.analysis import AnalysisContext, Variant, register
from weightsteer.core.vector import LowRank, WeightVector, lowrank_svd

CROPS = ("top25", "mid50", "bottom25", "energy50", "energy90")


def _svd(d) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if isinstance(d, LowRank):
        return lowrank_svd(d)
    return torch.linalg.svd(d.double(), full_matrices=False)


def crop_index(s: torch.Tensor, crop: str) -> torch.Tensor:
    """Indices of the singular directions ``crop`` keeps, of ``s`` (descending)."""
    r = int((s > s[0] * 1e-7).sum()) if s.numel() and s[0] > 0 else 0
    if crop in ("top25", "mid50", "bottom25"):
        q = max(1, round(r / 4)) if r else 0
        lo, hi = {"top25": (0, q), "mid50": (q, r - q), "bottom25": (r - q, r)}[crop]
        return torch.arange(lo, max(lo, hi))
    share = {"energy50": 0.5, "energy90": 0.9}[crop]
    energy = (s[:r].double() ** 2).cumsum(0)
    k = int((energy < share * energy[-1]).sum()) + 1 if r else 0
    return torch.arange(min(k, r))


def _directions(u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, idx: torch.Tensor):
    """``sum_i u_i s_i vh_i`` over ``idx``, as float32 factors when they are smaller than
    the dense tensor, else dense."""
    b, a = (u[:, idx] * s[idx]).float(), vh[idx].float()
    if b.numel() + a.numel() < u.shape[0] * vh.shape[1]:
        return LowRank(b.contiguous(), a.contiguous())
    return b @ a


@register("svd")
def svd_variants(vector: WeightVector, ctx: AnalysisContext, settings: None) -> list[Variant]:
    parts: dict[str, dict] = {c: {} for c in CROPS}
    rests: dict[str, dict] = {c: {} for c in CROPS}
    for n in vector:
        d = vector[n]
        if not isinstance(d, LowRank) and d.dim() != 2:
            for c in CROPS:
                parts[c][n] = d
            continue
        u, s, vh = _svd(d)
        every = torch.arange(s.numel())
        for c in CROPS:
            idx = crop_index(s, c)
            rest = every[~torch.isin(every, idx)]
            parts[c][n] = _directions(u, s, vh, idx)
            rests[c][n] = _directions(u, s, vh, rest)
    out = []
    for c in CROPS:
        out.append(
            Variant(
                c,
                WeightVector(parts[c], vector.meta.derived(f"svd {c}")),
                {"kind": "crop", "crop": c},
            )
        )
        out.append(
            Variant(
                f"rest:{c}",
                WeightVector(rests[c], vector.meta.derived(f"svd rest {c}")),
                {"kind": "residual", "crop": c},
            )
        )
    return out
