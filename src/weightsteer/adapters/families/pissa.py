"""PiSSA (Meng et al., 2024, arXiv 2404.02948): LoRA initialised on principal singular vectors.

    W = W_res + s B0 A0     (B0 A0: top-r SVD part of W; ``niter`` > 0: randomised SVD)
    W' = W_res + s B A

Initialisation rewrites the base (W -> W_res); the trainer restores it afterwards and
saves the adapter converted for the original base (PEFT's rank-2r form
[B, -B0] @ [A; A0]). With POS and NEG from the same init, the shared -s B0 A0 components
cancel exactly in pos - neg, leaving

    dW = s (B_pos A_pos - B_neg A_neg)   (rank <= 2r)
"""

from peft import LoraConfig
from pydantic import Field

from weightsteer.adapters import AdapterSpec, register
from weightsteer.core.config import Section


class PissaOptions(Section):
    niter: int = Field(
        4, ge=0, description="subspace iterations of the randomised SVD (0: the exact SVD)"
    )


@register(
    "pissa",
    PissaOptions,
    default_lr=2e-4,
    lowrank=True,
    mutates_base=True,
    summary="LoRA on the top-r SVD of W; dW exact at rank <= 2r",
)
def pissa_config(spec: AdapterSpec, names: list[str], options: PissaOptions) -> LoraConfig:
    return LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,  # type: ignore[arg-type]  # a float scale, as PEFT uses it
        lora_dropout=spec.dropout,
        target_modules=names,
        # PEFT's type lists "pissa_niter_[number of iters]" literally
        init_lora_weights=f"pissa_niter_{options.niter}" if options.niter else "pissa",  # type: ignore[arg-type]
    )
