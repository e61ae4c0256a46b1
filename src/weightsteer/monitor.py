"""Monitor fine-tunes with a steering vector: does a fine-tune's weight change point along dW?

For a fine-tune X of the base, ``tau = theta_X - theta_base`` over the parameters the vector
``dW`` touches (a parameter X leaves unchanged counts as 0), per tensor in float32:

    cos(tau, dW) = <tau, dW> / (||tau|| ||dW||)     direction: +1 along POS, -1 along NEG
    coef         = <tau, dW> / ||dW||^2             tau's component along dW is coef * dW,
                                                    in the units of a steering alpha
    projection   = <tau, dW> / ||dW||               the length of that component

A fine-tune drifting toward NEG has a negative cosine before any bad output is seen
(Fierro & Roger 2025, the fourth result). Cosines of high-dimensional diffs are small even
when meaningful: read them against a control fine-tune (unrelated data) on the same base.

Sources: a PEFT adapter folder (its delta read exactly, plain LoRA as factors, never
densified), or a full model folder (tensors read one at a time from its safetensors
files, so peak memory is the base plus one tensor). ``MonitorCallback`` does the same for
the model in an HF ``Trainer`` at every logging step.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from transformers import TrainerCallback

from weightsteer.errors import UserError
from weightsteer.naming import DEFAULT_TARGETS, layer_index, module_kind
from weightsteer.vector import Delta, WeightVector, combine, inner

TABLE_FORMATS = (".csv", ".jsonl", ".parquet")


def common_path(vector_path: str | Path) -> Path:
    """Where a run keeps a vector's common mode: ``vectors/common/<same name>``."""
    vector_path = Path(vector_path)
    return vector_path.parent / "common" / vector_path.name


@dataclass(frozen=True)
class Agreement:
    """How a weight change ``tau`` lines up with ``dW`` over a set of tensors.

    With a common-mode vector ``c`` (``theta_pos + theta_neg - 2 theta_base``) the inner
    products with ``c`` are kept too, for the contrast cosine."""

    dot: float  # <tau, dW>
    tau_sq: float  # ||tau||^2
    dw_sq: float  # ||dW||^2
    tensors: int
    tau_c: float = 0.0  # <tau, c>
    dw_c: float = 0.0  # <dW, c>
    c_sq: float = 0.0  # ||c||^2

    @property
    def cosine(self) -> float:
        """NaN when tau or dW is zero there: no direction to compare."""
        return _cos(self.dot, self.tau_sq, self.dw_sq)

    @property
    def contrast(self) -> float:
        """cos(P tau, P dW), P projecting out the common mode c: the cosine with what
        separates POS from NEG, without what training on the pair's data does either way."""
        if self.c_sq <= 0:
            return self.cosine
        return _cos(
            self.dot - self.tau_c * self.dw_c / self.c_sq,
            self.tau_sq - self.tau_c**2 / self.c_sq,
            self.dw_sq - self.dw_c**2 / self.c_sq,
        )

    @property
    def coef(self) -> float:
        return self.dot / self.dw_sq if self.dw_sq > 0 else math.nan

    @property
    def projection(self) -> float:
        return self.dot / math.sqrt(self.dw_sq) if self.dw_sq > 0 else math.nan

    @property
    def tau_norm(self) -> float:
        return math.sqrt(self.tau_sq)

    @property
    def dw_norm(self) -> float:
        return math.sqrt(self.dw_sq)

    @classmethod
    def total(cls, parts: Iterable[Agreement]) -> Agreement:
        parts = list(parts)
        return cls(*(sum(getattr(p, f.name) for p in parts) for f in fields(cls)))


def _cos(dot: float, a_sq: float, b_sq: float) -> float:
    denom = math.sqrt(max(a_sq, 0.0) * max(b_sq, 0.0))
    return dot / denom if denom > 0 else math.nan


def agreements(
    vector: WeightVector,
    taus: Iterable[tuple[str, Delta]],
    common: WeightVector | None = None,
) -> dict[str, Agreement]:
    """Per tensor of ``vector``: <tau, dW>, ||tau||^2, ||dW||^2 and, with a common-mode
    vector, the inner products with it (tensors ``taus`` lacks count as tau = 0).

    Low-rank entries on any side stay factored (``inner`` works on the factors)."""
    c = dict(common.deltas) if common is not None else {}
    dw_sq = {n: v * v for n, v in vector.norms().items()}

    def stats(name: str, tau: Delta | None) -> Agreement:
        dw, cn = vector[name], c.get(name)
        with_c = (
            (inner(tau, cn) if tau is not None else 0.0, inner(dw, cn), inner(cn, cn))
            if cn is not None
            else ()
        )
        if tau is None:
            return Agreement(0.0, 0.0, dw_sq[name], 1, *with_c)
        return Agreement(inner(tau, dw), inner(tau, tau), dw_sq[name], 1, *with_c)

    out = {n: stats(n, None) for n in vector}
    for name, tau in taus:
        if name in out:
            out[name] = stats(name, tau)
    return out


