"""The extract stage: dW = theta_pos - theta_neg per family and seed, exact."""

from __future__ import annotations

from weightsteer.core.config import content_key
from weightsteer.core.files import digest
from weightsteer.pairs.pairs_file import SIDES
from weightsteer.pipeline.layout import RunLayout
from weightsteer.pipeline.run import Context
from weightsteer.pipeline.stages.common import (
    unit_todo,
)


def stage_extract(ctx: Context) -> None:
    from weightsteer.adapters.extract import extract_vector
    from weightsteer.pairs.personas import load_pair

    cfg, run = ctx.cfg, ctx.run
    pair = load_pair(cfg.behavior.name, cfg.behavior.file)
    for fam, seed in ctx.units():
        dirs = {side: run.layout.adapter(fam, seed, side) for side in SIDES}
        rel = RunLayout.rel_vector(fam, seed)
        key = content_key({side: digest(d) for side, d in dirs.items()})
        if not unit_todo(ctx, rel, key):
            continue
        model, _ = ctx.model()
        with ctx.console.status(f"extracting {fam} seed {seed}"):
            vec = extract_vector(
                model,
                dirs["pos"],
                dirs["neg"],
                behavior=pair.behavior,
                personas={"pos": list(pair.pos), "neg": list(pair.neg)},
                model_id=cfg.model.id,
            )
        with run.unit(rel, key) as out:
            vec.save(out, overwrite=True)
    _extract_commons(ctx)


def _extract_commons(ctx: Context) -> None:
    """``vectors/common/<fam>-seed<k>.safetensors``: each vector's common mode, for
    ``weightsteer monitor`` (which finds it next to the vector)."""
    from weightsteer.adapters.extract import extract_common
    from weightsteer.core.vector import WeightVector

    run = ctx.run
    for fam, seed in ctx.units():
        dirs = {side: run.layout.adapter(fam, seed, side) for side in SIDES}
        vec_path = run.layout.vector(fam, seed)
        rel = RunLayout.rel_common(fam, seed)
        key = content_key({"vector": digest(vec_path), **{s: digest(d) for s, d in dirs.items()}})
        if not unit_todo(ctx, rel, key):
            continue
        model, _ = ctx.model()
        common = extract_common(model, dirs["pos"], dirs["neg"], WeightVector.load(vec_path))
        with run.unit(rel, key) as out:
            common.save(out, overwrite=True)
