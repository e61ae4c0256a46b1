"""The LoRA route without PEFT: a plain LoRA adapter's factors read straight from its
``adapter_model.safetensors``, when its ``adapter_config.json`` says nothing else changes
W (no variant, pattern, bias or saved modules). ``extract.py`` takes this route when both
adapters allow it; the factors are bit-identical to those read off the PEFT layers.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch

from weightsteer.core.errors import UserError
from weightsteer.core.vector import Delta, LowRank, lowrank_sum
from weightsteer.pairs.pairs_file import SIDES

# adapter_config.json keys that do not change what a trained plain LoRA adds to W.
_INERT_KEYS = {
    "auto_mapping", "base_model_name_or_path", "exclude_modules", "inference_mode",
    "layers_pattern", "layers_to_transform", "lora_dropout", "megatron_core", "peft_version",
    "qalora_group_size", "revision", "target_modules", "task_type", "loftq_config",
    "ensure_weight_tying", "r", "lora_alpha", "use_rslora", "peft_type", "bias",
    "init_lora_weights",
}  # fmt: skip
_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")


def _plain_lora_scaling(cfg: dict[str, Any]) -> float | None:
    """``lora_alpha / r`` (or ``/ sqrt(r)``) if ``cfg`` is plain LoRA, else None.

    Every key outside ``_INERT_KEYS`` must be empty/false (no DoRA, rank or alpha patterns,
    LoRA bias, saved modules, Conv1D layout, replication, ...); an init that rewrites the base
    (PiSSA before conversion, OLoRA, LoftQ, ...) also disqualifies: its deltas are relative
    to another W.
    """
    if cfg.get("peft_type") != "LORA" or cfg.get("bias", "none") != "none":
        return None
    if cfg.get("init_lora_weights", True) not in (True, False, "gaussian"):
        return None
    if any(v for k, v in cfg.items() if k not in _INERT_KEYS and not k.startswith("_")):
        return None
    r, alpha = cfg.get("r"), cfg.get("lora_alpha")
    if not isinstance(r, int) or r <= 0 or not isinstance(alpha, int | float):
        return None
    return alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r


def _read_factors(path: Path) -> dict[str, dict[str, torch.Tensor]] | None:
    """module -> {"A": [r, in], "B": [out, r]} in float32, or None if the file holds more."""
    from safetensors import SafetensorError, safe_open

    file = path / "adapter_model.safetensors"
    if not file.is_file():
        return None
    out: dict[str, dict[str, torch.Tensor]] = {}
    try:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                m = _KEY.match(key)
                if m is None:
                    return None
                out.setdefault(m["module"], {})[m["ab"]] = f.get_tensor(key).float()
    except (SafetensorError, OSError) as e:
        raise UserError(f"{file} is not a readable safetensors file ({e})") from None
    if any(set(ab) != {"A", "B"} for ab in out.values()):
        return None
    return out


def lowrank_from_files(
    model: torch.nn.Module, dirs: dict[str, Path], cfgs: dict[str, dict[str, Any]]
) -> dict[str, Delta] | None:
    """The LoRA route without PEFT: factors from the files, checked against ``model``.

    ``dirs`` holds "pos" and optionally "neg" (subtracted)."""
    sides = [s for s in SIDES if s in dirs]
    scalings = {side: _plain_lora_scaling(cfgs[side]) for side in sides}
    if None in scalings.values():
        return None
    factors = {side: _read_factors(dirs[side]) for side in sides}
    if None in factors.values():
        return None
    read = {side: f for side, f in factors.items() if f is not None}
    scale = {side: x for side, x in scalings.items() if x is not None}
    modules = dict(model.named_modules())
    deltas: dict[str, Delta] = {}
    for name in sorted(set().union(*read.values())):
        layer = modules.get(name)
        if not isinstance(layer, torch.nn.Linear):
            return None  # not a linear of this model: let PEFT name the problem
        terms = []
        for sign, side in zip((1.0, -1.0), sides, strict=False):
            if name in read[side]:
                A, B = read[side][name]["A"], read[side][name]["B"]
                if (B.shape[0], A.shape[1]) != tuple(layer.weight.shape) or A.shape[0] != B.shape[
                    1
                ]:
                    raise UserError(
                        f"the adapter in {dirs[side]}: factors for {name} do not fit this "
                        f"model's weight {tuple(layer.weight.shape)}; pass the adapter's base "
                        "as --model"
                    )
                terms.append((sign * scale[side], LowRank(B, A)))
        deltas[f"{name}.weight"] = lowrank_sum(terms)
    return deltas
