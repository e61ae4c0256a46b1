"""Which layers and modules carry dW: keep or drop parts of the vector.

- ``layers``: for every decoder layer the vector touches, ``keep:layerN`` (that layer
  alone) and ``drop:layerN`` (every other layer: leave one layer out), with a random
  norm-matched control of the kept part (same tensors, same per-tensor Frobenius norms,
  random Gaussian directions; one per draw).
- ``modules``: the same for module families: ``attn`` (q/k/v/o), ``mlp`` (gate/up/down),
  ``writers`` (o/down: write to the residual stream), ``readers`` (q/k/v/gate/up).
- ``cells``: keep and drop every (layer, module kind) cell, for the layer x module
  heatmap (no random controls: there are many cells).

``keep:X + drop:X = full`` for every split, exactly (they partition the tensors).
"""

from __future__ import annotations

from weightsteer.analysis import AnalysisContext, Variant, keep_drop, register, subset
from weightsteer.core.param_names import layer_index, module_kind
from weightsteer.core.vector import WeightVector

GROUPS = {
    "attn": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "mlp": ("gate_proj", "up_proj", "down_proj"),
    "writers": ("o_proj", "down_proj"),
    "readers": ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"),
}


def _kind(name: str) -> str:
    return module_kind(name).split(".")[0]


@register("layers")
def layer_variants(vector: WeightVector, ctx: AnalysisContext, settings: None) -> list[Variant]:
    layers = sorted({i for n in vector if (i := layer_index(n)) is not None})
    out = []
    for i in layers:
        out += keep_drop(vector, f"layer{i}", [n for n in vector if layer_index(n) == i], ctx)
    return out


@register("modules")
def module_variants(vector: WeightVector, ctx: AnalysisContext, settings: None) -> list[Variant]:
    out = []
    for group, kinds in GROUPS.items():
        names = [n for n in vector if _kind(n) in kinds]
        if names and len(names) < len(vector):
            out += keep_drop(vector, group, names, ctx)
    return out


@register("cells")
def cell_variants(vector: WeightVector, ctx: AnalysisContext, settings: None) -> list[Variant]:
    cells: dict[tuple[int, str], list[str]] = {}
    for n in vector:
        i = layer_index(n)
        if i is not None:
            cells.setdefault((i, _kind(n)), []).append(n)
    out = []
    for (i, kind), names in sorted(cells.items()):
        split = f"layer{i}.{kind}"
        rest = [n for n in vector if n not in set(names)]
        info = {"split": split, "layer": i, "module": kind}
        out.append(
            Variant(
                f"keep:{split}", subset(vector, names, f"keep {split}"), {**info, "kind": "keep"}
            )
        )
        out.append(
            Variant(
                f"drop:{split}", subset(vector, rest, f"drop {split}"), {**info, "kind": "drop"}
            )
        )
    return out
