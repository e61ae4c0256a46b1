"""LoRA (Hu et al., 2021, arXiv 2106.09685).

    W' = W + s * B A,   B: [out, r] (zero init), A: [r, in],   s = alpha / r
    (rsLoRA, Kalajdzievski 2023: s = alpha / sqrt(r))

Contrast of two LoRA adapters from the same init is exactly low-rank:

    dW = s B_pos A_pos - s B_neg A_neg = [s B_pos, -s B_neg] @ [A_pos; A_neg]   (rank <= 2r)
"""

from peft import LoraConfig
from pydantic import Field

from weightsteer.adapters import AdapterSpec, register
from weightsteer.core.config import Section


class LoraOptions(Section):
    use_rslora: bool = Field(False, description="rank-stabilised scaling alpha / sqrt(r)")


@register(
    "lora",
    LoraOptions,
    default_lr=2e-4,
    lowrank=True,
    summary="W + (alpha/r) B A; dW exact at rank <= 2r",
)
def lora_config(spec: AdapterSpec, names: list[str], options: LoraOptions) -> LoraConfig:
    return LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,  # type: ignore[arg-type]  # a float scale, as PEFT uses it
        lora_dropout=spec.dropout,
        target_modules=names,
        use_rslora=options.use_rslora,
    )
