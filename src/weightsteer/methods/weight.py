"""Weight steering (Fierro & Roger 2025): ``theta = theta_base + s * dW``.

``dW = theta_pos - theta_neg`` is the difference of two adapters trained on POS and NEG
persona answers (``vector.py``); ``s`` is alpha: +1 adds the whole contrast, negative
values steer toward NEG. Applied by the core ``Steerer``: every switch recomputes the
touched weights from the saved originals in float32, so strength 0 is the base bit for bit.
One candidate per vector of the run (family x seed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from weightsteer.core.served import BASE, ServedAs
from weightsteer.core.vector import WeightVector
from weightsteer.methods import Candidate, Intervention, MethodInputs, SetStrength, register


@dataclass(frozen=True, kw_only=True)
class WeightSteering(Intervention):
    vector: WeightVector
    family: str = ""
    seed: int = 0
    method: str = "weight"
    allow_finetune: bool = False  # steer a fine-tune of the vector's base (same shapes)
    variant: str = ""  # an analysis variant of the vector (``analysis/``)

    def describe(self) -> dict:
        out = super().describe()
        return {**out, "variant": self.variant} if self.variant else out

    def served(self, strength: float) -> ServedAs:
        """A LoRA adapter of ``strength * dW`` (the base at 0)."""
        if strength == 0:
            return BASE
        flat = next((n for n in self.vector if len(self.vector.shape(n)) != 2), None)
        if flat is not None:
            return ServedAs(why_not=f"the {self.family} vector changes {flat}, which a LoRA "
                            "adapter cannot carry")  # fmt: skip
        key = f"{self.method} {self.family} seed {self.seed} {self.variant}".strip()
        return ServedAs(vector=self.vector, strength=float(strength), key=f"{key} #{id(self)}")

    @contextmanager
    def attach(self, model: Any) -> Iterator[SetStrength]:
        from weightsteer.core.steer import Steerer

        with Steerer(model, self.vector, allow_finetune=self.allow_finetune) as steerer:
            yield steerer.set_alpha


def _load(path: Path, family: str, seed: int, finetune: bool) -> WeightSteering:
    return WeightSteering(
        vector=WeightVector.load(path), family=family, seed=seed, allow_finetune=finetune
    )


@register("weight")
def weight_candidates(inputs: MethodInputs, settings: None) -> list[Candidate]:
    from weightsteer.core.files import digest

    return [
        Candidate(
            "weight",
            family,
            seed,
            {"vector": digest(path)},
            partial(_load, path, family, seed, inputs.finetune),
        )
        for (family, seed), path in inputs.vectors.items()
    ]
