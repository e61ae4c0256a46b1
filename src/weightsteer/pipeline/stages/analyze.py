"""The analyze stage (on demand): where each vector's effect lives (``analysis/``)."""

from __future__ import annotations

from weightsteer.core.config import content_key, entry_settings
from weightsteer.core.errors import UserError
from weightsteer.core.files import atomic_path, digest
from weightsteer.evals.results import suite_info, write_results
from weightsteer.evals.score_intervention import evaluate_intervention
from weightsteer.pipeline.layout import RunLayout
from weightsteer.pipeline.run import Context
from weightsteer.pipeline.stages.common import (
    progress_bar,
    rows_key,
    settings_key,
    unit_todo,
)

_CHOICE = {"analyses", "families", "seeds"}  # which analyses run, not what they make


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
    from weightsteer.report.comparison_section import verdict_budget

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
    from weightsteer.analysis import ANALYSES, AnalysisConfig, needs_others

    cfg, run = ctx.cfg, ctx.run
    a = cfg.analysis
    units = _analysed_units(ctx)
    suites = _analysed_suites(ctx)
    every = {f"{f}-seed{s}": run.layout.vector(f, s) for f, s in ctx.units()}
    _cosines(ctx, every)
    with progress_bar(ctx) as bar:
        task = bar.add_task("analysing", total=len(units) * len(a.analyses))
        for fam, seed in units:
            cals = _full_calibration(ctx, fam, seed) if a.calibrated else []
            loaded: dict = {}  # the vector, loaded once when an analysis of it is to be made
            for name in a.analyses:
                rel = RunLayout.rel_analysis(fam, seed, name)
                # what the variants are made of: the vector, and every vector of its seed
                # for an analysis that needs the others
                used = {
                    k: p
                    for k, p in every.items()
                    if k == f"{fam}-seed{seed}"
                    or (needs_others(name) and k.endswith(f"-seed{seed}"))
                }
                key = content_key(
                    {
                        "vectors": {k: digest(p) for k, p in used.items()},
                        "analysis": name,
                        "settings": a.model_dump(
                            mode="json", include=set(AnalysisConfig.model_fields) - _CHOICE
                        ),
                        "own": settings_key(entry_settings(a, ANALYSES, name)),
                        "rows": rows_key(suites),
                        "eval": cfg.eval_key(),
                        "model": ctx.target_fingerprint(),
                        "calibration": [[c["strength"], c["budget"]] for c in cals],
                    }
                )
                if unit_todo(ctx, rel, key):
                    what = f"analysing {fam} seed {seed}"
                    frames = _score_variants(
                        ctx, name, (fam, seed), every, loaded, suites, cals,
                        lambda d, what=what: bar.update(task, description=f"{what}: {d}"),
                    )  # fmt: skip
                    with run.unit(rel, key) as out:
                        out.parent.mkdir(parents=True, exist_ok=True)
                        write_results(
                            frames, out, cfg.model_dump(mode="json"), suites=suite_info(suites)
                        )
                bar.advance(task)


def _analysed_suites(ctx: Context) -> list:
    """The run's suites that ``analysis.suites`` names (all when it names none)."""
    a = ctx.cfg.analysis
    names = {s.name for s in ctx.suites()}
    unknown = sorted(set(a.suites) - names)
    if unknown:
        raise UserError(
            f"analysis.suites: {unknown[0]} is not a suite of this run; "
            f"known: {', '.join(sorted(names))}"
        )
    return [s for s in ctx.suites() if not a.suites or s.name in a.suites]


def _cosines(ctx: Context, every: dict) -> None:
    """``analysis/cosines.csv``: the cosine of every pair of the run's vectors."""
    import pandas as pd

    from weightsteer.analysis.shared_basis import cosine_rows
    from weightsteer.core.vector import WeightVector

    rel = RunLayout.rel_cosines()
    key = content_key({"vectors": {k: digest(p) for k, p in every.items()}, "scopes": 2})
    if unit_todo(ctx, rel, key):
        loaded = {k: WeightVector.load(p) for k, p in every.items()}
        with ctx.run.unit(rel, key) as out:
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out, overwrite=True) as tmp:
                pd.DataFrame(cosine_rows(loaded)).to_csv(tmp, index=False)


def _score_variants(
    ctx: Context, name: str, unit, every: dict, loaded: dict, suites, cals, describe
) -> list:
    """The full vector and every variant analysis ``name`` makes of it, each scored at
    ±alpha and at the full vector's calibrated strengths (``cals``)."""
    from weightsteer.analysis import ANALYSES, FULL, AnalysisContext, Variant, needs_others
    from weightsteer.core.vector import WeightVector
    from weightsteer.methods.weight import WeightSteering

    (fam, seed), a, batch = unit, ctx.cfg.analysis, ctx.cfg.eval.batch_size
    model, tok = ctx.target()
    me = f"{fam}-seed{seed}"
    if me not in loaded:
        loaded[me] = WeightVector.load(every[me])
    vec = loaded[me]
    others = (  # only what says it needs them reads the other vectors
        {k: WeightVector.load(p) for k, p in every.items() if k.endswith(f"-seed{seed}")}
        if needs_others(name)
        else {}
    )
    actx = AnalysisContext(base=model, others=others, draws=a.draws, seed=a.seed)
    own = entry_settings(a, ANALYSES, name)
    # the full vector is scored in every table: each is read on its own
    variants = [Variant(FULL, vec), *ANALYSES.get(name)(vec, actx, own)]
    frames = []
    for i, v in enumerate(variants):
        describe(f"{v.name} ({i + 1}/{len(variants)})")
        inter = WeightSteering(
            vector=v.vector,
            family=fam,
            seed=seed,
            variant=v.name,
            allow_finetune=bool(ctx.cfg.model.target),
        )
        frames += evaluate_intervention(
            model, tok, inter, suites, [-a.alpha, a.alpha], batch_size=batch
        )
        if cals:
            strengths = [c["strength"] for c in cals]
            frames += evaluate_intervention(
                model, tok, inter, suites, strengths, calibrations=cals, batch_size=batch
            )
    return frames
