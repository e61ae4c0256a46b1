"""DeLoRA (Bini et al., 2025, arXiv 2503.18225): decoupled low-rank adaptation.

    W' = W + (lambda ||W|| / r) * B diag(1/||b_i|| ||a_i||) A

Direction (normalised B A) and magnitude (the boundary lambda) are learned separately;
the normalisation makes dW dense, extracted exactly from the merged weights. PEFT
documents a learning rate 10-100x that of LoRA, hence the higher default.
"""

from peft import DeloraConfig
from pydantic import Field

from weightsteer.adapters import AdapterSpec, register
from weightsteer.core.config import Section


class DeloraOptions(Section):
    delora_lambda: int = Field(
        15, gt=0, description="initial boundary lambda: how far from W the delta may go"
    )


@register(
    "delora",
    DeloraOptions,
    default_lr=4e-3,
    lowrank=False,
    summary="W + lambda||W||/r * normalised BA; dW dense, exact from merged weights",
)
def delora_config(spec: AdapterSpec, names: list[str], options: DeloraOptions) -> DeloraConfig:
    return DeloraConfig(
        r=spec.rank,
        delora_lambda=options.delora_lambda,
        module_dropout=spec.dropout,
        target_modules=names,
    )
