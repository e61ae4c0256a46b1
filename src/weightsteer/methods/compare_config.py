"""The ``[compare]`` section: which methods are compared, at which KL budgets, measured
how and on which prompts (``calibrate.py`` searches the strengths, ``calibration_prompts.py``
picks the prompts)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator

from weightsteer.core.config import Section, known_names


class CompareConfig(Section):
    """The ``[compare]`` section; the pipeline adds one sub-section per method with
    settings of its own (``[compare."act:pca"]``)."""

    methods: tuple[str, ...] = Field(
        (
            "weight",
            "prompt:simple",
            "prompt:engineered",
            "prompt:dosed",
            "act:mean_diff",
            "act:pca",
            "act:directional_ablation",
            "act:spherical",
            "act:random",
        ),
        description="interventions compared at the same KL ([]: skip the compare stage; "
        "configs/roster.toml lists every one)",
    )
    target_kl: float = Field(
        0.25, gt=0, description="the verdict's KL budget (nats, of the statistic); always one "
        "of the budgets"
    )  # fmt: skip
    budgets: tuple[float, ...] = Field(
        (0.1, 0.25, 0.5),
        description="KL budgets (nats) every method is calibrated to, each side separately",
    )
    statistic: Literal["mean", "quantile"] = Field(
        "mean", description="what the per-token KLs of all calibration prompts are reduced "
        "to: their mean (holds on other prompts) or their `quantile` (the seeds' p95 at "
        "1 nat; it can move 2x between two prompt sets)"
    )  # fmt: skip
    quantile: float = Field(
        0.95, gt=0, le=1, description="the per-token KL quantile of statistic = quantile"
    )
    tokens: int = Field(20, ge=1, description="greedy tokens generated per calibration prompt")
    tolerance: float = Field(0.1, gt=0, lt=1, description="relative tolerance on the calibrated KL")
    continuations: Literal["unsteered", "steered"] = Field(
        "unsteered", description="the tokens the KL is measured on: the unsteered model's "
        "greedy continuation (the same at every strength: the KL is continuous in it) or the "
        "intervention's own (jumps where a greedy token flips)"
    )  # fmt: skip
    audit_factor: float | None = Field(
        1.5, ge=1, description="a side is at its budget only when its KL on the audit prompts "
        "is within this factor of the budget too (none: no such check)"
    )  # fmt: skip
    max_evals: int = Field(16, ge=2, description="KL measurements per strength search")
    prompts: str = Field(
        "auto",
        description="calibration prompts: auto (the question source's own, e.g. toyworld "
        "rows, else builtin:chat-prompts), a file or hf: id with a prompt column",
    )
    column: str = Field("prompt", description="column holding the calibration prompts")
    hf_split: str = Field("train", description="split of an hf: source")
    n_calibration: int = Field(64, ge=1, description="prompts the strength is searched on")
    n_audit: int = Field(64, ge=0, description="other prompts the achieved KL is checked on")
    batch_size: int = Field(48, ge=1, description="prompts generated together")

    @field_validator("target_kl")
    @classmethod
    def _target(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("target_kl must be a finite number of nats")
        return v

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or not all(math.isfinite(b) and b > 0 for b in v):
            raise ValueError("every budget must be a positive finite number of nats")
        return tuple(sorted(set(v)))

    @property
    def all_budgets(self) -> tuple[float, ...]:
        """``budgets`` with ``target_kl`` (the verdict's), ascending."""
        return tuple(sorted({*self.budgets, self.target_kl}))

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from weightsteer.methods import check_method

        return known_names(v, "method", check_method)


def statistic_name(compare: dict) -> str:
    """A run's KL statistic in words, from its recorded ``[compare]`` (a dict): "mean
    per-token KL" or "p95 per-token KL". A record without ``statistic`` comes from a version
    that knew only the quantile."""
    if compare.get("statistic", "quantile") == "mean":
        return "mean per-token KL"
    return f"p{compare.get('quantile', 0.95) * 100:g} per-token KL"
