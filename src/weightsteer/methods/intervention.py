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
calibration search or a sweep costs only the forwards. Evals (``evals/score_intervention.py``),
calibration (``calibrate.py``) and reports see nothing but this contract.

Methods are a registry: ``@register("act:pca", PcaConfig)`` on a builder
``(inputs, settings) -> [Candidate]`` that turns the run's inputs (``MethodInputs``) and
the method's own frozen settings (``[compare."act:pca"]`` in a run config; listed by
``weightsteer config-help``) into interventions. A method whose inputs can be checked
before any model loads says so with ``check=fn`` (``fn(persona pair, run config)``;
raises ``UserError``). Adding a method is one file in this package. A method's strength sign is
fixed by its training pairs (POS minus NEG), never by eval rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weightsteer.core.config import entry_settings
from weightsteer.core.registry import Registry
from weightsteer.core.served import BASE, ServedAs

SetStrength = Callable[[float], None]


class Intervention:
    """Base class: no system prompt, no change to the model (the no-op)."""

    method: str = "none"
    family: str = ""  # weight steering: the adapter family
    seed: int = 0
    # True: only the sign of the strength means anything (a prompt is on or off);
    # calibration then measures the KL at +1 and -1 instead of searching.
    discrete: bool = False
    # True: strength 0 is the unchanged model but any other strength includes a part that
    # does not shrink with it (an ablation), so the KL has a floor above 0; calibration
    # measures it first (``calibrate.py``).
    jumps_at_zero: bool = False
    # the strength beyond which nothing changes (a rotation all the way to its target):
    # calibration searches no further
    max_strength: float = 2.0**10

    def system_prompt(self, strength: float) -> str | None:
        return None

    def attach(self, model: Any) -> AbstractContextManager[SetStrength]:
        return _unchanged()

    def served(self, strength: float) -> ServedAs:
        """How a vLLM server gives this intervention at ``strength`` (``core/served.py``):
        the base model at 0; any other strength changes activations, which stock vLLM
        cannot (its answers are then generated in this process)."""
        if strength == 0:
            return BASE
        return ServedAs(why_not=f"{self.method} steers activations, which stock vLLM cannot")

    def describe(self) -> dict[str, Any]:
        """What a results table records about the intervention."""
        return {"method": self.method, "family": self.family, "seed": self.seed}

    def save(self, path: Path) -> Path | None:
        """Write what was fitted (activation directions) to ``path``; None: nothing to keep."""
        return None


@contextmanager
def _unchanged() -> Iterator[SetStrength]:
    yield lambda strength: None


NONE = Intervention()


@dataclass
class MethodInputs:
    """What methods are built from: the model, the persona pair, the POS/NEG pairs the
    weight vectors were trained on, the vectors, and the compare settings (the
    ``[compare]`` section, with each method's own sub-section)."""

    model: Any
    tokenizer: Any
    pair: Any  # personas.PersonaPair
    pairs: dict[str, list[dict]]  # side -> pairs-file records
    vectors: dict[tuple[str, int], Path]  # (family, seed) -> vector file
    layers: list[int]  # decoder blocks hooked by default (the adapters' layers)
    settings: Any  # config.CompareConfig
    pairs_digest: str = ""  # content hash of the pairs (cache keys)
    progress: bool = False
    seeds: tuple[int, ...] = (0,)  # the training seeds: fitted methods refit once per seed
    finetune: bool = False  # the model is a fine-tune of the vectors' base (model.target)
    # what several methods fit alike (hidden states by layers and position), made once
    shared: dict[Any, Any] = field(default_factory=dict)

    def settings_of(self, method: str) -> Any:
        """``method``'s own settings in this compare section (its defaults if absent)."""
        return entry_settings(self.settings, METHODS, method)


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
        elif "resample_seed" in self.sources or "direction_seed" in self.sources:
            parts.append(f"seed{self.seed}")
        return "-".join(parts)


Builder = Callable[[MethodInputs, Any], list[Candidate]]
METHODS: Registry[Builder] = Registry("method", "weightsteer.methods", "weightsteer.methods")
register = METHODS.register


def check_method(name: str) -> None:
    METHODS.get(name)


def check_methods(names: Sequence[str], pair: Any, run: Any) -> None:
    """What each method can check before a model loads (``check=`` at registration):
    ``check(pair, run)`` with the persona pair and the run's config."""
    for name in names:
        check = METHODS.entry(name).facts.get("check")
        if check is not None:
            check(pair, run)


def candidates(names: Sequence[str], inputs: MethodInputs) -> list[Candidate]:
    """The interventions ``names`` stand for (``weight``: one per vector)."""
    out = []
    for name in names:
        out += METHODS.get(name)(inputs, inputs.settings_of(name))
    return out
