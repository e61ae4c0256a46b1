"""Steer a model in place: theta = theta_base + alpha * dW, undone bit-exactly.

    with steer(model, vector, alpha=1.0):
        ...                                # steered
    # weights are bit-identical to before, also after an exception

    with Steerer(model, vector) as s:      # sweeps: switch alpha without reloading
        for a in (-1, 0, 1):
            s.set_alpha(a)

Every switch recomputes ``orig.float() + alpha * dW`` in float32 from the saved original
and casts once to the model's dtype, so no rounding accumulates over switches and
alpha = 0 is the original tensor itself. Low-rank deltas are densified one tensor at a
time, on the parameter's device.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from weightsteer.core.errors import UserError
from weightsteer.core.models import Fingerprint, fingerprint, is_half, same_weights
from weightsteer.core.vector import WeightVector


def check_compatible(
    model: torch.nn.Module,
    vector: WeightVector,
    *,
    allow_finetune: bool = False,
    model_fp: Fingerprint | None = None,
) -> None:
    """Refuse a vector that does not belong to ``model``, naming the first mismatch."""
    params = dict(model.named_parameters())
    base = vector.meta.base
    for name in vector:
        if name not in params:
            raise UserError(
                f"the vector changes {name}, which this model does not have; the vector was "
                f"made for {base.model_id} ({base.architecture})"
            )
        if tuple(params[name].shape) != vector.shape(name):
            raise UserError(
                f"{name} has shape {tuple(params[name].shape)} in this model but "
                f"{vector.shape(name)} in the vector (made for {base.model_id})"
            )
    fp = model_fp or fingerprint(model)
    if fp.architecture != base.architecture:
        raise UserError(
            f"the vector was made for a {base.architecture} ({base.model_id}), "
            f"this model is a {fp.architecture}"
        )
    if fp.shapes_hash != base.shapes_hash:
        raise UserError(
            f"this model's parameter layout differs from the vector's base {base.model_id} "
            f"(shapes hash {fp.shapes_hash} vs {base.shapes_hash})"
        )
    if not same_weights(fp, base, half=is_half(model)) and not allow_finetune:
        raise UserError(
            f"this model's weights differ from the vector's base {base.model_id}; if it is a "
            "fine-tune of that base, pass --allow-finetune (steer, monitor; allow_finetune=True), "
            "or name it as the target: eval --model BASE --target IT, model.target in a run"
        )


class Steerer:
    """Holds a model steered by ``alpha * vector``; ``restore()`` or exit undoes it exactly.

    The originals of the touched parameters are kept (a clone each, in the model's dtype;
    ``offload=True`` keeps them on the CPU to save accelerator memory).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        vector: WeightVector,
        *,
        allow_finetune: bool = False,
        offload: bool = False,
    ):
        params = dict(model.named_parameters())
        offloaded = [n for n in vector if n in params and params[n].device.type == "meta"]
        if offloaded:
            raise UserError(
                f"{len(offloaded)} of the vector's parameters (first: {offloaded[0]}) are "
                "offloaded by the device_map (to disk or CPU, loaded only during a forward); "
                "steering changes weights in place, so load the model with room on the "
                "devices for every steered layer"
            )
        check_compatible(model, vector, allow_finetune=allow_finetune)
        self.model = model
        self.vector = vector
        self._params = {n: params[n] for n in vector}
        self._originals = {
            n: p.detach().to("cpu" if offload else p.device, copy=True)
            for n, p in self._params.items()
        }
        self.alpha = 0.0

    @torch.no_grad()
    def set_alpha(self, alpha: float) -> None:
        """Set theta = theta_base + alpha * dW for every touched parameter."""
        alpha = float(alpha)
        if not math.isfinite(alpha):
            raise UserError(f"alpha must be a finite number, got {alpha}")
        self.alpha = alpha  # set first: a failure part-way still restores on exit
        for name, param in self._params.items():
            orig = self._originals[name]
            if alpha == 0.0:
                param.copy_(orig)
                continue
            delta = self.vector.dense(name).to(param.device)  # float32
            steered = orig.to(param.device, torch.float32) + alpha * delta
            param.copy_(steered.to(param.dtype))

    def restore(self) -> None:
        """Put back the original weights, bit for bit."""
        self.set_alpha(0.0)

    def __enter__(self) -> Steerer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()


@contextmanager
def steer(
    model: torch.nn.Module,
    vector: WeightVector,
    alpha: float,
    *,
    allow_finetune: bool = False,
) -> Iterator[torch.nn.Module]:
    """Context manager: the model steered by ``alpha * vector``, restored on exit or error."""
    steerer = Steerer(model, vector, allow_finetune=allow_finetune)
    try:
        steerer.set_alpha(alpha)
        yield model
    finally:
        steerer.restore()
