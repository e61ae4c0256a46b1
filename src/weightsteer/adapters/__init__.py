"""Adapter families: how each PEFT method is configured for contrastive steering.

A family is a name, a default learning rate, a function ``AdapterSpec -> PeftConfig`` and
two facts the rest of the library needs: whether the trained delta is exactly low-rank
(LoRA, PiSSA: dW is stored as factors) and whether initialising the adapter changes the
base weights it wraps (PiSSA: the trainer restores them afterwards).

Adding a family is one file in ``families/`` with one ``register`` call in it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from weightsteer.core.config import DepthRange
from weightsteer.core.errors import UserError
from weightsteer.core.naming import DEFAULT_TARGETS, layer_index, layer_range
from weightsteer.core.registry import Registry


class AdapterSpec(BaseModel):
    """The recipe of one adapter. Frozen; round-trips through JSON next to the adapter."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: str = Field("lora", description="adapter family (a name in FAMILIES)")
    rank: int = Field(32, ge=1, description="rank r (OFT: block size)")
    alpha: float = Field(64.0, gt=0, description="LoRA-type scaling numerator: scale = alpha / r")
    dropout: float = Field(0.0, ge=0, lt=1, description="adapter dropout")
    targets: tuple[str, ...] = Field(DEFAULT_TARGETS, description="module kinds to adapt")
    layers: DepthRange = Field((0.3, 0.8), description="depth fractions [lo, hi)")
    layer_ids: tuple[int, ...] | None = Field(None, description="explicit layers (overrides)")
    lr: float | None = Field(None, gt=0, description="learning rate (None: family default)")
    warmup_steps: int = Field(5, ge=0, description="linear warmup steps")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    epochs: float = Field(1.0, gt=0, description="passes over the data")
    max_steps: int = Field(-1, description="stop after this many steps (-1: use epochs)")
    batch_size: int = Field(8, ge=1, description="per-device batch size")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    max_length: int = Field(512, ge=8, description="truncate examples to this many tokens")
    seed: int = Field(0, description="seed of the initialisation and the data order")
    options: dict[str, Any] = Field(default_factory=dict, description="family-specific options")

    @field_validator("family")
    @classmethod
    def _known_family(cls, v: str) -> str:
        get_family(v)
        return v

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else get_family(self.family).default_lr


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[[AdapterSpec, list[str]], Any]  # (spec, module names) -> PeftConfig
    default_lr: float
    lowrank: bool  # dW is exactly B @ A from the adapter's factors
    mutates_base: bool = False  # initialisation rewrites the wrapped base weights
    summary: str = ""


FAMILIES: Registry[Family] = Registry(
    "adapter family", "weightsteer.adapters.families", "weightsteer.adapter_families"
)


def register(family: Family) -> Family:
    return FAMILIES.add(family.name, family)


def get_family(name: str) -> Family:
    return FAMILIES.get(name)


def target_module_names(model: torch.nn.Module, spec: AdapterSpec) -> list[str]:
    """Full names of the Linear modules the adapter wraps: ``spec.targets`` in the chosen layers.

    Passing full names (not a regex) works the same for every PEFT family, IA3 included.
    """
    linear = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "." in n}
    indices = [i for i in (layer_index(n) for n in linear) if i is not None]
    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None) or (
        max(indices) + 1 if indices else 0
    )
    chosen = set(
        spec.layer_ids if spec.layer_ids is not None else layer_range(n_layers, *spec.layers)
    )
    names = [n for n in linear if n.rsplit(".", 1)[-1] in spec.targets and layer_index(n) in chosen]
    if not names:
        kinds = sorted({n.rsplit(".", 1)[-1] for n in linear})
        raise UserError(
            f"no Linear module matches targets {list(spec.targets)} in layers {sorted(chosen)}; "
            f"this model's Linear modules are: {', '.join(kinds)}"
        )
    return names
