"""LoRA (Hu et al., 2021, arXiv 2106.09685).

    W' = W + s * B A,   B: [out, r] (zero init), A: [r, in],   s = alpha / r

Contrast of two LoRA adapters from the same init is exactly low-rank:

    dW = s B_pos A_pos - s B_neg A_neg = [s B_pos, -s B_neg] @ [A_pos; A_neg]   (rank <= 2r)
"""

from peft import LoraConfig

from weightsteer.adapters import Family, register

register(
    Family(
        name="lora",
        default_lr=2e-4,
        lowrank=True,
        summary="W + (alpha/r) B A; dW exact at rank <= 2r",
        build=lambda spec, names: LoraConfig(
            r=spec.rank,
            lora_alpha=spec.alpha,
            lora_dropout=spec.dropout,
            target_modules=names,
            **spec.options,
        ),
    )
)
