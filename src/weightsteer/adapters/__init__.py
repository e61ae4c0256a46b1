"""Adapter families: the recipe of an adapter and the family registry (family.py), one
file per family (families/), training (train.py) and extraction (extract.py)."""

from weightsteer.adapters.family import (
    FAMILIES,
    AdapterSpec,
    Family,
    NoOptions,
    get_family,
    register,
    target_module_names,
)

__all__ = [
    "FAMILIES",
    "AdapterSpec",
    "Family",
    "NoOptions",
    "get_family",
    "register",
    "target_module_names",
]
