"""What every report table shares, for the report and for suites that add their own
tables: a scored intervention's name, a value with its interval, and the one table of
capability measures (how each is named, printed and read)."""

from __future__ import annotations

import math
from dataclasses import dataclass


def label(method: str, family: str) -> str:
    """How a scored intervention is named in tables: its family for weight vectors."""
    return family if method == "weight" and family else f"{method}:{family}" if family else method


def ci_cell(v: float, lo: float, hi: float, fmt: str = "+.2f") -> str:
    """``v [lo, hi]`` (``–`` for NaN; no interval when ``lo`` is NaN)."""
    if math.isnan(v):
        return "–"
    band = "" if math.isnan(lo) else f" [{lo:{fmt}}, {hi:{fmt}}]"
    return f"{v:{fmt}}{band}"


@dataclass(frozen=True)
class Measure:
    """A capability suite's per-row ``value`` (``Suite.measure``)."""

    name: str  # its table header
    fmt: str  # its value's format
    delta_fmt: str  # its paired change's format
    unit: str  # what an axis calls it
    higher_is_better: bool


MEASURES = {
    "accuracy": Measure("accuracy", ".0%", "+.1%", "accuracy", True),
    "nll": Measure("NLL (nat/token)", ".3f", "+.3f", "mean token NLL", False),
}


def measure(name: str) -> Measure:
    """The measure ``name`` (an unknown one is printed plainly, lower taken as better)."""
    return MEASURES.get(name, Measure(name, ".3f", "+.3f", name, False))
