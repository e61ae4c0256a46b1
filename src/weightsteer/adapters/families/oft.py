"""OFT (Qiu et al., 2023, arXiv 2306.07280): orthogonal fine-tuning.

    W' = R W,   R = blockdiag(R_1, ..., R_k),   R_i = Cayley(Q_i) = (I + Q_i)(I - Q_i)^-1

``rank`` is the OFT block size. dW = (R_pos - R_neg) W is dense; extracted exactly from
the merged weights in float32.
"""

from peft import OFTConfig
from pydantic import Field

from weightsteer.adapters import AdapterSpec, register
from weightsteer.core.config import Section


class OftOptions(Section):
    coft: bool = Field(False, description="constrained OFT: keep R within eps of I")
    eps: float = Field(6e-5, gt=0, description="the constraint's radius (with coft)")


@register(
    "oft",
    OftOptions,
    default_lr=1e-3,
    lowrank=False,
    summary="R W with block-orthogonal R; dW dense, exact from merged weights",
)
def oft_config(spec: AdapterSpec, names: list[str], options: OftOptions) -> OFTConfig:
    return OFTConfig(
        r=0,
        oft_block_size=spec.rank,
        module_dropout=spec.dropout,
        target_modules=names,
        coft=options.coft,
        eps=options.eps,
    )
