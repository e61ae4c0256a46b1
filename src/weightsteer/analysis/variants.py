"""Where dW lives: causal ablations of a trained vector.

An analysis turns a vector into **variants**: keep one layer, drop a module family, crop
its singular directions, keep only its per-tensor magnitudes, ... Every variant is a
``WeightVector`` on the same base, scored through the ``weight`` intervention on the
run's rows at the full vector's strengths (a fixed alpha, and the strengths the compare
stage calibrated the full vector to), so each answer is a retained effect with a CI on
identical rows (``evals/retained.py``). Random controls are drawn from a
seed (``AnalysisContext.seed`` and the draw number), so they are reproducible.

Adding an analysis is one file in this package: ``@register("name", Config)`` on a
builder ``(vector, context, settings) -> [Variant]``; ``Config`` (or None) is its own
settings, ``[analysis.<name>]`` in a run config. An analysis that reads the run's other
vectors of the same seed says ``needs=("others",)``; the stage then loads them into
``context.others``. Built in: ``layers``, ``modules``, ``cells``
(``layers.py``), ``magdir`` (``magnitude_direction.py``), ``svd`` (``svd.py``: own basis), ``basis``
(``basis.py``: the base weights' basis), ``shared`` (``shared_basis.py``: across families).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import Field, field_validator

from weightsteer.core.config import Section, known_names
from weightsteer.core.registry import Registry
from weightsteer.core.vector import WeightVector

FULL = "full"  # the unchanged vector: every analysis table scores it as the reference


@dataclass(frozen=True)
class Variant:
    name: str  # e.g. "keep:layer2", "drop:mlp", "keep:layer2:random1", "mag_only:0"
    vector: WeightVector
    info: dict[str, Any] = field(default_factory=dict)  # kind, split, fraction, draw


@dataclass
class AnalysisContext:
    """What a builder may use besides the vector: the model it steers (``base``: its
    weights' singular basis; the run's ``model.target`` when it has one), the other
    vectors of the run (``family-seedK`` -> vector), the number of random draws and their
    seed."""

    base: Any = None
    others: dict[str, WeightVector] = field(default_factory=dict)
    draws: int = 2
    seed: int = 0


Builder = Callable[[WeightVector, AnalysisContext, Any], list[Variant]]
ANALYSES: Registry[Builder] = Registry("analysis", "weightsteer.analyses", "weightsteer.analysis")
register = ANALYSES.register


def needs_others(name: str) -> bool:
    """Whether analysis ``name`` reads the run's other vectors (``needs=("others",)``)."""
    return "others" in ANALYSES.entry(name).facts.get("needs", ())


class AnalysisConfig(Section):
    analyses: tuple[str, ...] = Field(
        ("layers", "modules", "magdir"), description="analyses to run (registered names)"
    )
    families: tuple[str, ...] = Field((), description="families analysed (empty: every one)")
    seeds: tuple[int, ...] = Field((0,), description="training seeds whose vectors are analysed")
    suites: tuple[str, ...] = Field(
        (), description="scored suites (names as in the results, e.g. toy:kind-size); empty: all"
    )
    alpha: float = Field(1.0, gt=0, description="fixed strength: variants are scored at ±alpha")
    calibrated: bool = Field(
        True, description="also at the full vector's calibrated ± strengths (compare stage)"
    )
    draws: int = Field(2, ge=1, description="random draws of each random control")
    seed: int = Field(0, description="seed of the random controls")

    @field_validator("analyses")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return known_names(v, "analysis", ANALYSES.get)


def gaussian(shape: tuple[int, ...], seed: int, name: str, draw: int) -> torch.Tensor:
    """A standard Gaussian tensor fixed by (seed, parameter name, draw)."""
    key = hashlib.sha256(f"{seed}/{name}/{draw}".encode()).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(key[:8], "little") % (2**63))
    return torch.randn(shape, generator=gen, dtype=torch.float32)


def scaled(x: torch.Tensor, norm: float) -> torch.Tensor:
    """``x`` rescaled to Frobenius norm ``norm`` (zero stays zero)."""
    n = float(x.norm())
    return x * (norm / n) if n > 0 else x.clone()


def random_matched(vector: WeightVector, names, seed: int, draw: int) -> WeightVector:
    """The norm-matched random control of ``vector`` restricted to ``names``: the same
    tensors with the same per-tensor Frobenius norms, random Gaussian directions."""
    norms = vector.norms()
    deltas = {n: scaled(gaussian(vector.shape(n), seed, n, draw), norms[n]) for n in names}
    return WeightVector(deltas, vector.meta.derived(f"random matched draw {draw}"))


def subset(vector: WeightVector, names, step: str) -> WeightVector:
    """``vector`` with only the tensors in ``names``."""
    keep = set(names)
    return WeightVector(
        {n: d for n, d in vector.deltas.items() if n in keep}, vector.meta.derived(step)
    )


def keep_drop(vector: WeightVector, split: str, names, ctx: AnalysisContext) -> list[Variant]:
    """``keep:<split>`` and ``drop:<split>`` (keep + drop = the vector), and a norm-matched
    random control of the kept part for each draw."""
    names = [n for n in vector if n in set(names)]
    rest = [n for n in vector if n not in set(names)]
    out = [
        Variant(
            f"keep:{split}",
            subset(vector, names, f"keep {split}"),
            {"kind": "keep", "split": split},
        ),
        Variant(
            f"drop:{split}", subset(vector, rest, f"drop {split}"), {"kind": "drop", "split": split}
        ),
    ]
    for d in range(ctx.draws):
        out.append(
            Variant(
                f"keep:{split}:random{d}",
                random_matched(vector, names, ctx.seed, d),
                {"kind": "random", "split": split, "draw": d},
            )
        )
    return out
