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
        list[str] | None,
        typer.Option(help="fine-tune folders (model or PEFT adapter) of --model"),
    ] = None,
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
    labels: Annotated[
        Path | None,
        typer.Option(
            help="table (.csv/.jsonl/.parquet) with columns finetune and label (1: the kind "
            "to catch, 0: a control): the AUROC of the cosine and contrast, with a CI; its "
            "fine-tunes are monitored when --finetuned is not given"
        ),
    ] = None,
    toward: Annotated[
        str, typer.Option(help="labelled fine-tunes move toward the vector's pos or neg side")
    ] = "pos",
    allow_pickle: Annotated[
        bool,
        typer.Option(help="read fine-tunes saved only as pickle .bin (runs code: trusted only)"),
    ] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Cosine of each fine-tune's weight change with dW: one line each, path first."""
    from weightsteer.core.steer import check_compatible
    from weightsteer.core.vector import WeightVector
    from weightsteer.monitor import (
        common_path,
        monitor_finetune,
        monitor_table,
        plot_monitor,
        write_table,
    )
    from weightsteer.monitor.ranking import read_labels

    if toward not in ("pos", "neg"):
        raise UserError(f"--toward takes pos or neg, got {toward!r}")
    labelled = read_labels(labels) if labels is not None else None
    sources = _sources([*(finetuned or []), *(more or [])], labelled, labels)
    if out_file is not None:
        _check_outputs(out_file, labelled is not None, overwrite)
    vec = WeightVector.load(vector)
    common_vec = _common_mode(vector, vec, common)
    m, _ = load_for_cli(model, dtype, device=device, device_map=device_map)
    check_compatible(m, vec, allow_finetune=allow_finetune)
    results = []
    for src in sources:
        res = monitor_finetune(m, vec, src, common=common_vec, model_id=model, progress=True,
                               allow_pickle=allow_pickle)  # fmt: skip
        results.append(res)
        _print_result(src, res)
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
    if labelled is not None:
        _ranking(results, labelled, toward, out_file)


def _common_mode(vector: Path, vec, common: Path | None):
    """The vector's common-mode vector: ``--common``, else the one saved next to it."""
    from weightsteer.core.vector import WeightVector
    from weightsteer.monitor import common_path

    if common is None and common_path(vector).is_file():
        common = common_path(vector)
    common_vec = WeightVector.load(common) if common is not None else None
    if common_vec is not None and set(common_vec) != set(vec):
        raise UserError(
            f"{common} covers other parameters than {vector}; it is not its common mode"
        )
    return common_vec


def _sources(given: list[str], labelled, labels: Path | None) -> list[str]:
    """The fine-tunes to monitor (the labelled ones when none is given), each checked
    before any model is loaded."""
    sources = given
    if labelled is not None:
        sources = sources or list(labelled)
        unlabelled = [s for s in sources if s not in labelled]
        if unlabelled:
            raise UserError(f"--labels {labels} has no label for {unlabelled[0]}")
        if len({labelled[s] for s in sources}) < 2:  # before anything is loaded or written
            raise UserError(
                f"--labels {labels}: the monitored fine-tunes all have label "
                f"{labelled[sources[0]]}; AUROC needs fine-tunes of both labels (1 and 0)"
            )
    if not sources:
        raise UserError("give fine-tunes to monitor: --finetuned DIR (or --labels FILE)")
    for src in sources:  # before any model is loaded: a local path must be there
        local = src.startswith(("/", ".", "~")) or src.count("/") != 1  # not org/name
        if local and not Path(src).expanduser().exists():
            raise UserError(f"--finetuned {src} does not exist")
    return sources


def _check_outputs(out_file: Path, ranked: bool, overwrite: bool) -> None:
    """Every file ``--out`` leads to may be written (before any work)."""
    from weightsteer.core.files import check_derived
    from weightsteer.core.plots import figure_files
    from weightsteer.monitor import TABLE_FORMATS

    if out_file.suffix not in TABLE_FORMATS:
        raise UserError(f"--out {out_file}: use a {', '.join(TABLE_FORMATS)} file")
    paths = [out_file, *figure_files(out_file.with_suffix(".png"))]
    if ranked:
        paths += figure_files(auroc_figure(out_file))
    check_derived(paths, overwrite=overwrite)


def _print_result(src: str, res) -> None:
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


def _ranking(results, labelled, toward: str, out_file: Path | None) -> None:
    """The AUROC of each statistic over the labelled fine-tunes, with its CI (and figure)."""
    from weightsteer.monitor.ranking import auroc_rows, plot_ranking, ranking_table

    table = ranking_table(results, labelled, toward)
    rows = auroc_rows(table)
    n1 = int(table["label"].sum())
    for r in rows:
        console.print(
            f"AUROC ({r['statistic']}, labelled toward {toward.upper()}): {r['auroc']:.3f} "
            f"[95% CI {r['lo']:.3f}, {r['hi']:.3f}] over {n1} labelled and "
            f"{len(table) - n1} control fine-tunes",
            highlight=False,
        )
    if out_file is not None:
        plot_ranking(table, rows, auroc_figure(out_file), toward)
        console.print(f"[green]saved[/] {auroc_figure(out_file)}", highlight=False)


def auroc_figure(out_file: Path) -> Path:
    return out_file.with_name(f"{out_file.stem}-auroc.png")
