"""Read a fine-tune's weight change tau from a PEFT adapter folder or a model folder,
one tensor at a time."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch

from weightsteer.core.errors import UserError
from weightsteer.core.vector import Delta, WeightVector
from weightsteer.monitor.agreement import MonitorResult, agreements


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
    base: torch.nn.Module,
    folder: Path,
    names: Sequence[str],
    progress: bool,
    allow_pickle: bool = False,
) -> Iterator[tuple[str, torch.Tensor]]:
    """theta_X - theta_base per tensor, read lazily from X's safetensors files (X is loaded
    whole only when its checkpoint is in another format)."""
    from safetensors import safe_open

    params = dict(base.named_parameters())
    index = _checkpoint_index(folder)
    with contextlib.ExitStack() as stack:
        if index is None:
            from weightsteer.core.models import load_model

            model = load_model(folder, dtype="float32", allow_pickle=allow_pickle)
            tuned = dict(model.named_parameters())
            files = {}
        else:
            tuned = {}
            files = {f: stack.enter_context(safe_open(str(f), framework="pt"))
                     for f in set(index.values())}  # fmt: skip
        items = list(names)
        if progress:
            from weightsteer.core.files import track

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
    allow_pickle: bool = False,
) -> tuple[str, Iterable[tuple[str, Delta]]]:
    """(kind, tau per tensor) for a fine-tune folder: a PEFT adapter or a full model."""
    from weightsteer.adapters.extract import adapter_deltas

    folder = Path(source)
    if (folder / "adapter_config.json").is_file():
        deltas = adapter_deltas(base, folder, model_id=model_id, progress=progress)
        return "adapter", deltas.items()
    if (folder / "config.json").is_file():
        return "model", _model_taus(base, folder, names, progress, allow_pickle)
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
    allow_pickle: bool = False,
) -> MonitorResult:
    """cos(theta_X - theta_base, dW) for the fine-tune at ``source`` (and the contrast
    cosine, given the vector's common mode); ``base`` is the vector's base (checked by the
    caller with ``steer.check_compatible``), left unchanged. A legacy pickle checkpoint is
    read only with ``allow_pickle`` (trusted files)."""
    kind, taus = finetune_taus(base, source, list(vector), model_id=model_id,
                               progress=progress, allow_pickle=allow_pickle)  # fmt: skip
    return MonitorResult(str(source), kind, agreements(vector, taus, common), common is not None)


# -- output ---------------------------------------------------------------------------------
