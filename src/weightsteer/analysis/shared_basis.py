"""Do the adapter families find the same thing? A basis they share, per tensor.

Per tensor, the deltas of every analysed vector that has it, each scaled to unit
Frobenius norm, side by side: ``[dW_1 | dW_2 | ...]`` (``m x sum n``). Its top-``K``
left singular directions ``U`` (``K = [analysis.shared] rank``, at most its rank) are the shared
output directions. ``keep_shared = U Uᵀ dW`` and ``drop_shared = dW - keep_shared``
(they sum to dW); ``keep_random:<draw>`` projects onto a random orthonormal basis of the
same size (the null). The basis of one vector with itself, at ``K`` >= its rank, keeps
all of it.
"""

from __future__ import annotations

import torch
from pydantic import Field

from weightsteer.analysis import AnalysisContext, Variant, gaussian, register
from weightsteer.core.config import Section
from weightsteer.core.vector import WeightVector


def shared_basis(deltas: list[torch.Tensor], k: int) -> torch.Tensor:
    """The top-``k`` left singular directions of the unit-norm deltas side by side."""
    stacked = torch.cat([d.double() / max(float(d.norm()), 1e-30) for d in deltas], dim=1)
    u, s, _ = torch.linalg.svd(stacked, full_matrices=False)
    r = int((s > s[0] * 1e-9).sum()) if s.numel() and s[0] > 0 else 0
    return u[:, : min(k, r)]


class SharedConfig(Section):
    rank: int = Field(16, ge=1, description="shared-basis directions kept per tensor")


# needs the other families' vectors of the same seed (AnalysisContext.others)
@register("shared", SharedConfig, needs=("others",))
def shared_variants(
    vector: WeightVector, ctx: AnalysisContext, settings: SharedConfig
) -> list[Variant]:
    others = list(ctx.others.values()) or [vector]
    keep, drop = {}, {}
    randoms: list[dict] = [{} for _ in range(ctx.draws)]
    for n in vector:
        dw = vector.dense(n)
        if dw.dim() != 2:  # no output directions to share: all of it is "not shared"
            drop[n] = dw
            continue
        u = shared_basis([o.dense(n) for o in others if n in o.deltas], settings.rank)
        kept = (u @ (u.T @ dw.double())).float()
        keep[n], drop[n] = kept, dw - kept
        for d in range(ctx.draws):
            g = gaussian((dw.shape[0], u.shape[1]), ctx.seed, n, d).double()
            q, _ = torch.linalg.qr(g)
            randoms[d][n] = (q @ (q.T @ dw.double())).float()
    meta = vector.meta
    out = [
        Variant("keep_shared", WeightVector(keep, meta.derived("keep shared")), {"kind": "keep"}),
        Variant("drop_shared", WeightVector(drop, meta.derived("drop shared")), {"kind": "drop"}),
    ]
    for d, r in enumerate(randoms):
        out.append(
            Variant(
                f"keep_random:{d}",
                WeightVector(r, meta.derived(f"random basis {d}")),
                {"kind": "random", "draw": d},
            )
        )
    return out


def subspace_overlap(a: WeightVector, b: WeightVector, k: int = 8) -> float:
    """Mean over the tensors both vectors change of the mean cosine of the principal
    angles between their top-``k`` output subspaces (1: the same directions, 0:
    orthogonal; 1-D tensors are skipped)."""
    values = []
    for n in a.deltas.keys() & b.deltas.keys():
        x, y = a.dense(n), b.dense(n)
        if x.dim() != 2:
            continue
        ua, sa, _ = torch.linalg.svd(x.double(), full_matrices=False)
        ub, sb, _ = torch.linalg.svd(y.double(), full_matrices=False)
        ra = int((sa > sa[0] * 1e-9).sum()) if sa[0] > 0 else 0
        rb = int((sb > sb[0] * 1e-9).sum()) if sb[0] > 0 else 0
        m = min(k, ra, rb)
        if m:
            cosines = torch.linalg.svdvals(ua[:, :m].T @ ub[:, :m])
            values.append(float(cosines.clamp(max=1.0).mean()))
    return sum(values) / len(values) if values else float("nan")


def cosine_rows(vectors: dict[str, WeightVector]) -> list[dict]:
    """The cosine of every ordered pair of vectors: overall (``scope`` all, with the
    principal-angle ``overlap`` of their per-tensor subspaces), per layer and per module
    kind."""
    from weightsteer.core.param_names import layer_index, module_kind

    names = sorted(vectors)
    layers = sorted({i for v in vectors.values() for n in v if (i := layer_index(n)) is not None})
    kinds = sorted({module_kind(n) for v in vectors.values() for n in v})
    rows = []
    for a in names:
        for b in names:
            va, vb = vectors[a], vectors[b]
            rows.append(
                {
                    "a": a,
                    "b": b,
                    "scope": "all",
                    "cosine": 1.0 if a == b else va.cosine(vb),
                    "overlap": 1.0 if a == b else subspace_overlap(va, vb),
                }
            )
            for i in layers:
                rows.append(
                    {
                        "a": a,
                        "b": b,
                        "scope": f"layer {i}",
                        "overlap": float("nan"),
                        "cosine": va.restrict(layers=[i]).cosine(vb.restrict(layers=[i])),
                    }
                )
            for kind in kinds:
                ra, rb = va.restrict(modules=[kind]), vb.restrict(modules=[kind])
                rows.append(
                    {
                        "a": a,
                        "b": b,
                        "scope": kind,
                        "overlap": float("nan"),
                        "cosine": ra.cosine(rb),
                    }
                )
    return rows
