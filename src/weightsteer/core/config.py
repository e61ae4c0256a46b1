"""What every config section shares: frozen, unknown keys refused, a stable content hash.

Each section lives next to the code that uses it (``ModelConfig`` with model loading,
``TrainConfig`` with training, a suite's config in the suite's file); the pipeline
assembles them into one ``RunConfig``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from weightsteer.core.errors import UserError


class Section(BaseModel):
    """Base of every config section: frozen (derive a new one, never mutate), strict."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def content_key(obj: Any) -> str:
    """Stable short hash of a JSON-able object."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def known_names(names: tuple[str, ...], kind: str, check: Callable[[str], Any]) -> tuple[str, ...]:
    """``names`` without repeats, each accepted by ``check`` (a registry lookup); for a
    field validator, so the message carries the key path."""
    if len(set(names)) != len(names):
        raise ValueError(f"a {kind} is listed twice")
    for name in names:
        try:
            check(name)
        except UserError as e:
            raise ValueError(str(e)) from None
    return names


def _check_depths(v: tuple[float, float]) -> tuple[float, float]:
    if not 0 <= v[0] < v[1] <= 1:
        raise ValueError(f"layers must be two depth fractions 0 <= lo < hi <= 1, got {list(v)}")
    return v


# A ``[lo, hi)`` range of depth fractions (which decoder blocks a field means), checked
DepthRange = Annotated[tuple[float, float], AfterValidator(_check_depths)]
