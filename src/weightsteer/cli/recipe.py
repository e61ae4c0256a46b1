"""The recipe's steps as verbs of their own, in order: data, train, extract, eval (each
also redoes its stage on a run folder with --run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

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
    load_for_cli,
    need,
    parse_floats,
    parse_options,
    run_stage,
    start_run,
)
from weightsteer.core.errors import UserError


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
    dtype: DtypeOpt = "default",
    device: DeviceOpt = "auto",
) -> None:
    """Generate POS/NEG persona pairs (the data stage) into a run folder."""
    from weightsteer.pipeline import load_config, run_stages
    from weightsteer.pipeline.verbs import data_config

    if run_dir is not None:
        return run_stage(run_dir, "data")
    if config is not None:
        cfg = load_config(config)
    else:
        need(model=model, out=out_dir)
        flags = {"id": model, "device": device, "dtype": dtype}
        cfg = data_config(flags, behavior, questions, n_train, pair_filter)
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
    if run_dir is not None:
        return run_stage(run_dir, "train")
    need(model=model, data=data, out=out_dir)

    from weightsteer.adapters.train import train_adapter
    from weightsteer.core.files import digest
    from weightsteer.pairs.pairs_file import load_chat_jsonl

    records = load_chat_jsonl(data)
    spec = _adapter_spec(
        family=family,
        rank=rank,
        alpha=_lora_alpha(lora_alpha, old_alpha),
        lr=lr,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        layers=layers,
        targets=targets,
        seed=seed,
        options=option,
    )
    if out_dir.exists() and not overwrite:
        raise UserError(f"{out_dir} already exists; choose another --out or pass --overwrite")
    m, tok = load_for_cli(model, dtype, system_prompt, device, device_map)
    info = {"path": str(data), "sha256": digest(data), "rows": len(records)}
    train_adapter(
        m, tok, records, spec, out_dir, data_info=info, overwrite=overwrite, init_state=init
    )
    console.print(f"[green]saved[/] {spec.family} adapter ({len(records)} examples)")
    print(out_dir)


def _lora_alpha(lora_alpha: float, old_alpha: float | None) -> float:
    if old_alpha is None:
        return lora_alpha
    console.print(
        "[yellow]train --alpha is deprecated: it is the LoRA scaling; say --lora-alpha "
        "(--alpha is the steering strength in steer and export)[/]"
    )
    return old_alpha


def _adapter_spec(*, layers: str, targets: str, options: list[str], **fields: Any):
    """The ``AdapterSpec`` that ``train``'s flags spell (a bad value names its flag)."""
    from pydantic import ValidationError

    from weightsteer.adapters import AdapterSpec

    lohi = parse_floats(layers, "--layers")
    if len(lohi) != 2:
        raise UserError(f"--layers takes two fractions lo,hi, got {layers!r}")
    try:
        return AdapterSpec(
            **fields,
            layers=tuple(lohi),
            targets=tuple(t.strip() for t in targets.split(",") if t.strip()),
            options=parse_options(options),
        )
    except ValidationError as e:
        err = e.errors()[0]
        name = {"alpha": "lora-alpha", "options": "option"}.get(
            str(err["loc"][0]), str(err["loc"][0])
        )
        msg = err["msg"].removeprefix("Value error, ")
        raise UserError(f"--{name.replace('_', '-')}: {msg}") from None


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
        from weightsteer.monitor.tau_vectors import tau_vectors

        vec, common = tau_vectors(m, pos, neg, model_id=model, behavior=behavior, progress=True)
        common = common if common_out is not None else None
    vec.save(out_file, overwrite=overwrite)
    console.print(f"[green]saved[/] {vec}")
    if vec.norm() == 0:
        console.print(
            "[yellow]warning:[/] the vector is exactly zero: the POS and NEG sides hold the "
            "same weights (the same folder twice, or two copies of one adapter?)",
            highlight=False,
        )
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
    section when given; --rows sets the rows of the suite (one suite only).
    """
    from weightsteer.core.files import check_writable
    from weightsteer.core.models import is_adapter_folder, merge_adapter
    from weightsteer.pipeline.verbs import eval_config, score_table

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
    model_flags = {"id": model, "device": device, "device_map": device_map, "dtype": dtype}
    cfg = eval_config(
        model_flags,
        target=target,
        suites=suite,
        alphas=parse_floats(alphas, "--alphas"),
        rows=data_source,
        config=config,
        system_prompt=system_prompt,
    )
    mc = cfg.model
    m, tok = load_for_cli(
        target if target and not is_adapter_folder(target) else model,
        mc.dtype, mc.system_prompt, mc.device, mc.device_map,
    )  # fmt: skip
    if target and is_adapter_folder(target):
        from weightsteer.adapters.extract import base_mismatch

        if warning := base_mismatch(target, m, model):
            console.print(f"[yellow]warning: {warning}[/]", highlight=False)
        m = merge_adapter(m, target)
    rows = score_table(cfg, m, tok, vector, out_file, finetune=bool(target))
    console.print(f"[green]saved[/] {rows} rows")
    print(out_file)
