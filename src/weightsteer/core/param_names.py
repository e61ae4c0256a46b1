"""Parameter and module names: which layer and which module a name belongs to.

Shared by adapter targeting, vector restriction and the per-layer reports, so that
"layer 12, q_proj" means the same thing everywhere.
"""

from __future__ import annotations

import re

# Decoder blocks live under a container such as model.layers.N (Llama, Qwen, Mistral),
# transformer.h.N (GPT-2), gpt_neox.layers.N or blocks.N.
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer|decoder_layers)\.(\d+)(?:\.|$)")

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def layer_index(name: str) -> int | None:
    """Index of the decoder block that ``name`` belongs to, or None (embeddings, head)."""
    m = _LAYER.search(name)
    return int(m.group(1)) if m else None


def module_name(param_name: str) -> str:
    """The module that owns a parameter: ``a.b.q_proj.weight`` -> ``a.b.q_proj``."""
    return param_name.rsplit(".", 1)[0]


def module_kind(param_name: str) -> str:
    """Short module type of a parameter: ``model.layers.3.mlp.up_proj.weight`` -> ``up_proj``.

    Bias deltas are reported as ``up_proj.bias`` so they never mix with weight norms.
    """
    mod, leaf = param_name.rsplit(".", 1)
    kind = mod.rsplit(".", 1)[-1]
    return kind if leaf == "weight" else f"{kind}.{leaf}"


def matches_module(param_name: str, modules: set[str]) -> bool:
    """True if any dotted component of the parameter's module is in ``modules``
    (so ``{"mlp"}`` selects every MLP projection and ``{"q_proj"}`` one kind)."""
    return bool(set(module_name(param_name).split(".")) & modules) or (
        module_kind(param_name) in modules
    )


def layer_range(num_layers: int, lo: float, hi: float) -> list[int]:
    """Layers ``[floor(lo*L), floor(hi*L))``: the middle of the network by default.

    For Qwen3-0.6B (L=28) and 0.3-0.8 this is layers 8..21.
    """
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"layer fractions must satisfy 0 <= lo < hi <= 1, got {lo}, {hi}")
    first, last = int(lo * num_layers), int(hi * num_layers)
    return list(range(first, max(last, first + 1)))