@dataclass(frozen=True)
class MonitorResult:
    """One fine-tune against one vector: per-tensor agreements and their sums."""

    source: str
    kind: str  # "adapter" or "model"
    tensors: dict[str, Agreement]
    common: bool = False  # a common-mode vector was given: ``contrast`` is meaningful

    @property
    def overall(self) -> Agreement:
        return Agreement.total(self.tensors.values())

    @property
    def touched(self) -> int:
        """Tensors of the vector this fine-tune changed."""
        return sum(a.tau_sq > 0 for a in self.tensors.values())

    def by(self, key: str) -> dict[Any, Agreement]:
        """Sums per ``layer`` (block index, None outside blocks) or per ``module`` kind."""
        group = layer_index if key == "layer" else module_kind
        parts: dict[Any, list[Agreement]] = {}
        for name, a in self.tensors.items():
            parts.setdefault(group(name), []).append(a)
        if key == "layer":
            order = sorted(parts, key=lambda k: (k is None, k or 0))
        else:  # projections in the model's order, then anything else by name
            rank = {k: i for i, k in enumerate(DEFAULT_TARGETS)}
            order = sorted(parts, key=lambda k: (rank.get(k, len(rank)), k))
        return {k: Agreement.total(parts[k]) for k in order}

    def rows(self) -> list[dict[str, Any]]:
        """The full table: overall, per layer, per module kind, per tensor."""

        def row(scope: str, a: Agreement, layer=None, module=None, tensor=None) -> dict:
            return {
                "finetuned": self.source,
                "kind": self.kind,
                "scope": scope,
                "layer": layer,
                "module": module,
                "tensor": tensor,
                "tensors": a.tensors,
                "cosine": a.cosine,
                "contrast": a.contrast if self.common else None,
                "coef": a.coef,
                "projection": a.projection,
                "tau_norm": a.tau_norm,
                "dw_norm": a.dw_norm,
                "dot": a.dot,
            }

        out = [row("all", self.overall)]
        out += [row("layer", a, layer=k) for k, a in self.by("layer").items()]
        out += [row("module", a, module=k) for k, a in self.by("module").items()]
        out += [
            row("tensor", a, layer=layer_index(n), module=module_kind(n), tensor=n)
            for n, a in self.tensors.items()
        ]
        return out


# -- reading a fine-tune's change ------------------------------------------------------------


def _checkpoint_index(folder: Path) -> dict[str, Path] | None:
    """tensor name -> safetensors file of a model folder, or None when it has none."""
    from safetensors import SafetensorError, safe_open

    index = folder / "model.safetensors.index.json"
    try:
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
            return {k: folder / v for k, v in weight_map.items()}
        single = folder / "model.safetensors"
        if single.is_file():
            with safe_open(str(single), framework="pt") as f:
                return dict.fromkeys(f.keys(), single)
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as e:
        raise UserError(f"{folder}: its safetensors checkpoint cannot be read ({e})") from None
    return None


def _model_taus(
    base: torch.nn.Module, folder: Path, names: Sequence[str], progress: bool
) -> Iterator[tuple[str, torch.Tensor]]:
    """theta_X - theta_base per tensor, read lazily from X's safetensors files (X is loaded
    whole only when its checkpoint is in another format)."""
    from safetensors import safe_open

    params = dict(base.named_parameters())
    index = _checkpoint_index(folder)
    with contextlib.ExitStack() as stack:
        if index is None:
            from weightsteer.modelling import load_model

            tuned = dict(load_model(folder, dtype="float32").named_parameters())
            files = {}
        else:
            tuned = {}
            files = {f: stack.enter_context(safe_open(str(f), framework="pt"))
                     for f in set(index.values())}  # fmt: skip
        items = list(names)
        if progress:
            from weightsteer.io import track

            items = track(items, description=f"reading {folder.name}")
        for name in items:
            if name in tuned:
                x = tuned[name].detach()
            elif index is not None and name in index:
                x = files[index[name]].get_tensor(name)
            else:
                raise UserError(
                    f"{folder} has no tensor {name}; it is not a fine-tune of this base"
                )
            base_p = params[name]
            if tuple(x.shape) != tuple(base_p.shape):
                raise UserError(
                    f"{folder}: {name} has shape {tuple(x.shape)} but {tuple(base_p.shape)} in "
                    "the base; it is not a fine-tune of this base (pass its base as --model)"
                )
            yield name, x.float() - base_p.detach().float()


