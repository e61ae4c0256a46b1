"""Pipeline verbs, in pipeline order: run, data, train, extract, eval, compare, report,
analyze."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from weightsteer.cli.app import (
    ConfigOpt,
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    NameOpt,
    OptModel,
    OverwriteOpt,
    RunOpt,
    RunsDirOpt,
    SystemOpt,
    app,
    console,
    default_questions,
    load_for_cli,
    need,
    out,
    parse_floats,
    parse_options,
    quiet_transformers,
    run_stage,
    start_run,
)
from weightsteer.core.errors import UserError


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="run config (TOML)")],
    name: NameOpt = None,
    runs_dir: RunsDirOpt = Path("runs"),
) -> None:
    """The whole pipeline: data -> train -> extract -> eval -> report, resumable."""
    import time

    from weightsteer.core import dist
    from weightsteer.pipeline import load_config, run_stages

    t0 = time.perf_counter()
    ctx = start_run(load_config(config), name, runs_dir)
    console.print(f"run folder {ctx.run.root} (config hash {ctx.cfg.digest()})", highlight=False)
    from weightsteer.report.summary import shift_summary

    run_stages(ctx)
    if not dist.is_main():
        return  # rank 0 did the rest of the stages and speaks for the job
    lay = ctx.run.layout
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
) -> None:
    """Weight steering vs prompting vs activation steering at the same KL budget:
    data -> train -> extract (reused when done) -> compare -> report."""
    from weightsteer.core import dist
    from weightsteer.pipeline import load_config, run_stages

    cfg = load_config(config)
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
def data(
    config: ConfigOpt = None,
    model: OptModel = None,
    behavior: Annotated[str, typer.Option(help="built-in persona pair")] = "honesty",
    questions: Annotated[
        str | None, typer.Option(help="question source (default: toyworld or builtin:honesty)")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="run folder to write data/{pos,neg}.jsonl into")
    ] = None,
    pair_filter: Annotated[
        str | None,
        typer.Option("--filter", help="'module:function', 'judge:self' or 'judge:<model>'"),
    ] = None,
    n_train: Annotated[int, typer.Option(help="questions to generate pairs from")] = 60,
    run_dir: RunOpt = None,
    name: NameOpt = None,
    runs_dir: RunsDirOpt = Path("runs"),
) -> None:
    """Generate POS/NEG persona pairs (the data stage) into a run folder."""
    from weightsteer.pipeline import load_config, parse_config, run_stages

    if run_dir is not None:
        return run_stage(run_dir, "data")
    if config is not None:
        cfg = load_config(config)
    else:
        need(model=model, out=out_dir)
        source = questions or default_questions(model)
        cfg = parse_config(
            {
                "model": {"id": model},
                "behavior": {"name": behavior},
                # data alone holds nothing out: every question is a training question
                "questions": {"source": source, "n_train": n_train, "n_eval": 0},
                "data": {"filter": pair_filter},
                "eval": {"suites": []},  # a pipeline with evals: weightsteer run --config
            },
            "options",
        )
    ctx = start_run(cfg, name, runs_dir, out_dir)
    run_stages(ctx, ["data"])
    for side in ("pos", "neg"):
        print(ctx.run.layout.data(side))


@app.command()
def train(
    model: OptModel = None,
    data: Annotated[
        Path | None, typer.Option(help="chat jsonl (pairs format: pos.jsonl or neg.jsonl)")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="adapter folder to write")] = None,
    run_dir: RunOpt = None,
    family: Annotated[
        str, typer.Option(help="adapter family (see `weightsteer config-help`)")
    ] = "lora",
    rank: int = 32,
    lora_alpha: Annotated[
        float,
        typer.Option(
            "--lora-alpha", help="LoRA scaling (steer and export call the strength --alpha)"
        ),
    ] = 64.0,
    old_alpha: Annotated[
        float | None, typer.Option("--alpha", hidden=True, help="deprecated: --lora-alpha")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="default: the family's")] = None,
    epochs: float = 1.0,
    max_steps: int = -1,
    batch_size: int = 8,
    layers: Annotated[str, typer.Option(help="depth fractions lo,hi")] = "0.3,0.8",
    targets: Annotated[str, typer.Option(help="module kinds, comma-separated")] = (
        "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    ),
    seed: int = 0,
    option: Annotated[list[str], typer.Option(help="family option key=value")] = [],  # noqa: B006
    init: Annotated[
        Path | None,
        typer.Option(
            help="initial state shared by the POS and NEG adapters (.safetensors): made by "
            "the first call, read by the second, so both start identical"
        ),
    ] = None,
    dtype: DtypeOpt = "default",
    device: DeviceOpt = "auto",
    device_map: DeviceMapOpt = "none",
    system_prompt: SystemOpt = "template",
    overwrite: OverwriteOpt = False,
) -> None:
    """Fine-tune one adapter on a chat jsonl (loss on the assistant's answer only)."""
    from pydantic import ValidationError

    if run_dir is not None:
        return run_stage(run_dir, "train")
    need(model=model, data=data, out=out_dir)

    from weightsteer.adapters import AdapterSpec
    from weightsteer.adapters.train import train_adapter
    from weightsteer.core.files import digest
    from weightsteer.pairs.pairs_file import load_chat_jsonl

    if old_alpha is not None:
        console.print(
            "[yellow]train --alpha is deprecated: it is the LoRA scaling; say --lora-alpha "
            "(--alpha is the steering strength in steer and export)[/]"
        )
        lora_alpha = old_alpha
    records = load_chat_jsonl(data)
    lohi = parse_floats(layers, "--layers")
    if len(lohi) != 2:
        raise UserError(f"--layers takes two fractions lo,hi, got {layers!r}")
    try:
        spec = AdapterSpec(
            family=family,
            rank=rank,
            alpha=lora_alpha,
            lr=lr,
            epochs=epochs,
            max_steps=max_steps,
            batch_size=batch_size,
            layers=tuple(lohi),
            targets=tuple(t.strip() for t in targets.split(",") if t.strip()),
            seed=seed,
            options=parse_options(option),
        )
    except ValidationError as e:
        err = e.errors()[0]
        name = {"alpha": "lora-alpha"}.get(str(err["loc"][0]), str(err["loc"][0]))
        raise UserError(f"--{name.replace('_', '-')}: {err['msg']}") from None
    if out_dir.exists() and not overwrite:
        raise UserError(f"{out_dir} already exists; choose another --out or pass --overwrite")
    m, tok = load_for_cli(model, dtype, system_prompt, device, device_map)
    info = {"path": str(data), "sha256": digest(data), "rows": len(records)}
    train_adapter(
        m, tok, records, spec, out_dir, data_info=info, overwrite=overwrite, init_state=init
    )
    console.print(f"[green]saved[/] {spec.family} adapter ({len(records)} examples)")
    print(out_dir)


@app.command()
def extract(
    model: OptModel = None,
    pos: Annotated[
        Path | None, typer.Option(help="POS adapter folder (or a fine-tuned model folder)")
    ] = None,
    neg: Annotated[
        Path | None, typer.Option(help="NEG adapter folder (or a fine-tuned model folder)")
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="vector file (.safetensors)")
    ] = None,
    run_dir: RunOpt = None,
    behavior: Annotated[str | None, typer.Option(help="behaviour name for the metadata")] = None,
    common_out: Annotated[
        Path | None,
        typer.Option(help="also write theta_pos + theta_neg - 2 base here (for monitor)"),
    ] = None,
    dtype: DtypeOpt = "float32",
    device: DeviceOpt = "auto",
    device_map: DeviceMapOpt = "none",
    overwrite: OverwriteOpt = False,
) -> None:
    """Extract dW = theta_pos - theta_neg from two adapters (exact, float32), or from two
    fine-tunes of --model (model folders or adapters, in any mix: tau_pos - tau_neg)."""
    from weightsteer.adapters.extract import extract_common, extract_vector
    from weightsteer.core.files import check_writable
    from weightsteer.core.models import is_adapter_folder

    if run_dir is not None:
        return run_stage(run_dir, "extract")
    need(model=model, pos=pos, neg=neg, out=out_file)

    check_writable(out_file, overwrite=overwrite)
    if common_out is not None:
        check_writable(common_out, overwrite=overwrite)
    m, _ = load_for_cli(model, dtype, device=device, device_map=device_map)
    if is_adapter_folder(pos) and is_adapter_folder(neg):
        vec = extract_vector(m, pos, neg, behavior=behavior, model_id=model, progress=True)
        common = extract_common(m, pos, neg, vec) if common_out is not None else None
    else:  # a full fine-tune on either side: the difference of the two weight changes
        from weightsteer.monitor.taus import tau_vectors

        vec, common = tau_vectors(m, pos, neg, model_id=model, behavior=behavior, progress=True)
        common = common if common_out is not None else None
    vec.save(out_file, overwrite=overwrite)
    console.print(f"[green]saved[/] {vec}")
    if common is not None:
        common.save(common_out, overwrite=overwrite)
        console.print(f"[green]saved[/] common mode to {common_out}", highlight=False)
    print(out_file)


