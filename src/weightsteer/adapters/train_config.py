"""The ``[train]`` section: which families and seeds, and the recipe they share. A
family's own options: ``[train.<family>]``; per-family recipe changes:
``[train.overrides.<family>]``."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from weightsteer.adapters import FAMILIES, AdapterSpec, get_family
from weightsteer.core.config import DepthRange, Section, entry_settings, known_names
from weightsteer.core.param_names import DEFAULT_TARGETS


class TrainConfig(Section):
    families: tuple[str, ...] = Field(("lora",), description="adapter families to train")
    seeds: tuple[int, ...] = Field((0,), description="one POS/NEG adapter pair per seed")
    rank: int = Field(32, ge=1, description="adapter rank (OFT: block size)")
    alpha: float = Field(64.0, gt=0, description="LoRA-type scaling numerator")
    lr: float | None = Field(None, gt=0, description="learning rate (default: the family's)")
    epochs: float = Field(1.0, gt=0, description="passes over the pairs")
    batch_size: int = Field(8, ge=1, description="training batch size")
    layers: DepthRange = Field((0.3, 0.8), description="depth fractions [lo, hi)")
    targets: tuple[str, ...] = Field(DEFAULT_TARGETS, description="module kinds to adapt")
    max_length: int = Field(512, ge=8, description="truncate examples to this many tokens")
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per-family AdapterSpec fields, e.g. [train.overrides.oft]",
    )

    @field_validator("families")
    @classmethod
    def _families(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("list at least one family")
        return known_names(v, "family", get_family)

    @model_validator(mode="after")
    def _specs_build(self) -> TrainConfig:
        for fam in self.overrides:
            if fam not in self.families:
                raise ValueError(f"overrides for {fam!r}, which is not in families")
        for fam in self.families:
            self.spec(fam, self.seeds[0] if self.seeds else 0)
        return self

    def spec(self, family: str, seed: int) -> AdapterSpec:
        """The adapter recipe of one family and seed."""
        common = self.model_dump(
            include=set(TrainConfig.model_fields) - {"families", "seeds", "overrides"}
        )
        override = self.overrides.get(family, {})
        own = entry_settings(self, FAMILIES, family)  # [train.<family>]
        options = {
            **own.model_dump(mode="json", exclude_defaults=True),
            **override.get("options", {}),
        }
        fields = {**common, **override, "options": options, "family": family, "seed": seed}
        try:
            return AdapterSpec(**fields)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            msg = "unknown adapter setting" if err["type"] == "extra_forbidden" else err["msg"]
            msg = msg.removeprefix("Value error, ")
            raise ValueError(f"overrides.{family}.{where}: {msg}") from None
