"""Interventions: one contract for weight, prompt and activation steering.

An intervention at strength ``s`` is

* a system prompt put before the chat (``system_prompt(s)``; ``None``: none), and
* a change to the model: ``attach(model)`` is a context manager yielding
  ``set_strength(s)``. Strength 0 is always the unchanged model bit for bit, and
  ``system_prompt(0)`` is ``None``: scores and log-probs at 0 are the unsteered model's,
  shared by every method (eval and calibration reuse them); leaving the context
  undoes every change exactly (weights restored bit for bit, hooks removed), also when
  the body raised.

Switching strength inside one ``attach`` never reloads or copies the model, so a
calibration search or a sweep costs only the forwards. Evals (``evals/evaluate.py``),
calibration (``calibrate.py``) and reports see nothing but this contract.

Methods are a registry: ``@register("act:pca")`` on a builder that turns the run's inputs
(``MethodInputs``) into ``Candidate`` interventions. Adding a method is one file in this
package. A method's strength sign is fixed by its training pairs (POS minus NEG), never
by eval rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from weightsteer.core.registry import Registry

SetStrength = Callable[[float], None]


class Intervention:
    """Base class: no system prompt, no change to the model (the no-op)."""

    method: str = "none"
    family: str = ""  # weight steering: the adapter family
    seed: int = 0
    # True: only the sign of the strength means anything (a prompt is on or off);
    # calibration then measures the KL at +1 and -1 instead of searching.
    discrete: bool = False

    def system_prompt(self, strength: float) -> str | None:
        return None

    def attach(self, model) -> AbstractContextManager[SetStrength]:
        return _unchanged()

    def describe(self) -> dict[str, Any]:
        """What a results table records about the intervention."""
        return {"method": self.method, "family": self.family, "seed": self.seed}


@contextmanager
def _unchanged() -> Iterator[SetStrength]:
    yield lambda strength: None


NONE = Intervention()


@dataclass
class MethodInputs:
    """What methods are built from: the model, the persona pair, the POS/NEG pairs the
    weight vectors were trained on, the vectors, and the compare settings."""

    model: Any
    tokenizer: Any
    pair: Any  # personas.PersonaPair
    pairs: dict[str, list[dict]]  # side -> pairs-file records
    vectors: dict[tuple[str, int], Path]  # (family, seed) -> vector file
    layers: list[int]  # decoder blocks activation methods hook
    settings: Any  # config.CompareConfig
    pairs_digest: str = ""  # content hash of the pairs (cache keys)
    progress: bool = False
    seeds: tuple[int, ...] = (0,)  # the training seeds: fitted methods refit once per seed
    finetune: bool = False  # the model is a fine-tune of the vectors' base (model.target)

    @cached_property
    def hidden_states(self):
        """``{side: [pairs, layers, hidden]}`` float32 states of the training pairs, fitted
        once and shared by every activation method."""
        from weightsteer.methods.activation import collect_hidden_states

        return collect_hidden_states(
            self.model,
            self.tokenizer,
            self.pairs,
            self.layers,
            position=self.settings.activation.position,
            batch_size=self.settings.activation.batch_size,
            progress=self.progress,
        )


@dataclass(frozen=True)
class Candidate:
    """An intervention not yet built: its name, what it is made from (JSON-able; part of
    the cache key of its results) and how to build it."""

    method: str
    family: str
    seed: int
    sources: dict[str, Any]
    build: Callable[[], Intervention]

    @property
    def slug(self) -> str:
        parts = [self.method.replace(":", "-")]
        if self.family:
            parts.append(f"{self.family}-seed{self.seed}")
        elif "resample_seed" in self.sources:
            parts.append(f"seed{self.seed}")
        return "-".join(parts)


Builder = Callable[[MethodInputs], list[Candidate]]
METHODS: Registry[Builder] = Registry("method", "weightsteer.methods")
register = METHODS.register


def check_method(name: str) -> None:
    METHODS.get(name)


def candidates(names: Sequence[str], inputs: MethodInputs) -> list[Candidate]:
    """The interventions ``names`` stand for (``weight``: one per vector)."""
    out = []
    for name in names:
        out += METHODS.get(name)(inputs)
    return out
