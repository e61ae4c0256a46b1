"""The eval stage: every vector over the strength sweep on every suite's rows."""

from __future__ import annotations

from weightsteer.core.config import content_key
from weightsteer.core.files import digest
from weightsteer.evals.score_intervention import evaluate_intervention
from weightsteer.pipeline.engine import engine_for
from weightsteer.pipeline.layout import RunLayout
from weightsteer.pipeline.run import Context
from weightsteer.pipeline.stages.common import (
    progress_bar,
    rows_key,
    unit_todo,
)


def stage_eval(ctx: Context) -> None:
    from weightsteer.core.vector import WeightVector
    from weightsteer.evals.results import suite_info, write_results
    from weightsteer.methods.weight import WeightSteering

    cfg, run = ctx.cfg, ctx.run
    suites = ctx.suites()
    if not suites:
        ctx.console.print("  no suites to score (eval.suites is empty)", highlight=False)
        return
    run.manifest["counts"]["eval"] = {s.name: s.meta for s in suites}
    rows = rows_key(suites)
    finetune = bool(cfg.model.target)  # the vector's base differs from what it steers
    per_vector = sum(len(s.rows) for s in suites) * len(cfg.eval.alphas)
    with progress_bar(ctx) as bar:
        task = bar.add_task("scoring", total=per_vector * len(ctx.units()))
        for fam, seed in ctx.units():
            vec_path = run.layout.vector(fam, seed)
            rel = RunLayout.rel_results(fam, seed)
            key = content_key(
                {
                    "vector": digest(vec_path),
                    "eval": {**cfg.eval_key(), "alphas": list(cfg.eval.alphas)},
                    "rows": rows,
                    "model": ctx.target_fingerprint(),
                }
            )
            if not unit_todo(ctx, rel, key):
                bar.advance(task, per_vector)
                continue
            model, tok = ctx.target()
            bar.update(task, description=f"scoring {fam} seed {seed}")
            vec = WeightVector.load(vec_path)
            with engine_for(ctx, model, tok, lora=True, bar=bar):
                frames = evaluate_intervention(
                    model,
                    tok,
                    WeightSteering(vector=vec, family=fam, seed=seed, allow_finetune=finetune),
                    suites,
                    cfg.eval.alphas,
                    batch_size=cfg.eval.batch_size,
                    bar=bar,
                    task=task,
                    unsteered=ctx.unsteered,
                )
            with run.unit(rel, key) as out:
                write_results(frames, out, cfg.model_dump(mode="json"), suites=suite_info(suites))
