"""Running stages in order, and what is checked before any of them runs."""

from __future__ import annotations

import time
from collections.abc import Sequence

from weightsteer.core import dist
from weightsteer.core.errors import UserError
from weightsteer.pipeline.config import RunConfig
from weightsteer.pipeline.engine import close_engine
from weightsteer.pipeline.run import Context, build_run_suites
from weightsteer.pipeline.stages.analyze import stage_analyze
from weightsteer.pipeline.stages.common import (
    ALL_RANKS,
    STAGES,
)
from weightsteer.pipeline.stages.compare import stage_compare
from weightsteer.pipeline.stages.data import stage_data
from weightsteer.pipeline.stages.eval_sweep import stage_eval
from weightsteer.pipeline.stages.extract import stage_extract
from weightsteer.pipeline.stages.report import stage_report
from weightsteer.pipeline.stages.train import stage_train

GENERATES = ("data", "eval", "compare")  # the stages that may generate on the run's engine
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
    from weightsteer.core.models import check_device, check_target_shapes, is_adapter_folder
    from weightsteer.core.sources import check_source
    from weightsteer.methods import check_methods
    from weightsteer.methods.calibration_prompts import calibration_prompts
    from weightsteer.pairs.filters import check_filter
    from weightsteer.pairs.personas import load_pair
    from weightsteer.pairs.questions import split_questions

    check_source(cfg.model.id)
    if cfg.model.target and not is_adapter_folder(cfg.model.target):
        check_source(cfg.model.target)
        check_target_shapes(cfg.model.id, cfg.model.target)
    pair = load_pair(cfg.behavior.name, cfg.behavior.file)
    split_questions(cfg.questions)
    suites = build_run_suites(cfg)
    if cfg.model.device != "auto":
        check_device(cfg.model.device)
    dist.check_device_map(cfg.model.device_map)
    check_filter(cfg.data.filter)
    if cfg.engine.name == "vllm":  # the engine is there before any stage starts
        from weightsteer.core.engine import check_server, vllm_python

        check_server(cfg.engine.url) if cfg.engine.url else vllm_python()
        unserved = [m for m in cfg.compare.methods if m.startswith("act:") or m == "prompt:dosed"]
        if unserved and cfg.engine.fallback == "refuse":
            raise UserError(
                f"{', '.join(unserved)} cannot be applied by stock vLLM and "
                '[engine] fallback = "refuse"; drop them or set fallback = "hf"'
            )
    check_methods(cfg.compare.methods, pair, cfg)
    if cfg.compare.methods:
        calibration_prompts(cfg.compare, cfg.questions, set())
    return suites


def run_stages(ctx: Context, stages: Sequence[str] = STAGES) -> None:
    """Run ``stages`` in order. Under several processes every rank runs data and train
    (generation split by chunks, training data parallel), then the others stop and rank 0
    does the rest."""
    try:
        for name in stages:
            if not dist.is_main() and name not in ALL_RANKS:
                continue
            if name not in GENERATES:
                close_engine(ctx)  # no idle vLLM server beside a stage that does not generate
            t0, made = time.perf_counter(), ctx.run.made
            ctx.console.print(f"[bold]{name}[/]")
            STAGE_FUNCS[name](ctx)
            seconds = round(time.perf_counter() - t0, 1)
            timings = ctx.run.manifest["stages"]
            # a stage that reused every unit keeps the seconds of the run that made them
            if ctx.run.made > made or name == "report" or name not in timings:
                timings[name] = {"seconds": seconds,
                                 "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
            ctx.run.save()
            if name in ALL_RANKS:
                dist.barrier()  # rank 0's writes of this stage are there for the next
    finally:
        close_engine(ctx)  # the run's vLLM server, if one was started
