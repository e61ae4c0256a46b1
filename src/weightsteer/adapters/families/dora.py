"""DoRA (Liu et al., 2024, arXiv 2402.09353): weight-decomposed low-rank adaptation.

    W' = m * (W + s B A) / ||W + s B A||_c      (column norm, m: [out] learned magnitude)

The normalisation makes W' non-linear in (B, A), so dW = W'_pos - W'_neg is dense: it is
extracted exactly, module by module, from the merged weights in float32.
"""

from peft import LoraConfig

from weightsteer.adapters import AdapterSpec, register
from weightsteer.adapters.families.lora import LoraOptions


@register(
    "dora",
    LoraOptions,
    default_lr=2e-4,
    lowrank=False,
    summary="m (W + sBA)/||W + sBA||; dW dense, exact from merged weights",
)
def dora_config(spec: AdapterSpec, names: list[str], options: LoraOptions) -> LoraConfig:
    return LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,  # type: ignore[arg-type]  # a float scale, as PEFT uses it
        lora_dropout=spec.dropout,
        target_modules=names,
        use_dora=True,
        use_rslora=options.use_rslora,
    )
