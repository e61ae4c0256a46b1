"""The compare stage: every method at its calibrated strengths, on the eval stage's rows."""

from __future__ import annotations

from weightsteer.core.config import content_key
from weightsteer.core.files import digest
from weightsteer.evals.score_intervention import evaluate_intervention
from weightsteer.methods.compare_config import CompareConfig
from weightsteer.pairs.pairs_file import SIDES
from weightsteer.pipeline.engine import engine_for
from weightsteer.pipeline.layout import RunLayout
from weightsteer.pipeline.run import Context
from weightsteer.pipeline.stages.common import (
    progress_bar,
    rows_key,
    settings_key,
    unit_todo,
)


def stage_compare(ctx: Context) -> None:
    """Every configured method at its calibrated +s and -s (``methods/calibrate.py``), scored on
    the eval stage's rows; the unsteered model once as ``compare/none.parquet``."""
    from weightsteer.methods import candidates
    from weightsteer.methods.calibrate import BaseLogprobs

    cfg = ctx.cfg
    if not cfg.compare.methods:
        ctx.console.print("  no methods to compare (compare.methods is empty)", highlight=False)
        return
    prompts, chats = calibration_chats(ctx)
    ctx.run.manifest["counts"]["compare"] = prompts.counts
    inputs = _method_inputs(ctx)
    common = {
        "rows": rows_key(ctx.suites()),
        "eval": cfg.eval_key(),
        "model": ctx.target_fingerprint(),
    }
    todo = [
        (cand, RunLayout.rel_compare(cand.slug)) for cand in candidates(cfg.compare.methods, inputs)
    ]
    base_cache = BaseLogprobs()  # the unsteered log-probs: the same for every candidate
    model, tok = ctx.target()
    with progress_bar(ctx) as bar, engine_for(ctx, model, tok, lora=True, bar=bar):
        task = bar.add_task("comparing", total=len(todo) + 1)
        _unsteered(ctx, common, bar, task)
        bar.advance(task)
        for cand, rel in todo:
            key = content_key(
                {
                    **common,
                    # the method list and the methods' own settings key only what they shape
                    "compare": cfg.compare.model_dump(
                        mode="json", include=set(CompareConfig.model_fields) - {"methods"}
                    ),
                    "settings": settings_key(inputs.settings_of(cand.method)),
                    "prompts": content_key([prompts.calibration, prompts.audit]),
                    "candidate": [cand.method, cand.family, cand.seed, cand.sources],
                }
            )
            if unit_todo(ctx, rel, key):
                _compare_one(
                    ctx,
                    cand,
                    rel,
                    key,
                    chats,
                    base_cache,
                    lambda d: bar.update(task, description=d),
                )
            bar.advance(task)
    if base_cache.hits + base_cache.misses:  # what the kept base log-probs saved
        ctx.run.manifest["counts"]["compare"]["base_logprobs"] = {
            "computed": base_cache.misses,
            "reused": base_cache.hits,
        }


def calibration_chats(ctx: Context, compare=None):
    """The calibration and audit prompts (none a training question or an eval row), and
    each as a chat; ``compare``: other ``[compare]`` settings than the run's."""
    from weightsteer.methods.calibration_prompts import calibration_prompts
    from weightsteer.pairs.personas import persona_chat
    from weightsteer.pairs.questions import split_questions

    cfg = ctx.cfg
    exclude = {q.text for q in split_questions(cfg.questions).train}
    exclude |= {r.messages[-1]["content"] for s in ctx.suites() for r in s.rows}
    prompts = calibration_prompts(compare or cfg.compare, cfg.questions, exclude)
    chats = [
        [persona_chat(None, t) for t in texts] for texts in (prompts.calibration, prompts.audit)
    ]
    return prompts, chats


def _method_inputs(ctx: Context):
    """What every method is built from: the model, the pairs, the run's vectors."""
    from weightsteer.methods import MethodInputs
    from weightsteer.methods.activation import activation_layers
    from weightsteer.pairs.pairs_file import load_chat_jsonl
    from weightsteer.pairs.personas import load_pair

    cfg, run = ctx.cfg, ctx.run
    model, tok = ctx.target()
    return MethodInputs(
        model,
        tok,
        load_pair(cfg.behavior.name, cfg.behavior.file),
        {side: load_chat_jsonl(run.layout.data(side)) for side in SIDES},
        {(fam, seed): run.layout.vector(fam, seed) for fam, seed in ctx.units()},
        activation_layers(model, cfg.train.layers),
        cfg.compare,
        pairs_digest=digest(run.layout.data_dir),
        progress=ctx.progress,
        seeds=tuple(cfg.train.seeds),
        finetune=bool(cfg.model.target),
    )


def _unsteered(ctx: Context, common: dict, bar, task) -> None:
    """``compare/none.parquet``: the unsteered model on every suite's rows."""
    from weightsteer.evals.results import suite_info, write_results
    from weightsteer.methods import NONE

    rel, key = RunLayout.rel_compare("none"), content_key(common)
    if not unit_todo(ctx, rel, key):
        return
    bar.update(task, description="scoring the unsteered model")
    model, tok = ctx.target()
    suites = ctx.suites()
    frames = evaluate_intervention(
        model, tok, NONE, suites, [0.0], batch_size=ctx.cfg.eval.batch_size, unsteered=ctx.unsteered
    )
    with ctx.run.unit(rel, key) as out:
        write_results(frames, out, ctx.cfg.model_dump(mode="json"), suites=suite_info(suites))


def _compare_one(ctx: Context, cand, rel: str, key: str, chats, base_cache, describe) -> None:
    """One candidate: calibrated to every budget, then scored at each side's strength."""
    from weightsteer.evals.results import suite_info, write_results
    from weightsteer.methods.calibrate import calibrate_budgets

    cfg, run = ctx.cfg, ctx.run
    model, tok = ctx.target()
    suites = ctx.suites()
    name = cand.slug
    describe(f"calibrating {name}")
    intervention = cand.build()
    calibration, audit = chats
    found = calibrate_budgets(
        model, tok, intervention, calibration, audit, cfg.compare, base_cache=base_cache
    )
    describe(f"scoring {name}")
    if intervention.discrete:  # one fixed strength stands for every budget
        found = dict(list(found.items())[:1])
    frames, records = _calibrated_frames(
        model, tok, intervention, suites, found, cfg.eval.batch_size
    )
    with run.unit(rel, key) as out:
        write_results(
            frames, out, cfg.model_dump(mode="json"), calibration=records, suites=suite_info(suites)
        )
    intervention.save(run.layout.activation(name))  # what it fitted, if anything
    for budget, cals in found.items():
        for cal in cals.values():
            ctx.console.print(f"  {name} at {budget:g} nat: {cal.message()}", highlight=False)


def _calibrated_frames(model, tok, intervention, suites, found: dict, batch_size: int):
    """Every suite scored at both sides of every budget in ``found``
    (``calibrate_budgets``), each row carrying its side's calibration; and the
    calibration records with their budget, for the table's metadata."""
    frames, records = [], []
    for budget, cals in found.items():
        sides = [cals[-1].to_json(), cals[1].to_json()]
        frames += evaluate_intervention(
            model,
            tok,
            intervention,
            suites,
            [x["strength"] for x in sides],
            calibrations=sides,
            batch_size=batch_size,
        )
        records += [{"budget": budget, **x} for x in sides]
    return frames, records
