"""Adapter families: how each PEFT method is configured for contrastive steering.

A family is one file in ``families/``: a function ``(spec, module names, options) ->
PeftConfig`` under ``@register(name, Options, default_lr=..., lowrank=...)``. ``Options``
is the family's own frozen settings (``[train.<family>]`` in a run config, ``--option
key=value`` on ``weightsteer train``), listed by ``weightsteer config-help``; the facts
are the default learning rate, whether the trained delta is exactly low-rank (LoRA,
PiSSA: dW is stored as factors) and whether initialising the adapter changes the base
weights it wraps (PiSSA: the trainer restores them afterwards).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from weightsteer.core.config import DepthRange, Section
from weightsteer.core.errors import UserError
from weightsteer.core.param_names import DEFAULT_TARGETS, layer_index, layer_range
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
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="the family's own settings that differ from its defaults "
        "(checked against its options class)",
    )

    @field_validator("family")
    @classmethod
    def _known_family(cls, v: str) -> str:
        get_family(v)
        return v

    @field_validator("options")
    @classmethod
    def _known_options(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Checked against the family's options class and kept as the settings that
        differ from its defaults, so one recipe has one spec however it was spelled."""
        if "family" not in info.data:
            return v  # the family was refused already
        family = get_family(info.data["family"])
        try:
            opts = family.options_of(v)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            msg = "unknown option" if err["type"] == "extra_forbidden" else err["msg"]
            raise ValueError(f"{family.name} option {where}: {msg}") from None
        return opts.model_dump(mode="json", exclude_defaults=True)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else get_family(self.family).default_lr

    @property
    def family_options(self) -> Any:
        """The family's typed options: its defaults with ``options`` on top."""
        return get_family(self.family).options_of(self.options)


class NoOptions(Section):
    """A family with no settings of its own."""


@dataclass(frozen=True)
class Family:
    """A registered family, read back from its registry entry."""

    name: str
    build: Callable[..., Any]  # (spec, module names, options) -> PeftConfig
    options: type[BaseModel]
    default_lr: float
    lowrank: bool  # dW is exactly B @ A from the adapter's factors
    mutates_base: bool = False  # initialisation rewrites the wrapped base weights
    summary: str = ""

    def options_of(self, given: dict[str, Any]) -> Any:
        return self.options.model_validate(given)

    def peft_config(self, spec: AdapterSpec, names: Sequence[str]) -> Any:
        return self.build(spec, names, spec.family_options)


FAMILIES: Registry[Callable[..., Any]] = Registry(
    "adapter family", "weightsteer.adapter_families", "weightsteer.adapters.families"
)


def register(
    name: str,
    options: type[Section] | None = None,
    *,
    default_lr: float,
    lowrank: bool,
    mutates_base: bool = False,
    summary: str = "",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@register("lora", LoraOptions, default_lr=2e-4, lowrank=True)`` above a family's
    ``(spec, module names, options) -> PeftConfig``."""
    facts = {
        "default_lr": default_lr,
        "lowrank": lowrank,
        "mutates_base": mutates_base,
        "summary": summary,
    }
    return FAMILIES.register(name, options, **facts)


def get_family(name: str) -> Family:
    entry = FAMILIES.entry(name)
    return Family(name, entry.obj, entry.config or NoOptions, **entry.facts)


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
