"""A family with an option of its own: LoRA whose scaling is a fixed multiple of r.

W' = W + scale * B A    (lora_alpha = scale * r, so alpha / r = scale)
"""

from peft import LoraConfig
from pydantic import Field

from weightsteer.adapters import register
from weightsteer.core.config import Section


class FixedScaleOptions(Section):
    scale: float = Field(2.0, gt=0, description="the delta's scale alpha / r, whatever r is")


@register("fixed_scale", FixedScaleOptions, default_lr=2e-3, lowrank=True)
def fixed_scale_config(spec, names: list[str], options: FixedScaleOptions) -> LoraConfig:
    return LoraConfig(r=spec.rank, lora_alpha=options.scale * spec.rank, target_modules=names)
