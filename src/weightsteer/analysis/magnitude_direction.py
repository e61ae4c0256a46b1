"""Magnitude vs direction (the seed fork's DeLoRA study): is it where dW puts its norm, or
which way each tensor points?

- ``dir_only``: every tensor keeps its direction, rescaled to one common Frobenius norm,
  so the total norm is unchanged (``sqrt(T) * c = ||dW||`` for ``T`` tensors).
- ``mag_only:<draw>``: every tensor a random Gaussian direction at its original norm.
- ``random_norm:<draw>``: random directions at the common norm (neither kept).
"""

from __future__ import annotations

import math

from weightsteer.analysis import (
    AnalysisContext,
    Variant,
    gaussian,
    random_matched,
    register,
    scaled,
)
from weightsteer.core.vector import WeightVector


@register("magdir")
def magdir_variants(vector: WeightVector, ctx: AnalysisContext, settings: None) -> list[Variant]:
    names = list(vector)
    common = vector.norm() / math.sqrt(len(names)) if names else 0.0
    direction = {n: scaled(vector.dense(n), common) for n in names}
    out = [
        Variant(
            "dir_only",
            WeightVector(direction, vector.meta.derived("dir_only")),
            {"kind": "dir_only"},
        )
    ]
    for d in range(ctx.draws):
        out.append(
            Variant(
                f"mag_only:{d}",
                random_matched(vector, names, ctx.seed, d),
                {"kind": "mag_only", "draw": d},
            )
        )
        rand = {n: scaled(gaussian(vector.shape(n), ctx.seed + 1, n, d), common) for n in names}
        out.append(
            Variant(
                f"random_norm:{d}",
                WeightVector(rand, vector.meta.derived(f"random_norm {d}")),
                {"kind": "random_norm", "draw": d},
            )
        )
    return out
