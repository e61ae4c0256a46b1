"""A method with a knob of its own: the mean difference of the hidden states, times a gain.

v_l = gain * (mean h_l(pos) - mean h_l(neg));   h_l <- h_l + s * v_l
"""

from pydantic import Field

from weightsteer.methods import register
from weightsteer.methods.activation import (
    ActivationConfig,
    ActivationSteering,
    activation_candidate,
)


class GainConfig(ActivationConfig):
    gain: float = Field(0.5, gt=0, description="multiplies the mean difference")


@register("act:gain", GainConfig)
def gain_candidates(inputs, cfg: GainConfig):
    def build(h, layers):
        v = cfg.gain * (h["pos"].mean(0) - h["neg"].mean(0))  # [layers, hidden]
        return ActivationSteering(
            method="act:gain", vectors=dict(zip(layers, v, strict=True)), position=cfg.position
        )

    return activation_candidate("act:gain", inputs, cfg, build)