@app.command(name="eval")
def eval_cmd(
    model: OptModel = None,
    vector: Annotated[Path | None, typer.Option(help="vector file; none: the base only")] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="steer and score this fine-tune of --model (a model folder, hub id, or PEFT "
            "adapter folder trained on --model) instead of --model itself"
        ),
    ] = None,
    suite: Annotated[list[str], typer.Option(help="suite name (repeatable)")] = ["claims"],  # noqa: B006
    data_source: Annotated[
        str | None,
        typer.Option("--rows", help="rows of the suite: a file, builtin:<name> or hf:<id>"),
    ] = None,
    old_data: Annotated[
        str | None, typer.Option("--data", hidden=True, help="deprecated: --rows")
    ] = None,
    config: ConfigOpt = None,
    alphas: Annotated[str, typer.Option(help="comma-separated strengths")] = "-1,-0.5,0,0.5,1",
    out_file: Annotated[Path | None, typer.Option("--out", help="results .parquet")] = None,
    run_dir: RunOpt = None,
    dtype: DtypeOpt = "default",
    device: DeviceOpt = "auto",
    device_map: DeviceMapOpt = "none",
    system_prompt: SystemOpt = "template",
    overwrite: OverwriteOpt = False,
) -> None:
    """Score suites at a strength sweep into the long results table.

    Suite settings (tinymfv target, dilemmas filter, ...) come from --config's [eval]
    section when given; --data sets the rows of the suite (one suite only).
    """
    from weightsteer.core.files import check_writable
    from weightsteer.core.models import is_adapter_folder, merge_adapter
    from weightsteer.evals.evaluate import evaluate_intervention
    from weightsteer.evals.results import suite_info, write_results
    from weightsteer.methods import NONE
    from weightsteer.pipeline import load_config, parse_config
    from weightsteer.pipeline.run import build_run_suites

    if run_dir is not None:
        return run_stage(run_dir, "eval")
    if old_data is not None:
        console.print(
            "[yellow]eval --data is deprecated: say --rows (train's --data is its training "
            "chats)[/]"
        )
        data_source = data_source or old_data
    need(model=model, out=out_file)
    check_writable(out_file, overwrite=overwrite)
    data = load_config(config).model_dump(mode="json") if config else {}
    given = {"id": model, "device": device, "device_map": device_map, "dtype": dtype}
    given["target"] = target or ""
    data["model"] = {**data.get("model", {}), **given}
    if not config:
        data["model"]["system_prompt"] = system_prompt
    if not config:
        data["questions"] = {"source": default_questions(model)}
    ev = data.setdefault("eval", {})
    ev.update(suites=suite, alphas=parse_floats(alphas, "--alphas"))
    if data_source is not None:
        from weightsteer.evals import SUITES

        readers = [
            e.name for e in SUITES.entries() if e.config and "source" in e.config.model_fields
        ]
        name = suite[0].partition(":")[0] if len(suite) == 1 else ""
        if name not in readers:
            raise UserError(f"--rows takes the rows of one suite: {', '.join(readers)}")
        ev[name] = {**ev.get(name, {}), "source": data_source}
    cfg = parse_config(data, "options")
    suites = build_run_suites(cfg)
    mc = cfg.model
    m, tok = load_for_cli(
        target if target and not is_adapter_folder(target) else model,
        mc.dtype, mc.system_prompt, mc.device, mc.device_map,
    )  # fmt: skip
    if target and is_adapter_folder(target):
        m = merge_adapter(m, target)
    intervention, strengths = NONE, [0.0]
    if vector is not None:
        from weightsteer.core.vector import WeightVector
        from weightsteer.methods.weight import WeightSteering

        vec = WeightVector.load(vector)
        intervention = WeightSteering(
            vector=vec,
            family=vec.meta.family,
            seed=vec.meta.seed or 0,
            allow_finetune=bool(target),  # same shapes still checked
        )
        strengths = cfg.eval.alphas
    frames = evaluate_intervention(m, tok, intervention, suites, strengths)
    write_results(frames, out_file, cfg.model_dump(mode="json"), suites=suite_info(suites))
    console.print(f"[green]saved[/] {sum(len(f) for f in frames)} rows")
    print(out_file)


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
