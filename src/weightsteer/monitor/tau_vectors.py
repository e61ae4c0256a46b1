"""Vectors from two fine-tunes' weight changes (the paper's tau vectors): with
``tau_X = theta_X - theta_base``, ``dW = tau_pos - tau_neg = theta_pos - theta_neg`` and
the common mode ``c = tau_pos + tau_neg``. Each fine-tune is a PEFT adapter folder (read
exactly, low rank kept) or a full model folder (read one tensor at a time), in any mix;
tensors a full fine-tune left unchanged are left out."""

from __future__ import annotations

from pathlib import Path

import torch

from weightsteer.core.models import fingerprint
from weightsteer.core.vector import LowRank, VectorMeta, WeightVector
from weightsteer.monitor.checkpoints import finetune_taus


def tau_vectors(
    base: torch.nn.Module,
    pos: str | Path,
    neg: str | Path,
    *,
    model_id: str | None = None,
    behavior: str | None = None,
    progress: bool = False,
    allow_pickle: bool = False,
) -> tuple[WeightVector, WeightVector]:
    """``(dW, c)``: ``tau_pos - tau_neg`` and ``tau_pos + tau_neg`` on ``base``."""
    names = [n for n, _ in base.named_parameters()]
    fp = fingerprint(base, model_id)
    taus = []
    for src in (pos, neg):
        kind, items = finetune_taus(base, src, names, model_id=model_id, progress=progress,
                                    allow_pickle=allow_pickle)  # fmt: skip
        deltas = {n: d for n, d in items if isinstance(d, LowRank) or bool(d.abs().max() > 0)}
        meta = VectorMeta(base=fp, family="tau", behavior=behavior,
                          provenance=[f"tau of {kind} {src}"])  # fmt: skip
        taus.append(WeightVector(deltas, meta))
    return taus[0] - taus[1], taus[0] + taus[1]
