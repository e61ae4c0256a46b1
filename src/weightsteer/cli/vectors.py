"""Verbs on a vector file: info, steer, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from weightsteer.cli.app import (
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    OverwriteOpt,
    app,
    console,
    load_for_cli,
    out,
)
from weightsteer.core.param_names import DEFAULT_TARGETS


def _norm_table(rows: list[dict[str, Any]]) -> Table:
    """Layers x module kinds, norms shaded by size: where the vector lives, at a glance."""
    order = {k: i for i, k in enumerate(DEFAULT_TARGETS)}
    kinds = sorted(dict.fromkeys(r["module"] for r in rows), key=lambda k: (order.get(k, 99), k))
    layers = sorted({r["layer"] for r in rows}, key=lambda x: (x is None, x))
    cell = {(r["layer"], r["module"]): r["norm"] for r in rows}
    top = max(cell.values(), default=0.0) or 1.0
    table = Table(title="||dW|| per layer and module (Frobenius)", show_lines=False)
    table.add_column("layer", justify="right")
    for k in kinds:
        table.add_column(k, justify="right")
    shades = ["grey50", "white", "yellow", "orange1", "red"]
    for layer in layers:
        vals = []
        for k in kinds:
            v = cell.get((layer, k))
            if v is None:
                vals.append("")
            else:
                style = shades[min(int(v / top * len(shades)), len(shades) - 1)]
                vals.append(f"[{style}]{v:.3g}[/]")
        table.add_row("-" if layer is None else str(layer), *vals)
    return table


@app.command()
def info(
    vector: Annotated[Path, typer.Argument(help="vector file (.safetensors)")],
    as_json: Annotated[bool, typer.Option("--json", help="print machine-readable JSON")] = False,
) -> None:
    """Show a vector's metadata, ranks and norms per layer and module."""
    from weightsteer.core.vector import WeightVector

    vec = WeightVector.load(vector)
    rows = vec.summary()
    total = vec.norm()
    if as_json:
        print(json.dumps({"meta": vec.meta.model_dump(), "norm": total, "tensors": rows}, indent=2))
        return
    ranks = sorted({r["rank"] for r in rows if r["rank"] is not None})
    meta = vec.meta
    out.print(f"[bold]{vector}[/]  ({vector.stat().st_size / 2**20:.2f} MiB)")
    out.print(f"base      {meta.base.model_id} ({meta.base.architecture}, {meta.base.shapes_hash})")
    out.print(f"family    {meta.family}   behavior {meta.behavior}   seed {meta.seed}")
    lowrank = sum(r["rank"] is not None for r in rows)
    rank_text = f"rank {ranks[0]}-{ranks[-1]}" if ranks else "dense"
    out.print(f"tensors   {len(rows)} ({lowrank} low-rank, {rank_text})   ||dW|| = {total:.4g}")
    out.print(f"made by   {' | '.join(meta.provenance)}")
    out.print(_norm_table(rows))


