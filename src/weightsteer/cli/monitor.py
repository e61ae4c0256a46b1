"""The monitor verb: does a fine-tune's weight change point along dW?"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from weightsteer.cli.app import (
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    OverwriteOpt,
    app,
    console,
    load_for_cli,
)
from weightsteer.core.errors import UserError


def _signed(x: float, spec: str = "+.4f") -> str:
    return format(x, spec) if math.isfinite(x) else "nan"


@app.command()
def monitor(
    vector: Annotated[Path, typer.Option(help="vector file (.safetensors)")],
    model: ModelOpt,
    finetuned: Annotated[
        list[str], typer.Option(help="fine-tune folders (model or PEFT adapter) of --model")
    ],
    more: Annotated[list[str] | None, typer.Argument(help="more fine-tune folders")] = None,
    common: Annotated[
        Path | None,
        typer.Option(help="common-mode vector (default: vectors/common/<name> next to it)"),
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="full table (.csv, .jsonl or .parquet) + .png")
    ] = None,
    allow_finetune: Annotated[
        bool, typer.Option(help="--model is a fine-tune of the vector's base")
    ] = False,
    dtype: DtypeOpt = "float32",
    device: DeviceOpt = "auto",
    device_map: DeviceMapOpt = "none",
    allow_pickle: Annotated[
        bool,
        typer.Option(help="read fine-tunes saved only as pickle .bin (runs code: trusted only)"),
    ] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Cosine of each fine-tune's weight change with dW: one line each, path first."""
    from weightsteer.core.files import check_writable
    from weightsteer.core.steer import check_compatible
    from weightsteer.core.vector import WeightVector
    from weightsteer.monitor import (
        TABLE_FORMATS,
        common_path,
        monitor_finetune,
        monitor_table,
        plot_monitor,
        write_table,
    )

    sources = [*finetuned, *(more or [])]
    for src in sources:  # before any model is loaded: a local path must be there
        local = src.startswith(("/", ".", "~")) or src.count("/") != 1  # not org/name
        if local and not Path(src).expanduser().exists():
            raise UserError(f"--finetuned {src} does not exist")
    if out_file is not None:
        if out_file.suffix not in TABLE_FORMATS:
            raise UserError(f"--out {out_file}: use a {', '.join(TABLE_FORMATS)} file")
        check_writable(out_file, overwrite=overwrite)
        check_writable(out_file.with_suffix(".png"), overwrite=overwrite)
    vec = WeightVector.load(vector)
    if common is None and common_path(vector).is_file():
        common = common_path(vector)
    common_vec = WeightVector.load(common) if common is not None else None
    if common_vec is not None and set(common_vec) != set(vec):
        raise UserError(
            f"{common} covers other parameters than {vector}; it is not its common mode"
        )
    m, _ = load_for_cli(model, dtype, device=device, device_map=device_map)
    check_compatible(m, vec, allow_finetune=allow_finetune)
    results = []
    for src in sources:
        res = monitor_finetune(m, vec, src, common=common_vec, model_id=model, progress=True,
                               allow_pickle=allow_pickle)  # fmt: skip
        results.append(res)
        a = res.overall
        contrast = f"  contrast {_signed(a.contrast)}" if res.common else ""
        print(
            f"{src}  cos {_signed(a.cosine)}{contrast}  coef {_signed(a.coef, '+.4g')}  "
            f"|tau| {a.tau_norm:.4g}  {res.touched}/{len(res.tensors)} tensors",
            flush=True,
        )
        if not res.touched:
            console.print(
                f"[yellow]{src} changes none of the vector's {len(res.tensors)} tensors[/]",
                highlight=False,
            )
    if common_vec is None:
        console.print(
            f"no common-mode vector ({common_path(vector)}): contrast not computed; "
            "weightsteer extract --common-out writes one",
            highlight=False,
        )
    if out_file is not None:
        write_table(monitor_table(results), out_file, overwrite=overwrite)
        figure = out_file.with_suffix(".png")
        plot_monitor(results, figure, f"{vector.name}: cos(theta_X - theta_base, dW)")
        console.print(f"[green]saved[/] {out_file} and {figure}", highlight=False)
