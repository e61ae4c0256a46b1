"""The agreement of a weight change tau with dW: cosine, contrast, coef, per tensor,
layer and module (the formulas are in the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from weightsteer.core.param_names import DEFAULT_TARGETS, layer_index, module_kind
from weightsteer.core.vector import Delta, WeightVector, inner


def common_path(vector_path: str | Path) -> Path:
    """Where a run keeps a vector's common mode: ``vectors/common/<same name>``."""
    vector_path = Path(vector_path)
    return vector_path.parent / "common" / vector_path.name


@dataclass(frozen=True)
class Agreement:
    """How a weight change ``tau`` lines up with ``dW`` over a set of tensors.

    With a common-mode vector ``c`` (``theta_pos + theta_neg - 2 theta_base``) the inner
    products with ``c`` are kept too, for the contrast cosine."""

    dot: float  # <tau, dW>
    tau_sq: float  # ||tau||^2
    dw_sq: float  # ||dW||^2
    tensors: int
    tau_c: float = 0.0  # <tau, c>
    dw_c: float = 0.0  # <dW, c>
    c_sq: float = 0.0  # ||c||^2

    @property
    def cosine(self) -> float:
        """NaN when tau or dW is zero there: no direction to compare."""
        return _cos(self.dot, self.tau_sq, self.dw_sq)

    @property
    def contrast(self) -> float:
        """cos(P tau, P dW), P projecting out the common mode c: the cosine with what
        separates POS from NEG, without what training on the pair's data does either way."""
        if self.c_sq <= 0:
            return self.cosine
        return _cos(
            self.dot - self.tau_c * self.dw_c / self.c_sq,
            self.tau_sq - self.tau_c**2 / self.c_sq,
            self.dw_sq - self.dw_c**2 / self.c_sq,
        )

    @property
    def coef(self) -> float:
        return self.dot / self.dw_sq if self.dw_sq > 0 else math.nan

    @property
    def projection(self) -> float:
        return self.dot / math.sqrt(self.dw_sq) if self.dw_sq > 0 else math.nan

    @property
    def tau_norm(self) -> float:
        return math.sqrt(self.tau_sq)

    @property
    def dw_norm(self) -> float:
        return math.sqrt(self.dw_sq)

    @classmethod
    def total(cls, parts: Iterable[Agreement]) -> Agreement:
        parts = list(parts)
        return cls(*(sum(getattr(p, f.name) for p in parts) for f in fields(cls)))


def _cos(dot: float, a_sq: float, b_sq: float) -> float:
    denom = math.sqrt(max(a_sq, 0.0) * max(b_sq, 0.0))
    return dot / denom if denom > 0 else math.nan


def agreements(
    vector: WeightVector,
    taus: Iterable[tuple[str, Delta]],
    common: WeightVector | None = None,
) -> dict[str, Agreement]:
    """Per tensor of ``vector``: <tau, dW>, ||tau||^2, ||dW||^2 and, with a common-mode
    vector, the inner products with it (tensors ``taus`` lacks count as tau = 0).

    Low-rank entries on any side stay factored (``inner`` works on the factors)."""
    c = dict(common.deltas) if common is not None else {}
    dw_sq = {n: v * v for n, v in vector.norms().items()}

    def stats(name: str, tau: Delta | None) -> Agreement:
        dw, cn = vector[name], c.get(name)
        with_c = (
            (inner(tau, cn) if tau is not None else 0.0, inner(dw, cn), inner(cn, cn))
            if cn is not None
            else ()
        )
        if tau is None:
            return Agreement(0.0, 0.0, dw_sq[name], 1, *with_c)
        return Agreement(inner(tau, dw), inner(tau, tau), dw_sq[name], 1, *with_c)

    out = {n: stats(n, None) for n in vector}
    for name, tau in taus:
        if name in out:
            out[name] = stats(name, tau)
    return out


@dataclass(frozen=True)
class MonitorResult:
    """One fine-tune against one vector: per-tensor agreements and their sums."""

    source: str
    kind: str  # "adapter" or "model"
    tensors: dict[str, Agreement]
    common: bool = False  # a common-mode vector was given: ``contrast`` is meaningful

    @property
    def overall(self) -> Agreement:
        return Agreement.total(self.tensors.values())

    @property
    def touched(self) -> int:
        """Tensors of the vector this fine-tune changed."""
        return sum(a.tau_sq > 0 for a in self.tensors.values())

    def by(self, key: str) -> dict[Any, Agreement]:
        """Sums per ``layer`` (block index, None outside blocks) or per ``module`` kind."""
        group = layer_index if key == "layer" else module_kind
        parts: dict[Any, list[Agreement]] = {}
        for name, a in self.tensors.items():
            parts.setdefault(group(name), []).append(a)
        if key == "layer":
            order = sorted(parts, key=lambda k: (k is None, k or 0))
        else:  # projections in the model's order, then anything else by name
            rank = {k: i for i, k in enumerate(DEFAULT_TARGETS)}
            order = sorted(parts, key=lambda k: (rank.get(k, len(rank)), k))
        return {k: Agreement.total(parts[k]) for k in order}

    def rows(self) -> list[dict[str, Any]]:
        """The full table: overall, per layer, per module kind, per tensor."""

        def row(scope: str, a: Agreement, layer=None, module=None, tensor=None) -> dict:
            return {
                "finetuned": self.source,
                "kind": self.kind,
                "scope": scope,
                "layer": layer,
                "module": module,
                "tensor": tensor,
                "tensors": a.tensors,
                "cosine": a.cosine,
                "contrast": a.contrast if self.common else None,
                "coef": a.coef,
                "projection": a.projection,
                "tau_norm": a.tau_norm,
                "dw_norm": a.dw_norm,
                "dot": a.dot,
            }

        out = [row("all", self.overall)]
        out += [row("layer", a, layer=k) for k, a in self.by("layer").items()]
        out += [row("module", a, module=k) for k, a in self.by("module").items()]
        out += [
            row("tensor", a, layer=layer_index(n), module=module_kind(n), tensor=n)
            for n, a in self.tensors.items()
        ]
        return out


# -- reading a fine-tune's change ------------------------------------------------------------
