"""Verbs on a run folder: run (the whole pipeline), compare, report, analyze, and
config-help (every key a run config takes)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from weightsteer.cli.app import (
    EngineOpt,
    EngineUrlOpt,
    NameOpt,
    OverwriteOpt,
    RunsDirOpt,
    app,
    console,
    out,
    quiet_transformers,
    run_stage,
    start_run,
    with_engine,
)
from weightsteer.core.errors import UserError


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="run config (TOML)")],
    name: NameOpt = None,
    runs_dir: RunsDirOpt = Path("runs"),
    engine: EngineOpt = None,
    engine_url: EngineUrlOpt = None,
) -> None:
    """The whole pipeline: data -> train -> extract -> eval -> report, resumable."""
    import time

    from weightsteer.core import dist
    from weightsteer.pipeline import load_config, run_stages

    t0 = time.perf_counter()
    ctx = start_run(with_engine(load_config(config), engine, engine_url), name, runs_dir)
    console.print(f"run folder {ctx.run.root} (config hash {ctx.cfg.digest()})", highlight=False)
    from weightsteer.report.summary import shift_summary

    run_stages(ctx)
    if not dist.is_main():
        return  # rank 0 did the rest of the stages and speaks for the job
    lay = ctx.run.layout
    if lay.results():  # a run with no eval suites has vectors and a report, no shifts
        console.print(shift_summary(lay.results(), ctx.cfg.metrics))
    console.print(
        f"done in {time.perf_counter() - t0:.0f} s. Report: {lay.report}", highlight=False
    )
    print(lay.report)


@app.command()
def compare(
    config: Annotated[Path, typer.Option("--config", "-c", help="run config (TOML)")],
    name: NameOpt = None,
    runs_dir: RunsDirOpt = Path("runs"),
    engine: EngineOpt = None,
    engine_url: EngineUrlOpt = None,
) -> None:
    """Weight steering vs prompting vs activation steering at the same KL budget:
    data -> train -> extract (reused when done) -> compare -> report."""
    from weightsteer.core import dist
    from weightsteer.pipeline import load_config, run_stages

    cfg = with_engine(load_config(config), engine, engine_url)
    if not cfg.compare.methods:
        raise UserError(f"{config}: compare.methods is empty; list the methods to compare")
    ctx = start_run(cfg, name, runs_dir)
    console.print(f"run folder {ctx.run.root} (config hash {ctx.cfg.digest()})", highlight=False)
    from weightsteer.report.summary import compare_summary

    run_stages(ctx, ["data", "train", "extract", "compare", "report"])
    if not dist.is_main():
        return  # rank 0 did the rest of the stages and speaks for the job
    console.print(
        compare_summary(ctx.run.layout.compared(), ctx.cfg.metrics, ctx.cfg.compare.target_kl)
    )
    console.print(
        "KL * : a prompt's fixed cost (it has no strength to tune); ⚠ : missed the budget"
    )
    print(ctx.run.layout.report)


@app.command()
def report(
    path: Annotated[Path, typer.Argument(help="run folder, or a results .parquet")],
    overwrite: OverwriteOpt = False,
) -> None:
    """Metrics tables and figures: report.md of a run folder, or <stem>.md next to a
    results table from `weightsteer eval --out`."""
    if path.suffix == ".parquet":
        from weightsteer.evals.results import results_config
        from weightsteer.report import write_table_report

        if not path.is_file():
            raise UserError(f"results table {path} does not exist")
        print(write_table_report(path, results_config(path), overwrite=overwrite))
        return
    from weightsteer.pipeline import RunLayout

    run_stage(path, "report")  # refuses a folder that is not a run
    print(RunLayout(path).report)


@app.command()
def analyze(
    run_dir: Annotated[Path, typer.Option("--run", help="a run folder with vectors")],
    analysis: Annotated[
        list[str] | None,
        typer.Option(help="analysis to run (repeatable; default: the config's analysis.analyses)"),
    ] = None,
) -> None:
    """Where dW lives: layer/module keep and drop, singular-direction crops, magnitude vs
    direction, the families' shared basis, each variant scored on the run's rows at the
    full vector's strengths; then the report (its analysis section)."""
    from pydantic import ValidationError

    from weightsteer.pipeline import Context, Run, run_stages

    quiet_transformers()
    run = Run.open(run_dir)
    if analysis:
        try:
            chosen = run.cfg.analysis.model_validate(
                {**run.cfg.analysis.model_dump(), "analyses": analysis}
            )
        except ValidationError as e:
            raise UserError(
                f"--analysis: {e.errors()[0]['msg'].removeprefix('Value error, ')}"
            ) from None
        run.cfg = run.cfg.model_copy(update={"analysis": chosen})
    ctx = Context(run, console)
    run_stages(ctx, ["analyze", "report"])
    print(run.layout.report)


@app.command("config-help")
def config_help() -> None:
    """Every run-config key with its default and meaning."""
    from weightsteer.pipeline import describe

    table = Table(title="run config keys (TOML: [section] key = value)")
    for col in ("key", "default", "meaning"):
        table.add_column(col)
    for key, default, text in describe():
        table.add_row(key, default, text)
    out.print(table)
