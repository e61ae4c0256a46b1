"""``MonitorCallback``: the agreement of the model's weight change with dW at every
logging step of an HF ``Trainer`` (full fine-tuning or PEFT)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from weightsteer.core.errors import UserError
from weightsteer.core.vector import Delta, WeightVector, combine
from weightsteer.monitor.agreement import Agreement, agreements


def _is_peft(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def _weights_view(model: Any, names: set[str]) -> dict[str, Delta]:
    """What training changes, per parameter of ``names``: the active adapter's delta for a
    PEFT model, the parameters themselves (float32 copies) otherwise."""
    if _is_peft(model):
        from weightsteer.adapters.extract import tuner_deltas

        active = model.active_adapters
        if len(active) != 1:
            raise UserError(f"MonitorCallback watches one active adapter; this model has {active}")
        deltas = tuner_deltas(model.get_base_model(), active[0])
        return {n: d for n, d in deltas.items() if n in names}
    params = dict(model.named_parameters())
    missing = sorted(names - params.keys())
    sharded = [
        n
        for n in sorted(names & params.keys())
        if params[n].numel() == 0 or hasattr(params[n], "ds_id")
    ]
    if sharded or any("_fsdp_wrapped_module" in n for n in params):
        raise UserError(
            "MonitorCallback reads whole parameters, and this model's are sharded (FSDP or "
            "DeepSpeed ZeRO-3); monitor the saved checkpoints instead (weightsteer monitor)"
        )
    if missing:
        raise UserError(
            f"the monitored vector changes {missing[0]}, which the trained model does not have"
        )
    return {n: params[n].detach().float().clone() for n in names}


def _as_vectors(vectors) -> dict[str, WeightVector]:
    """Label -> vector from a vector, a file, a list of those, or a dict label -> either."""
    if isinstance(vectors, WeightVector | str | Path):
        vectors = [vectors]
    items = vectors.items() if isinstance(vectors, Mapping) else [(None, v) for v in vectors]
    out: dict[str, WeightVector] = {}
    for label, v in items:
        vec = v if isinstance(v, WeightVector) else WeightVector.load(v)
        if label is None:
            label = Path(v).stem if isinstance(v, str | Path) else vec.meta.behavior or "vector"
            label = label if label not in out else f"{label}-{len(out)}"
        out[label] = vec
    if not out:
        raise UserError("MonitorCallback needs at least one vector")
    return out


def _as_commons(common, labels: list[str]) -> dict[str, WeightVector]:
    """Label -> common-mode vector: a dict by label, or one per vector in order."""
    if common is None:
        return {}
    if isinstance(common, WeightVector | str | Path):
        common = [common]
    items = common.items() if isinstance(common, Mapping) else zip(labels, common, strict=True)
    return {k: v if isinstance(v, WeightVector) else WeightVector.load(v) for k, v in items}


class MonitorCallback(TrainerCallback):
    """Logs ``monitor/<name>/cosine`` and ``monitor/<name>/coef`` of the weight change since
    the start of training with each vector, at every logging step (and
    ``monitor/<name>/contrast`` for vectors given a common-mode vector in ``common``).

    Works for full fine-tuning (parameters vs a float32 snapshot of the vectors' parameters
    taken at ``on_train_begin``) and for PEFT training (the active adapter's delta now minus
    at the start, so PiSSA-style initialisations cancel). The values go into the step's
    ``logs`` and ``state.log_history`` and into ``self.history``; use ``attach(trainer)``
    instead of ``callbacks=[...]`` for reporters (wandb, tensorboard) to see them too.

        cb = MonitorCallback({"honesty": "vectors/lora-seed0.safetensors"})
        trainer = Trainer(..., callbacks=[cb])
    """

    def __init__(self, vectors, *, common=None, prefix: str = "monitor"):
        self.vectors = _as_vectors(vectors)
        self.common = _as_commons(common, list(self.vectors))
        self.prefix = prefix
        self.names = set().union(*(set(v) for v in self.vectors.values()))
        self.history: list[dict[str, Any]] = []
        self._start: dict[str, Delta] | None = None

    def attach(self, trainer) -> MonitorCallback:
        """Register as the first callback, so every reporter logs the cosines."""
        trainer.callback_handler.callbacks.insert(0, self)
        return self

    def measure(self, model: torch.nn.Module) -> dict[str, float]:
        """Cosine and coef of (now - start) with each vector."""
        if self._start is None:
            raise RuntimeError("MonitorCallback.measure before training began")
        now = _weights_view(model, self.names)
        taus = [
            (n, combine(now.get(n), self._start.get(n), -1.0))
            for n in now.keys() | self._start.keys()
        ]
        out = {}
        for label, vec in self.vectors.items():
            total = Agreement.total(agreements(vec, taus, self.common.get(label)).values())
            out[f"{self.prefix}/{label}/cosine"] = total.cosine
            if label in self.common:
                out[f"{self.prefix}/{label}/contrast"] = total.contrast
            out[f"{self.prefix}/{label}/coef"] = total.coef
        return out

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._start = _weights_view(model, self.names)

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        if self.history and self.history[-1]["step"] == state.global_step:
            values = {k: v for k, v in self.history[-1].items() if k != "step"}
        else:
            values = self.measure(model)
            self.history.append({"step": state.global_step, **values})
        if logs is not None:
            logs.update(values)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(values)
