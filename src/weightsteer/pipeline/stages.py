"""The pipeline's stages: ``data -> train -> extract -> eval -> compare -> report``.

Each stage walks its units (``RunLayout`` names them), skips those whose content key is
unchanged, keeps the user's own files, and writes the rest atomically (``run.py``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from weightsteer.core import dist
from weightsteer.core.config import content_key, entry_settings
from weightsteer.core.errors import UserError
from weightsteer.core.files import atomic_path, digest
from weightsteer.evals.evaluate import evaluate_intervention
from weightsteer.pipeline.config import RunConfig
from weightsteer.pipeline.layout import SIDES, RunLayout
from weightsteer.pipeline.run import Context, Run, build_run_suites
from weightsteer.report import RunFiles

STAGES = ("data", "train", "extract", "eval", "compare", "report")
ALL_RANKS = ("data", "train")  # under several processes; rank 0 alone does the rest


def _say(ctx: Context, rel: str, state: str) -> None:
    if state == "done":
        ctx.console.print(f"  reuse  {rel}", style="dim", highlight=False)
    elif state == "user":
        ctx.console.print(
            f"  keep   {rel} (not written by this run: used as given)",
            style="yellow",
            highlight=False,
        )


def _todo(ctx: Context, rel: str, key: str, *, all_ranks: bool = False) -> bool:
    """Say what happens to unit ``rel`` (reuse it, keep the user's file, or make it) and
    record a user's file as such; True when the unit must be made. In a stage every rank
    runs (``all_ranks``), rank 0 decides for all."""
    state = ctx.run.state(rel, key)
    if all_ranks:
        state = dist.broadcast(state)
    _say(ctx, rel, state)
    if state == "user":
        ctx.run.adopt(rel)
    return state == "todo"


def _bar(ctx: Context):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=ctx.console,
        disable=not ctx.progress,
        transient=True,
    )


# -- stages ------------------------------------------------------------------------------


def stage_data(ctx: Context) -> None:
    from weightsteer.pairs.filters import SELF, build_filter
    from weightsteer.pairs.generate import generate_pair_data, pair_items
    from weightsteer.pairs.personas import load_pair
    from weightsteer.pairs.questions import split_questions

    cfg, run = ctx.cfg, ctx.run
    pair = load_pair(cfg.behavior.name, cfg.behavior.file)
    split = split_questions(cfg.questions)
    items = pair_items(split.train, cfg.data.paraphrases, cfg.data.samples)
    key = content_key(
        {
            "model": ctx.fingerprint(),
            "pair": [pair.behavior, pair.pos, pair.neg],
            "items": [[it.id, it.user] for it in items],
            # greedy answers do not depend on how prompts are chunked (sampled ones do:
            # each chunk has its own seed)
            "data": cfg.data.model_dump(
                mode="json", exclude={"chunk_size"} if cfg.data.temperature == 0 else set()
            ),
        }
    )
    if not _todo(ctx, RunLayout.rel_data(), key, all_ranks=True):
        return
    model, tok = ctx.model()
    keep = build_filter(
        cfg.data.filter,
        pair.behavior,
        lambda judge: (model, tok) if judge == SELF else ctx.load(judge),
    )
    work = run.layout.work(f"data-{key}")
    shown = False

    with _bar(ctx) as bar:
        task = bar.add_task("generating POS/NEG answers", total=len(items))

        def on_chunk(done: int, total: int, rows: list[dict]) -> None:
            nonlocal shown
            bar.update(task, advance=len(rows))
            if not shown:  # one decoded example at once: a template bug shows here
                shown = True
                row = rows[0]
                ctx.console.print(f"  example question: {row['item']['user']!r}", highlight=False)
                for side in SIDES:
                    persona = pair.prompt(side, row["item"]["paraphrase"])
                    ctx.console.print(
                        f"    {side} [{persona}] -> {row[side]['text']!r}", highlight=False
                    )

        result = generate_pair_data(
            model,
            tok,
            items,
            pair,
            work_dir=work,
            max_new_tokens=cfg.data.max_new_tokens,
            temperature=cfg.data.temperature,
            top_p=cfg.data.top_p,
            seed=cfg.data.seed,
            batch_size=cfg.data.batch_size,
            chunk_size=cfg.data.chunk_size,
            keep=keep,
            on_chunk=on_chunk,
            truncated=cfg.data.truncated,
        )
    if result is None:  # another rank's share is written; rank 0 writes the pairs
        return
    if not result.counts["kept"]:
        raise UserError(
            f"every generated pair was dropped ({result.counts}); raise data.max_new_tokens, "
            'keep cut-off answers (data.truncated = "keep"), or check the filter'
        )
    unit = run.unit(RunLayout.rel_data(), key)
    with unit as out, atomic_path(out, overwrite=True, is_dir=True) as tmp:
        for side in SIDES:
            lines = "".join(json.dumps(r) + "\n" for r in result.records[side])
            (tmp / f"{side}.jsonl").write_text(lines)
    run.manifest["counts"]["data"] = result.counts
    shutil.rmtree(work, ignore_errors=True)
    with contextlib.suppress(OSError):
        work.parent.rmdir()  # only when empty
    c = result.counts
    cut = f"{c['unterminated']} unterminated"
    cut = f"0 unterminated; {cut} kept truncated" if cfg.data.truncated == "keep" else cut
    ctx.console.print(
        f"  data: {c['kept']} pairs kept of {c['pairs']} (dropped: {c['empty']} empty, "
        f"{cut}, {c['filtered']} filtered)",
        highlight=False,
    )


def _step_callback(bar, task):
    """An HF Trainer callback moving a rich progress task one optimiser step at a time."""
    from transformers import TrainerCallback

    class StepBar(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            bar.update(task, total=state.max_steps, completed=0)

        def on_step_end(self, args, state, control, **kw):
            bar.update(task, completed=state.global_step)

    return StepBar()


def stage_train(ctx: Context) -> None:
    from weightsteer.adapters.train import (
        file_digest,
        load_chat_jsonl,
        save_initial_state,
        train_adapter,
    )

    cfg, run = ctx.cfg, ctx.run
    data = {side: run.layout.data(side) for side in SIDES}
    records = {side: None for side in SIDES}
    tokens = 0
    with _bar(ctx) as bar:
        units = bar.add_task("training adapters", total=2 * len(ctx.units()))
        steps = bar.add_task("  steps", total=None)
        for fam, seed in ctx.units():
            spec = cfg.train.spec(fam, seed)
            init_rel = RunLayout.rel_init(fam, seed)
            spec_json = spec.model_dump(mode="json")
            init_key = content_key({"spec": spec_json, "model": ctx.fingerprint()})
            if _todo(ctx, init_rel, init_key, all_ranks=True):
                with run.unit(init_rel, init_key) as out:
                    save_initial_state(ctx.model()[0], spec, out, overwrite=True)
            init = run.root / init_rel
            for side in SIDES:
                rel = RunLayout.rel_adapter(fam, seed, side)
                key = content_key(
                    {
                        "spec": spec.model_dump(mode="json"),
                        "data": digest(data[side]),
                        "model": ctx.fingerprint(),
                        "init": digest(init),
                    }
                )
                if _todo(ctx, rel, key, all_ranks=True):
                    model, tok = ctx.model()
                    if records[side] is None:
                        records[side] = load_chat_jsonl(data[side])
                    bar.update(steps, description=f"  {fam} seed {seed} {side}")
                    info = {
                        "path": f"data/{side}.jsonl",
                        "sha256": file_digest(data[side]),
                        "rows": len(records[side]),
                    }
                    with run.unit(rel, key) as out:
                        train_adapter(
                            model,
                            tok,
                            records[side],
                            spec,
                            out,
                            data_info=info,
                            overwrite=True,
                            progress=False,
                            callbacks=[_step_callback(bar, steps)],
                            init_state=init,
                        )
                tokens += _trained_tokens(run.root / rel)
                bar.advance(units)
    run.manifest["counts"]["train"] = {"adapters": 2 * len(ctx.units()), "tokens": tokens}


def _trained_tokens(adapter_dir: Path) -> int:
    from weightsteer.adapters.train import read_adapter_info

    info = read_adapter_info(adapter_dir) or {}
    return int(info.get("train", {}).get("tokens", 0))


def stage_extract(ctx: Context) -> None:
    from weightsteer.adapters.extract import extract_vector
    from weightsteer.pairs.personas import load_pair

    cfg, run = ctx.cfg, ctx.run
    pair = load_pair(cfg.behavior.name, cfg.behavior.file)
    for fam, seed in ctx.units():
        dirs = {side: run.layout.adapter(fam, seed, side) for side in SIDES}
        rel = RunLayout.rel_vector(fam, seed)
        key = content_key({side: digest(d) for side, d in dirs.items()})
        if not _todo(ctx, rel, key):
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
        if not _todo(ctx, rel, key):
            continue
        model, _ = ctx.model()
        common = extract_common(model, dirs["pos"], dirs["neg"], WeightVector.load(vec_path))
        with run.unit(rel, key) as out:
            common.save(out, overwrite=True)


def _rows_key(suites) -> str:
    return content_key([[s.name, [r.row_id for r in s.rows]] for s in suites])


def stage_eval(ctx: Context) -> None:
    from weightsteer.core.vector import WeightVector
    from weightsteer.evals.results import suite_info, write_results
    from weightsteer.methods.weight import WeightSteering

    cfg, run = ctx.cfg, ctx.run
    suites = ctx.suites()
    run.manifest["counts"]["eval"] = {s.name: s.meta for s in suites}
    rows_key = _rows_key(suites)
    finetune = bool(cfg.model.target)  # the vector's base differs from what it steers
    per_vector = sum(len(s.rows) for s in suites) * len(cfg.eval.alphas)
    with _bar(ctx) as bar:
        task = bar.add_task("scoring", total=per_vector * len(ctx.units()))
        for fam, seed in ctx.units():
            vec_path = run.layout.vector(fam, seed)
            rel = RunLayout.rel_results(fam, seed)
            key = content_key(
                {
                    "vector": digest(vec_path),
                    "eval": cfg.eval.model_dump(mode="json"),
                    "rows": rows_key,
                    "model": ctx.target_fingerprint(),
                }
            )
            if not _todo(ctx, rel, key):
                bar.advance(task, per_vector)
                continue
            model, tok = ctx.target()
            bar.update(task, description=f"scoring {fam} seed {seed}")
            vec = WeightVector.load(vec_path)
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


def stage_compare(ctx: Context) -> None:
    """Every configured method at its calibrated +s and -s (``methods/calibrate.py``), scored on
    the eval stage's rows; the unsteered model once as ``compare/none.parquet``."""
    from weightsteer.adapters.train import load_chat_jsonl
    from weightsteer.evals.results import suite_info, write_results
    from weightsteer.methods import NONE, MethodInputs, candidates
    from weightsteer.methods.activation import activation_layers
    from weightsteer.methods.calibrate import BaseLogprobs, calibrate_budgets
    from weightsteer.methods.calibration_prompts import calibration_prompts
    from weightsteer.methods.compare_config import CompareConfig
    from weightsteer.pairs.personas import load_pair, persona_chat
    from weightsteer.pairs.questions import split_questions

    cfg, run = ctx.cfg, ctx.run
    c = cfg.compare
    if not c.methods:
        ctx.console.print("  no methods to compare (compare.methods is empty)", highlight=False)
        return
    suites = ctx.suites()
    exclude = {q.text for q in split_questions(cfg.questions).train}
    exclude |= {r.messages[-1]["content"] for s in suites for r in s.rows}
    prompts = calibration_prompts(cfg.compare, cfg.questions, exclude)
    chats = [
        [persona_chat(None, t) for t in texts] for texts in (prompts.calibration, prompts.audit)
    ]
    run.manifest["counts"]["compare"] = prompts.counts
    data = {side: run.layout.data(side) for side in SIDES}
    vectors = {(fam, seed): run.layout.vector(fam, seed) for fam, seed in ctx.units()}
    model, tok = ctx.target()
    inputs = MethodInputs(
        model,
        tok,
        load_pair(cfg.behavior.name, cfg.behavior.file),
        {side: load_chat_jsonl(data[side]) for side in SIDES},
        vectors,
        activation_layers(model, cfg.train.layers),
        c,
        pairs_digest=digest(run.layout.data_dir),
        progress=ctx.progress,
        seeds=tuple(cfg.train.seeds),
        finetune=bool(cfg.model.target),
    )
    common = {
        "rows": _rows_key(suites),
        "eval": cfg.eval.model_dump(mode="json", exclude={"alphas"}),
        "model": ctx.target_fingerprint(),
    }
    config = cfg.model_dump(mode="json")
    info = suite_info(suites)
    todo = [(cand, RunLayout.rel_compare(cand.slug)) for cand in candidates(c.methods, inputs)]
    base_cache = BaseLogprobs()  # the unsteered log-probs: the same for every candidate
    with _bar(ctx) as bar:
        task = bar.add_task("comparing", total=len(todo) + 1)
        rel, key = RunLayout.rel_compare("none"), content_key(common)
        if _todo(ctx, rel, key):
            bar.update(task, description="scoring the unsteered model")
            frames = evaluate_intervention(
                model,
                tok,
                NONE,
                suites,
                [0.0],
                batch_size=cfg.eval.batch_size,
                unsteered=ctx.unsteered,
            )
            with run.unit(rel, key) as out:
                write_results(frames, out, config, suites=info)
        bar.advance(task)
        for cand, rel in todo:
            key = content_key(
                {
                    **common,
                    # the method list and the methods' own settings key only what they shape
                    "compare": c.model_dump(
                        mode="json", include=set(CompareConfig.model_fields) - {"methods"}
                    ),
                    "settings": _dumped(inputs.settings_of(cand.method)),
                    "prompts": content_key([prompts.calibration, prompts.audit]),
                    "candidate": [cand.method, cand.family, cand.seed, cand.sources],
                }
            )
            if not _todo(ctx, rel, key):
                bar.advance(task)
                continue
            name = cand.slug
            bar.update(task, description=f"calibrating {name}")
            intervention = cand.build()
            found = calibrate_budgets(model, tok, intervention, *chats, c, base_cache=base_cache)
            bar.update(task, description=f"scoring {name}")
            if intervention.discrete:  # one fixed strength stands for every budget
                found = dict(list(found.items())[:1])
            frames, records = _calibrated_frames(
                model, tok, intervention, suites, found, cfg.eval.batch_size
            )
            with run.unit(rel, key) as out:
                write_results(frames, out, config, calibration=records, suites=info)
            intervention.save(run.layout.activation(name))  # what it fitted, if anything
            for budget, cals in found.items():
                for cal in cals.values():
                    ctx.console.print(
                        f"  {name} at {budget:g} nat: {cal.message()}", highlight=False
                    )
            bar.advance(task)
    if base_cache.hits + base_cache.misses:  # what the kept base log-probs saved
        run.manifest["counts"]["compare"]["base_logprobs"] = {
            "computed": base_cache.misses,
            "reused": base_cache.hits,
        }


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


_CHOICE = {"analyses", "families", "seeds"}  # which analyses run, not what they make


def _dumped(settings) -> dict | None:
    """An entry's own settings as a cache-key part (None: it has none)."""
    return None if settings is None else settings.model_dump(mode="json")


def _analysed_units(ctx: Context) -> list[tuple[str, int]]:
    a = ctx.cfg.analysis
    units = [(f, s) for f, s in ctx.units() if (not a.families or f in a.families) and s in a.seeds]
    if not units:
        raise UserError(
            f"analysis.families {list(a.families)} and analysis.seeds {list(a.seeds)} select "
            "no vector of this run; name trained families and seeds"
        )
    return units


def _full_calibration(ctx: Context, family: str, seed: int) -> list[dict]:
    """The compare stage's calibration of the full vector at the verdict's budget: its
    − and + side records (empty when it was not compared)."""
    from weightsteer.evals.results import results_calibration
    from weightsteer.report.compare import verdict_budget

    path = ctx.run.root / RunLayout.rel_compare(f"weight-{family}-seed{seed}")
    records = results_calibration(path) if path.is_file() else []
    if not records:
        return []
    budget = verdict_budget(sorted({r["budget"] for r in records}), ctx.cfg.compare.target_kl)
    sides = sorted((r for r in records if r["budget"] == budget), key=lambda r: r["strength"])
    return sides if len(sides) == 2 else []


def stage_analyze(ctx: Context) -> None:
    """Every analysis variant of the selected vectors (``analysis/``), scored through the
    weight intervention at ±alpha and at the full vector's calibrated strengths, on the
    run's rows; and the cosine of every pair of the run's vectors."""
    import pandas as pd

    from weightsteer.analysis import (
        ANALYSES,
        FULL,
        AnalysisContext,
        AnalysisConfig,
        Variant,
        needs_others,
    )
    from weightsteer.analysis.shared import cosine_rows
    from weightsteer.core.vector import WeightVector
    from weightsteer.evals.results import suite_info, write_results
    from weightsteer.methods.weight import WeightSteering

    cfg, run = ctx.cfg, ctx.run
    a = cfg.analysis
    units = _analysed_units(ctx)
    names = {s.name for s in ctx.suites()}
    unknown = sorted(set(a.suites) - names)
    if unknown:
        raise UserError(
            f"analysis.suites: {unknown[0]} is not a suite of this run; "
            f"known: {', '.join(sorted(names))}"
        )
    suites = [s for s in ctx.suites() if not a.suites or s.name in a.suites]
    every = {f"{f}-seed{s}": run.layout.vector(f, s) for f, s in ctx.units()}
    rel = RunLayout.rel_cosines()
    key = content_key({"vectors": {k: digest(p) for k, p in every.items()}, "scopes": 2})
    if _todo(ctx, rel, key):
        loaded = {k: WeightVector.load(p) for k, p in every.items()}
        with run.unit(rel, key) as out:
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out, overwrite=True) as tmp:
                pd.DataFrame(cosine_rows(loaded)).to_csv(tmp, index=False)
    config, info = cfg.model_dump(mode="json"), suite_info(suites)
    finetune = bool(cfg.model.target)
    with _bar(ctx) as bar:
        task = bar.add_task("analysing", total=len(units) * len(a.analyses))
        for fam, seed in units:
            cals = _full_calibration(ctx, fam, seed) if a.calibrated else []
            vec = None  # loaded once per vector, when an analysis of it is to be made
            for name in a.analyses:
                rel = RunLayout.rel_analysis(fam, seed, name)
                key = content_key(
                    {
                        # what the variants are made of: the vector, and for the shared
                        # basis every vector of its seed
                        "vectors": {
                            k: digest(p)
                            for k, p in every.items()
                            if k == f"{fam}-seed{seed}"
                            or (needs_others(name) and k.endswith(f"-seed{seed}"))
                        },
                        "analysis": name,
                        "settings": a.model_dump(
                            mode="json", include=set(AnalysisConfig.model_fields) - _CHOICE
                        ),
                        "own": _dumped(entry_settings(a, ANALYSES, name)),
                        "rows": _rows_key(suites),
                        "eval": cfg.eval.model_dump(mode="json", exclude={"alphas"}),
                        "model": ctx.target_fingerprint(),
                        "calibration": [[c["strength"], c["budget"]] for c in cals],
                    }
                )
                if not _todo(ctx, rel, key):
                    bar.advance(task)
                    continue
                model, tok = ctx.target()
                vec = vec or WeightVector.load(every[f"{fam}-seed{seed}"])
                others = (  # only what says it needs them reads the other vectors
                    {
                        k: WeightVector.load(p)
                        for k, p in every.items()
                        if k.endswith(f"-seed{seed}")
                    }
                    if needs_others(name)
                    else {}
                )
                actx = AnalysisContext(base=model, others=others, draws=a.draws, seed=a.seed)
                own = entry_settings(a, ANALYSES, name)
                # the full vector is scored in every table: each is read on its own
                variants = [Variant(FULL, vec), *ANALYSES.get(name)(vec, actx, own)]
                frames = []
                for i, v in enumerate(variants):
                    bar.update(
                        task,
                        description=f"analysing {fam} seed {seed}: {v.name} "
                        f"({i + 1}/{len(variants)})",
                    )
                    inter = WeightSteering(
                        vector=v.vector,
                        family=fam,
                        seed=seed,
                        variant=v.name,
                        allow_finetune=finetune,
                    )
                    frames += evaluate_intervention(
                        model,
                        tok,
                        inter,
                        suites,
                        [-a.alpha, a.alpha],
                        batch_size=cfg.eval.batch_size,
                    )
                    if cals:
                        frames += evaluate_intervention(
                            model,
                            tok,
                            inter,
                            suites,
                            [c["strength"] for c in cals],
                            calibrations=cals,
                            batch_size=cfg.eval.batch_size,
                        )
                with run.unit(rel, key) as out:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    write_results(frames, out, config, suites=info)
                bar.advance(task)


