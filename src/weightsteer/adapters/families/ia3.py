"""IA3 (Liu et al., 2022, arXiv 2205.05638): learned rescaling of activations.

    attention projections:  W' = diag(l) W        (scales the output)
    feed-forward (down):    W' = W diag(l)         (scales the input)

dW = W'_pos - W'_neg is dense (a rescaled copy of W), extracted exactly from the merged
weights. IA3 has no rank; layers are chosen through the full module names.
"""

from peft import IA3Config
from pydantic import Field

from weightsteer.adapters import AdapterSpec, register
from weightsteer.core.config import Section


class IA3Options(Section):
    feedforward: tuple[str, ...] = Field(
        ("down_proj", "fc2", "c_proj", "w2", "dense_4h_to_h"),
        description="module kinds whose input (not output) is rescaled",
    )


@register(
    "ia3",
    IA3Options,
    default_lr=3e-3,
    lowrank=False,
    summary="learned per-channel scaling; dW dense, exact from merged weights",
)
def ia3_config(spec: AdapterSpec, names: list[str], options: IA3Options) -> IA3Config:
    return IA3Config(
        target_modules=names,
        feedforward_modules=[n for n in names if n.rsplit(".", 1)[-1] in options.feedforward],
    )