def finetune_taus(
    base: torch.nn.Module,
    source: str | Path,
    names: Sequence[str],
    *,
    model_id: str | None = None,
    progress: bool = False,
) -> tuple[str, Iterable[tuple[str, Delta]]]:
    """(kind, tau per tensor) for a fine-tune folder: a PEFT adapter or a full model."""
    from weightsteer.extract import adapter_deltas

    folder = Path(source)
    if (folder / "adapter_config.json").is_file():
        deltas = adapter_deltas(base, folder, model_id=model_id, progress=progress)
        return "adapter", deltas.items()
    if (folder / "config.json").is_file():
        return "model", _model_taus(base, folder, names, progress)
    if folder.exists():
        raise UserError(
            f"{folder} is neither a PEFT adapter folder (adapter_config.json) nor a model "
            "folder (config.json)"
        )
    raise UserError(f"fine-tune {folder} does not exist")


def monitor_finetune(
    base: torch.nn.Module,
    vector: WeightVector,
    source: str | Path,
    *,
    common: WeightVector | None = None,
    model_id: str | None = None,
    progress: bool = False,
) -> MonitorResult:
    """cos(theta_X - theta_base, dW) for the fine-tune at ``source`` (and the contrast
    cosine, given the vector's common mode); ``base`` is the vector's base (checked by the
    caller with ``steer.check_compatible``), left unchanged."""
    kind, taus = finetune_taus(base, source, list(vector), model_id=model_id, progress=progress)
    return MonitorResult(str(source), kind, agreements(vector, taus, common), common is not None)


# -- output ---------------------------------------------------------------------------------


def monitor_table(results: Sequence[MonitorResult]) -> pd.DataFrame:
    table = pd.DataFrame([r for res in results for r in res.rows()])
    table["layer"] = table["layer"].astype("Int64")
    return table


def write_table(table: pd.DataFrame, path: Path, *, overwrite: bool = False) -> None:
    from weightsteer.io import atomic_path

    with atomic_path(path, overwrite=overwrite) as tmp:
        if path.suffix == ".csv":
            table.to_csv(tmp, index=False)
        elif path.suffix == ".jsonl":
            table.to_json(tmp, orient="records", lines=True)
        else:
            table.to_parquet(tmp, index=False)


def plot_monitor(results: Sequence[MonitorResult], path: Path, title: str) -> None:
    """Per layer (one line per fine-tune) and per module kind (grouped bars): the contrast
    cosine when every result has a common mode, else the plain cosine."""
    from weightsteer.report import pyplot, save_figure

    metric = "contrast" if results and all(r.common for r in results) else "cosine"
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    modules = list(dict.fromkeys(k for r in results for k in r.by("module")))
    width = 0.8 / max(len(results), 1)
    for i, res in enumerate(results):
        label = f"{Path(res.source).name} ({getattr(res.overall, metric):+.3f})"
        layers = {k: a for k, a in res.by("layer").items() if k is not None}
        left.plot(list(layers), [getattr(a, metric) for a in layers.values()], marker="o",
                  label=label)  # fmt: skip
        by_module = res.by("module")
        xs = [j + (i - (len(results) - 1) / 2) * width for j in range(len(modules))]
        right.bar(xs, [getattr(by_module[m], metric) for m in modules], width=width, label=label)
    ylabel = "contrast cos (common mode out)" if metric == "contrast" else "cos(tau, dW)"
    for ax in (left, right):
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_ylabel(ylabel)
    from matplotlib.ticker import MaxNLocator

    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_xlabel("layer")
    left.legend(fontsize=7)
    right.set_xticks(range(len(modules)), modules, rotation=30, fontsize=8)
    right.set_xlabel("module")
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


# -- while training -------------------------------------------------------------------------


def _is_peft(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def _weights_view(model: torch.nn.Module, names: set[str]) -> dict[str, Delta]:
    """What training changes, per parameter of ``names``: the active adapter's delta for a
    PEFT model, the parameters themselves (float32 copies) otherwise."""
    if _is_peft(model):
        from weightsteer.extract import tuner_deltas

        active = model.active_adapters
        if len(active) != 1:
            raise UserError(f"MonitorCallback watches one active adapter; this model has {active}")
        deltas = tuner_deltas(model.get_base_model(), active[0])
        return {n: d for n, d in deltas.items() if n in names}
    params = dict(model.named_parameters())
    missing = sorted(names - params.keys())
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
