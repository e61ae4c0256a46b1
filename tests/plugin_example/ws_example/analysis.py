"""An analysis that needs the run's other vectors: the mean of every family's vector of
the same seed, scored like any variant (needs=("others",) makes the stage load them)."""

from weightsteer.analysis import Variant, register
from weightsteer.core.vector import WeightVector


@register("family_mean", needs=("others",))
def family_mean(vector, ctx, settings) -> list[Variant]:
    others = list(ctx.others.values())
    shared = [n for n in vector if all(n in o.deltas for o in others)]
    deltas = {n: sum(o.dense(n) for o in others) / len(others) for n in shared}
    mean = WeightVector(deltas, vector.meta.derived(f"mean of {len(others)} vectors"))
    return [Variant(f"family_mean:{len(others)}", mean, {"kind": "mean"})]
