"""DeLoRA (Bini et al., 2025, arXiv 2503.18225): decoupled low-rank adaptation.

    W' = W + (lambda ||W|| / r) * B diag(1/||b_i|| ||a_i||) A

Direction (normalised B A) and magnitude (the boundary lambda) are learned separately;
the normalisation makes dW dense, extracted exactly from the merged weights. PEFT
documents a learning rate 10-100x that of LoRA, hence the higher default.
"""

from peft import DeloraConfig

from weightsteer.adapters import Family, register


def _config(spec, names):
    opts = dict(spec.options)
    return DeloraConfig(
        r=spec.rank,
        delora_lambda=opts.pop("delora_lambda", 15),
        module_dropout=spec.dropout,
        target_modules=names,
        **opts,
    )


register(
    Family(
        name="delora",
        default_lr=4e-3,
        lowrank=False,
        summary="W + lambda||W||/r * normalised BA; dW dense, exact from merged weights",
        build=_config,
    )
)
