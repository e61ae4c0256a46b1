"""Directional ablation plus addition (Arditi et al. 2024 ablate a direction; adding it
back at a chosen strength makes it a steering method).

Per hooked layer, with the mean difference ``v_l`` of ``act:mean_diff`` and its unit
direction ``u_l = v_l / |v_l|``::

    h_l <- h_l - (h_l . u_l) u_l + s * v_l      at every position, for s != 0

The model's own component along the behaviour direction is removed and replaced by
``s`` times the mean difference. Strength 0 is off (the unchanged model), so the
intervention jumps at 0 (``jumps_at_zero``): a small ``|s|`` is the ablation alone, whose
KL is the floor a calibration can reach; calibration measures it first and reports a
budget below it as ``above floor``, without a search.
"""

from __future__ import annotations

from weightsteer.methods import Candidate, MethodInputs, register
from weightsteer.methods.activation import (
    ActivationConfig,
    ActivationSteering,
    States,
    activation_candidate,
)
from weightsteer.methods.mean_diff import mean_difference


@register("act:directional_ablation", ActivationConfig)
def directional_ablation_candidates(inputs: MethodInputs, cfg: ActivationConfig) -> list[Candidate]:
    def build(h: States, layers: list[int]) -> ActivationSteering:
        v = mean_difference(h["pos"], h["neg"])  # [layers, hidden]
        unit = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return ActivationSteering(
            method="act:directional_ablation",
            vectors=dict(zip(layers, v, strict=True)),
            ablate=dict(zip(layers, unit, strict=True)),
            position=cfg.position,
        )

    return activation_candidate("act:directional_ablation", inputs, cfg, build)