@app.command(name="steer")
def steer_cmd(
    model: ModelOpt,
    vector: Annotated[Path, typer.Option(help="vector file (.safetensors)")],
    alpha: Annotated[float, typer.Option(help="strength: + toward POS, - toward NEG")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the steered HF model")],
    allow_finetune: Annotated[
        bool, typer.Option(help="steer a fine-tune of the vector's base")
    ] = False,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    device_map: DeviceMapOpt = "none",
    overwrite: OverwriteOpt = False,
) -> None:
    """Write theta_base + alpha * dW as a normal HF model folder."""
    from weightsteer.core.files import atomic_path, check_writable
    from weightsteer.core.steer import Steerer
    from weightsteer.core.vector import WeightVector

    check_writable(out_dir, overwrite=overwrite)
    vec = WeightVector.load(vector)
    m, tok = load_for_cli(model, dtype, device=device, device_map=device_map)
    with Steerer(m, vec, allow_finetune=allow_finetune) as s:
        s.set_alpha(alpha)
        with atomic_path(out_dir, overwrite=overwrite, is_dir=True) as tmp:
            m.save_pretrained(tmp)
            tok.save_pretrained(tmp)
    console.print(f"[green]saved[/] model steered with alpha={alpha:g}")
    print(out_dir)


export_app = typer.Typer(no_args_is_help=True, help="Ship a vector where models are served.")
app.add_typer(export_app, name="export")


@export_app.command("lora")
def export_lora_cmd(
    vector: Annotated[Path, typer.Option(help="vector file (.safetensors)")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the PEFT LoRA adapter")],
    alpha: Annotated[float, typer.Option(help="strength folded into the adapter")] = 1.0,
    rank: Annotated[int | None, typer.Option(help="SVD rank of dense tensors")] = None,
    max_error: Annotated[
        float | None,
        typer.Option(help="or: the smallest rank with at most this relative error per tensor"),
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """A PEFT LoRA adapter equal to steering with alpha * dW (exact for LoRA/PiSSA
    vectors; dense ones factored by SVD, the error reported)."""
    from weightsteer.core.files import check_writable
    from weightsteer.core.vector import WeightVector
    from weightsteer.export import export_lora
    from weightsteer.export.lora import serving_hints

    check_writable(out_dir, overwrite=overwrite)
    vec = WeightVector.load(vector)
    report = export_lora(
        vec, out_dir, alpha=alpha, rank=rank, max_error=max_error, overwrite=overwrite
    )
    ranks = sorted({t.rank for t in report.tensors})
    worst = max(report.tensors, key=lambda t: t.rel_error)
    exact = all(t.exact for t in report.tensors)
    console.print(
        f"[green]saved[/] LoRA adapter, alpha={alpha:g}, {len(report.tensors)} modules, rank "
        f"{ranks[0]}-{ranks[-1]}; "
        + (
            "exact"
            if exact
            else f"relative error {report.rel_error:.2e} overall, worst {worst.rel_error:.2e} "
            f"({worst.name})"
        ),
        highlight=False,
    )
    for line in serving_hints(
        out_dir, ranks[-1], vec.meta.base.model_id, vec.meta.behavior or "steer"
    ):
        console.print(line, highlight=False, soft_wrap=True)
    print(out_dir)


@app.command()
def serve(
    model: ModelOpt,
    vector: Annotated[
        list[str],
        typer.Option(help="NAME=PATH@S1,S2,...: a vector served at each strength (repeat)"),
    ],
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8000,
    rank: Annotated[int | None, typer.Option(help="SVD rank of dense tensors")] = None,
    max_error: Annotated[
        float | None,
        typer.Option(help="or: the smallest rank with at most this relative error per tensor"),
    ] = None,
    engine_arg: Annotated[
        list[str] | None,
        typer.Option(help="passed to vllm serve (--engine-arg=--tensor-parallel-size=2)"),
    ] = None,
) -> None:
    """Serve MODEL on vLLM with each vector at each strength as a LoRA module named
    NAME@S (the base is "base"): per-request steering by the request's "model"."""
    import tempfile

    from weightsteer.core.engine import EngineConfig, vllm_python
    from weightsteer.core.errors import UserError
    from weightsteer.core.sources import resolve_source
    from weightsteer.core.steer import check_compatible
    from weightsteer.core.vector import WeightVector
    from weightsteer.export.serve import Steering, parse_steering, serve_steerings

    parsed = [parse_steering(v) for v in vector]
    steerings = [Steering(n, WeightVector.load(p), s) for n, p, s in parsed]
    vllm_python()  # a missing vLLM environment is one line before the model loads
    m, _ = load_for_cli(model, "auto")
    for st in steerings:
        check_compatible(m, st.vector)
    del m
    log = Path(tempfile.gettempdir()) / f"weightsteer-serve-{port}.log"
    cfg = EngineConfig(name="vllm", args=tuple(engine_arg or ()))
    console.print(f"starting vLLM on port {port} (its log: {log})", highlight=False)
    with serve_steerings(resolve_source(model), steerings, log=log, cfg=cfg, port=port,
                         rank=rank, max_error=max_error) as (server, adapters):  # fmt: skip
        for name, (_, report) in adapters.items():
            exact = all(t.exact for t in report.tensors)
            how = "exact" if exact else f"relative error {report.rel_error:.2e}"
            console.print(f"  {name}: LoRA of {len(report.tensors)} modules, {how}",
                          highlight=False)  # fmt: skip
        console.print(f"serving at {server.url}/v1 (models: base, {', '.join(adapters)}); "
                      "Ctrl-C stops it", highlight=False)  # fmt: skip
        print(server.url, flush=True)
        try:
            code = server.proc.wait()
        except KeyboardInterrupt:
            console.print("stopping")
            return
    raise UserError(f"the vLLM server exited (code {code}); its log: {log}")
