"""IA3 (Liu et al., 2022, arXiv 2205.05638): learned rescaling of activations.

    attention projections:  W' = diag(l) W        (scales the output)
    feed-forward (down):    W' = W diag(l)         (scales the input)

dW = W'_pos - W'_neg is dense (a rescaled copy of W), extracted exactly from the merged
weights. IA3 has no rank; layers are chosen through the full module names.
"""

from peft import IA3Config

from weightsteer.adapters import Family, register

FEEDFORWARD = ("down_proj", "fc2", "c_proj", "w2", "dense_4h_to_h")


def _config(spec, names):
    opts = dict(spec.options)
    ff_kinds = tuple(opts.pop("feedforward", FEEDFORWARD))
    return IA3Config(
        target_modules=names,
        feedforward_modules=[n for n in names if n.rsplit(".", 1)[-1] in ff_kinds],
        **opts,
    )


register(
    Family(
        name="ia3",
        default_lr=3e-3,
        lowrank=False,
        summary="learned per-channel scaling; dW dense, exact from merged weights",
        build=_config,
    )
)