def report_files(run: Run) -> RunFiles:
    lay = run.layout
    return RunFiles(
        run.manifest,
        lay.results(),
        lay.compared(),
        lay.vectors(),
        lay.report,
        lay.headline,
        lay.figures,
        lay.analyses(),
        lay.root / RunLayout.rel_cosines(),
    )


def stage_report(ctx: Context) -> None:
    from weightsteer.report import write_report

    path = write_report(report_files(ctx.run))
    ctx.console.print(f"  report: {path}", highlight=False)


STAGE_FUNCS = {
    "data": stage_data,
    "train": stage_train,
    "extract": stage_extract,
    "eval": stage_eval,
    "compare": stage_compare,
    "report": stage_report,
    "analyze": stage_analyze,  # on demand: `weightsteer analyze --run R`
}


def preflight(cfg: RunConfig) -> list:
    """Everything checkable before anything is written or loaded: behaviour, questions,
    suites, filter, compare methods and prompts. Bad input fails here with one line.
    Returns the suites, for the run's ``Context`` (built once)."""
    from weightsteer.core.models import check_device, is_adapter_folder
    from weightsteer.core.sources import check_source
    from weightsteer.methods import check_methods
    from weightsteer.methods.calibration_prompts import calibration_prompts
    from weightsteer.pairs.filters import check_filter
    from weightsteer.pairs.personas import load_pair
    from weightsteer.pairs.questions import split_questions

    check_source(cfg.model.id)
    if cfg.model.target and not is_adapter_folder(cfg.model.target):
        check_source(cfg.model.target)
    pair = load_pair(cfg.behavior.name, cfg.behavior.file)
    split_questions(cfg.questions)
    suites = build_run_suites(cfg)
    if cfg.model.device != "auto":
        check_device(cfg.model.device)
    dist.check_device_map(cfg.model.device_map)
    check_filter(cfg.data.filter)
    check_methods(cfg.compare.methods, pair)
    if cfg.compare.methods:
        calibration_prompts(cfg.compare, cfg.questions, set())
    return suites


def run_stages(ctx: Context, stages: Sequence[str] = STAGES) -> None:
    """Run ``stages`` in order. Under several processes every rank runs data and train
    (generation split by chunks, training data parallel), then the others stop and rank 0
    does the rest."""
    for name in stages:
        if not dist.is_main() and name not in ALL_RANKS:
            continue
        t0, made = time.perf_counter(), ctx.run.made
        ctx.console.print(f"[bold]{name}[/]")
        STAGE_FUNCS[name](ctx)
        seconds = round(time.perf_counter() - t0, 1)
        stages = ctx.run.manifest["stages"]
        # a stage that reused every unit keeps the seconds of the run that made them
        if ctx.run.made > made or name == "report" or name not in stages:
            stages[name] = {"seconds": seconds, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        ctx.run.save()
        if name in ALL_RANKS:
            dist.barrier()  # rank 0's writes of this stage are there for the next
