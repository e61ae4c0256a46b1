"""The ``weightsteer`` command line. Thin: parse, call the library, print.

Exit codes: 0 success, 2 a user error (one line on stderr saying what and how to fix),
1 an internal error (with traceback).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from weightsteer.errors import UserError
from weightsteer.modelling import TOYWORLD
from weightsteer.naming import DEFAULT_TARGETS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Contrastive weight steering: turn a behaviour into dW = theta_pos - theta_neg "
    "and steer with theta_base + alpha * dW.",
)
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="hub id, local model folder, or toyworld")
]
DtypeOpt = Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16")]
OverwriteOpt = Annotated[bool, typer.Option(help="replace an existing output")]


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _load(model: str, dtype: str):
    from weightsteer.modelling import load_model, load_tokenizer

    _quiet_transformers()
    if model == TOYWORLD:  # may need building first: its own progress bar, not a spinner
        from weightsteer.toy.build import ensure_toyworld

        model = str(ensure_toyworld())
    with console.status(f"loading {model}"):
        return load_model(model, dtype=dtype), load_tokenizer(model)


def _parse_floats(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{what} must be comma-separated numbers, got {text!r}") from None


def _parse_options(items: list[str]) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--option takes key=value, got {item!r}")
        try:
            opts[key] = json.loads(value)
        except json.JSONDecodeError:
            opts[key] = value
    return opts


RunOpt = Annotated[
    Path | None, typer.Option("--run", help="run folder: do this stage of its pipeline")
]
OptModel = Annotated[
    str | None, typer.Option("--model", "-m", help="hub id, local model folder, or toyworld")
]


def _need(**opts: Any) -> None:
    missing = [f"--{k.replace('_', '-')}" for k, v in opts.items() if v is None]
    if missing:
        raise UserError(f"give {', '.join(missing)} (or --run RUN_DIR to use a run folder)")


def _stage(run_dir: Path, stage: str) -> None:
    from weightsteer.runs import Context, Run, run_stages

    _quiet_transformers()
    ctx = Context(Run.open(run_dir), console)
    run_stages(ctx, [stage])
    console.print(f"[green]done[/] {stage} stage of {run_dir}")


@app.command()
def train(
    model: OptModel = None,
    data: Annotated[
        Path | None, typer.Option(help="chat jsonl (pairs format: pos.jsonl or neg.jsonl)")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="adapter folder to write")] = None,
    run_dir: RunOpt = None,
    family: Annotated[str, typer.Option(help="lora, dora, pissa, delora, oft or ia3")] = "lora",
    rank: int = 32,
    alpha: float = 64.0,
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
    dtype: DtypeOpt = "float32",
    overwrite: OverwriteOpt = False,
) -> None:
    """Fine-tune one adapter on a chat jsonl (loss on the assistant's answer only)."""
    from pydantic import ValidationError

    if run_dir is not None:
        return _stage(run_dir, "train")
    _need(model=model, data=data, out=out_dir)

    from weightsteer.adapters import AdapterSpec
    from weightsteer.train import file_digest, load_chat_jsonl, train_adapter

    records = load_chat_jsonl(data)
    lohi = _parse_floats(layers, "--layers")
    if len(lohi) != 2:
        raise UserError(f"--layers takes two fractions lo,hi, got {layers!r}")
    try:
        spec = AdapterSpec(
            family=family,
            rank=rank,
            alpha=alpha,
            lr=lr,
            epochs=epochs,
            max_steps=max_steps,
            batch_size=batch_size,
            layers=tuple(lohi),
            targets=tuple(t.strip() for t in targets.split(",") if t.strip()),
            seed=seed,
            options=_parse_options(option),
        )
    except ValidationError as e:
        err = e.errors()[0]
        raise UserError(f"--{err['loc'][0]}: {err['msg']}") from None
    if out_dir.exists() and not overwrite:
        raise UserError(f"{out_dir} already exists; choose another --out or pass --overwrite")
    m, tok = _load(model, dtype)
    info = {"path": str(data), "sha256": file_digest(data), "rows": len(records)}
    train_adapter(
        m, tok, records, spec, out_dir, data_info=info, overwrite=overwrite, init_state=init
    )
    console.print(f"[green]saved[/] {spec.family} adapter ({len(records)} examples)")
    print(out_dir)


@app.command()
def extract(
    model: OptModel = None,
    pos: Annotated[Path | None, typer.Option(help="POS adapter folder")] = None,
    neg: Annotated[Path | None, typer.Option(help="NEG adapter folder")] = None,
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
    overwrite: OverwriteOpt = False,
) -> None:
    """Extract dW = theta_pos - theta_neg from two adapters (exact, float32)."""
    from weightsteer.extract import extract_common, extract_vector
    from weightsteer.io import check_writable

    if run_dir is not None:
        return _stage(run_dir, "extract")
    _need(model=model, pos=pos, neg=neg, out=out_file)

    check_writable(out_file, overwrite=overwrite)
    if common_out is not None:
        check_writable(common_out, overwrite=overwrite)
    m, _ = _load(model, dtype)
    vec = extract_vector(m, pos, neg, behavior=behavior, model_id=model, progress=True)
    common = extract_common(m, pos, neg, vec) if common_out is not None else None
    vec.save(out_file, overwrite=overwrite)
    console.print(f"[green]saved[/] {vec}")
    if common is not None:
        common.save(common_out, overwrite=overwrite)
        console.print(f"[green]saved[/] common mode to {common_out}", highlight=False)
    print(out_file)


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
    from weightsteer.vector import WeightVector

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
    overwrite: OverwriteOpt = False,
) -> None:
    """Write theta_base + alpha * dW as a normal HF model folder."""
    from weightsteer.io import atomic_path, check_writable
    from weightsteer.steer import Steerer
    from weightsteer.vector import WeightVector

    check_writable(out_dir, overwrite=overwrite)
    vec = WeightVector.load(vector)
    m, tok = _load(model, dtype)
    with Steerer(m, vec, allow_finetune=allow_finetune) as s:
        s.set_alpha(alpha)
        with atomic_path(out_dir, overwrite=overwrite, is_dir=True) as tmp:
            m.save_pretrained(tmp)
            tok.save_pretrained(tmp)
    console.print(f"[green]saved[/] model steered with alpha={alpha:g}")
    print(out_dir)


def _start_run(cfg, name: str | None, runs_dir: Path, out_dir: Path | None = None):
    """Validate everything, then open (or resume) the run folder: nothing is written first."""
    from weightsteer.runs import Context, Run, preflight

    _quiet_transformers()
    preflight(cfg)
    root = out_dir if out_dir is not None else runs_dir / (name or cfg.name)
    return Context(Run.create(root, cfg), console)


ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="run config (TOML)")]
NameOpt = Annotated[str | None, typer.Option(help="run name (default: the config's name)")]
RunsDirOpt = Annotated[Path, typer.Option(help="folder holding run folders")]


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="run config (TOML)")],
    name: NameOpt = None,
    runs_dir: RunsDirOpt = Path("runs"),
) -> None:
    """The whole pipeline: data -> train -> extract -> eval -> report, resumable."""
    import time

    from weightsteer.config import load_config
    from weightsteer.runs import run_stages

    t0 = time.perf_counter()
    ctx = _start_run(load_config(config), name, runs_dir)
    console.print(f"run folder {ctx.run.root} (config hash {ctx.cfg.digest()})", highlight=False)
    run_stages(ctx)
    _summary(ctx.run.root, time.perf_counter() - t0)
    print(ctx.run.root / "report.md")


@app.command()
def compare(
    config: Annotated[Path, typer.Option("--config", "-c", help="run config (TOML)")],
    name: NameOpt = None,
    runs_dir: RunsDirOpt = Path("runs"),
) -> None:
    """Weight steering vs prompting vs activation steering at the same KL budget:
    data -> train -> extract (reused when done) -> compare -> report."""
    from weightsteer.config import load_config
    from weightsteer.runs import run_stages

    cfg = load_config(config)
    if not cfg.compare.methods:
        raise UserError(f"{config}: compare.methods is empty; list the methods to compare")
    ctx = _start_run(cfg, name, runs_dir)
    console.print(f"run folder {ctx.run.root} (config hash {ctx.cfg.digest()})", highlight=False)
    run_stages(ctx, ["data", "train", "extract", "compare", "report"])
    _compare_summary(ctx.run.root)
    print(ctx.run.root / "report.md")


def _compare_summary(root: Path) -> None:
    """The first suite's calibrated comparison, one row per method."""
    from weightsteer.metrics import comparison_frame
    from weightsteer.report import achieved_kl, calibration_rows
    from weightsteer.results import read_results

    paths = sorted((root / "compare").glob("*.parquet"))
    df = comparison_frame(read_results(paths))
    kls = achieved_kl(calibration_rows(paths))
    budget = float(df["calibrated_kl"].dropna().iloc[0])
    title = f"{{suite}} at {budget:g} nat: mean score shift vs unsteered [95% CI]"
    _shift_summary(root, df, (budget, -budget), title, "KL + / -", lambda k, by: kls.get(k, ""))
    console.print(
        "KL * : a prompt's fixed cost (it has no strength to tune); ⚠ : missed the budget"
    )


def _summary(root: Path, seconds: float) -> None:
    """One screen: the first suite's shift at the extreme strengths per family, and where
    the report is."""
    from weightsteer.results import read_results

    df = read_results(sorted((root / "results").glob("*.parquet")))
    lo, hi = df["strength"].min(), df["strength"].max()
    title = "{suite}: mean score shift vs strength 0 [95% CI]"
    _shift_summary(root, df, (lo, hi), title, "score at 0", lambda k, by: f"{by[0.0]['mean']:+.2f}")
    console.print(f"done in {seconds:.0f} s. Report: {root / 'report.md'}", highlight=False)


def _shift_summary(root: Path, df, strengths, title: str, extra: str, extra_cell) -> None:
    """A table of the first (non-tinymfv) suite: per method, the ``extra`` column, the
    shift at each of ``strengths`` with its CI, and SI k=1 at the positive one."""
    from weightsteer.metrics import suite_metrics
    from weightsteer.report import TINYMFV, label
    from weightsteer.runs import Run

    suite = next(s for s in dict.fromkeys(df["eval"]) if s != TINYMFV)
    t = suite_metrics(df[df["eval"] == suite], Run.open(root).cfg.metrics)
    table = Table(title=title.format(suite=suite))
    for col in ("method", extra, *(f"shift at {s:+g}" for s in strengths), "SI k=1"):
        table.add_column(col, justify="right")
    for key, rows in t.groupby(["method", "family"], sort=False):
        by = {r["strength"]: r for _, r in rows.iterrows()}
        cells = [
            f"{by[s]['delta']:+.2f} [{by[s]['delta_lo']:+.2f}, {by[s]['delta_hi']:+.2f}]"
            for s in strengths
        ]
        si = by[max(strengths)].get("si_k1", float("nan"))
        table.add_row(label(*key), extra_cell(key, by), *cells, f"{si:+.1f}")
    console.print(table)


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
    run_dir: RunOpt = None,
    name: NameOpt = None,
    runs_dir: RunsDirOpt = Path("runs"),
) -> None:
    """Generate POS/NEG persona pairs (the data stage) into a run folder."""
    from weightsteer.config import load_config, parse_config
    from weightsteer.runs import run_stages

    if run_dir is not None:
        return _stage(run_dir, "data")
    if config is not None:
        cfg = load_config(config)
    else:
        _need(model=model, out=out_dir)
        source = questions or ("toyworld" if model == TOYWORLD else "builtin:honesty")
        cfg = parse_config(
            {
                "model": {"id": model},
                "behavior": {"name": behavior},
                "questions": {"source": source},
                "data": {"filter": pair_filter},
            },
            "options",
        )
    ctx = _start_run(cfg, name, runs_dir, out_dir)
    run_stages(ctx, ["data"])
    for side in ("pos", "neg"):
        print(ctx.run.root / "data" / f"{side}.jsonl")


@app.command(name="eval")
def eval_cmd(
    model: OptModel = None,
    vector: Annotated[Path | None, typer.Option(help="vector file; none: the base only")] = None,
    suite: Annotated[list[str], typer.Option(help="suite name (repeatable)")] = ["claims"],  # noqa: B006
    data_source: Annotated[
        str | None,
        typer.Option("--data", help="rows of the suite: a file, builtin:<name> or hf:<id>"),
    ] = None,
    config: ConfigOpt = None,
    alphas: Annotated[str, typer.Option(help="comma-separated strengths")] = "-1,-0.5,0,0.5,1",
    out_file: Annotated[Path | None, typer.Option("--out", help="results .parquet")] = None,
    run_dir: RunOpt = None,
    dtype: DtypeOpt = "float32",
    overwrite: OverwriteOpt = False,
) -> None:
    """Score suites at a strength sweep into the long results table.

    Suite settings (tinymfv target, dilemmas filter, ...) come from --config's [eval]
    section when given; --data sets the rows of the suite (one suite only).
    """
    from weightsteer.config import load_config, parse_config
    from weightsteer.evals import build_suites
    from weightsteer.io import check_writable
    from weightsteer.methods import NONE
    from weightsteer.results import write_results
    from weightsteer.runs import evaluate_intervention

    if run_dir is not None:
        return _stage(run_dir, "eval")
    _need(model=model, out=out_file)
    check_writable(out_file, overwrite=overwrite)
    data = load_config(config).model_dump(mode="json") if config else {}
    data["model"] = {**data.get("model", {}), "id": model}
    if not config:
        data["questions"] = {"source": "toyworld" if model == TOYWORLD else "builtin:honesty"}
    ev = data.setdefault("eval", {})
    ev.update(suites=suite, alphas=_parse_floats(alphas, "--alphas"))
    if data_source is not None:
        name = suite[0].partition(":")[0] if len(suite) == 1 else ""
        if name not in ("claims", "dilemmas", "tinymfv", "sycophancy"):
            raise UserError(
                "--data takes the rows of one suite: claims, dilemmas, tinymfv or sycophancy"
            )
        ev[name] = {**ev.get(name, {}), "source": data_source}
    cfg = parse_config(data, "options")
    suites = build_suites(cfg)
    m, tok = _load(model, dtype)
    intervention, strengths = NONE, [0.0]
    if vector is not None:
        from weightsteer.methods.weight import WeightSteering
        from weightsteer.vector import WeightVector

        vec = WeightVector.load(vector)
        intervention = WeightSteering(vector=vec, family=vec.meta.family, seed=vec.meta.seed or 0)
        strengths = cfg.eval.alphas
    frames = evaluate_intervention(m, tok, intervention, suites, strengths)
    write_results(frames, out_file, cfg.model_dump(mode="json"))
    console.print(f"[green]saved[/] {sum(len(f) for f in frames)} rows")
    print(out_file)


@app.command()
def report(
    path: Annotated[Path, typer.Argument(help="run folder, or a results .parquet")],
) -> None:
    """Metrics tables and figures: report.md of a run folder, or <stem>.md next to a
    results table from `weightsteer eval --out`."""
    if path.suffix == ".parquet":
        from weightsteer.report import write_table_report
        from weightsteer.results import results_config

        if not path.is_file():
            raise UserError(f"results table {path} does not exist")
        print(write_table_report(path, results_config(path)))
        return
    _stage(path, "report")  # refuses a folder that is not a run
    print(path / "report.md")


@app.command("config-help")
def config_help() -> None:
    """Every run-config key with its default and meaning."""
    from weightsteer.config import describe

    table = Table(title="run config keys (TOML: [section] key = value)")
    for col in ("key", "default", "meaning"):
        table.add_column(col)
    for key, default, text in describe():
        table.add_row(key, default, text)
    out.print(table)


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
    overwrite: OverwriteOpt = False,
) -> None:
    """Cosine of each fine-tune's weight change with dW: one line each, path first."""
    from weightsteer.io import check_writable
    from weightsteer.monitor import (
        TABLE_FORMATS,
        common_path,
        monitor_finetune,
        monitor_table,
        plot_monitor,
        write_table,
    )
    from weightsteer.steer import check_compatible
    from weightsteer.vector import WeightVector

    sources = [*finetuned, *(more or [])]
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
    m, _ = _load(model, dtype)
    check_compatible(m, vec, allow_finetune=allow_finetune)
    results = []
    for src in sources:
        res = monitor_finetune(m, vec, src, common=common_vec, model_id=model, progress=True)
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
    from weightsteer.export import export_lora
    from weightsteer.io import check_writable
    from weightsteer.vector import WeightVector

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
    print(out_dir)


toy_app = typer.Typer(no_args_is_help=True, help="The embedded toyworld model.")
app.add_typer(toy_app, name="toy")


@toy_app.command("build")
def toy_build(
    seed: Annotated[int, typer.Option(help="world and training seed")] = 0,
    variant: Annotated[str, typer.Option(help="model size and schedule")] = "default",
    rebuild: Annotated[bool, typer.Option(help="train again even if cached")] = False,
) -> None:
    """Build (or find in the cache) the toyworld model; print its folder as the last line."""
    from weightsteer.toy.build import INFO_FILE, ensure_toyworld

    _quiet_transformers()
    path = ensure_toyworld(seed, variant, progress=True, rebuild=rebuild)
    info = json.loads((path / INFO_FILE).read_text())
    last = info["curve"][-1] if info["curve"] else {}
    accs = ", ".join(
        f"{k} {v:.2f}" for k, v in last.items() if k not in ("step", "loss", "seconds")
    )
    console.print(
        f"toyworld seed {seed} ({variant}): {info['parameters'] / 1e6:.2f}M parameters, "
        f"{info['steps']} steps in {info['build_seconds']:.0f} s; held-out first-token "
        f"accuracy {accs}"
        + ("" if info["reached_targets"] else " [yellow](targets not reached)[/]")
    )
    print(path)


@toy_app.command("finetunes")
def toy_finetunes(
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the three fine-tunes")],
    examples: Annotated[int, typer.Option(min=8, help="training chats per fine-tune")] = 200,
    seed: Annotated[int, typer.Option(help="data and training seed")] = 0,
    overwrite: OverwriteOpt = False,
) -> None:
    """Dishonest, honest and neutral LoRA fine-tunes of toyworld, for `weightsteer monitor`;
    prints their folders."""
    from weightsteer.io import check_writable
    from weightsteer.toy.finetunes import build_finetunes

    check_writable(out_dir, overwrite=overwrite)
    m, tok = _load(TOYWORLD, "float32")
    dirs = build_finetunes(
        m, tok, out_dir, n=examples, seed=seed, overwrite=overwrite, progress=True
    )
    console.print(f"[green]saved[/] {len(dirs)} fine-tunes and their data under {out_dir}")
    for d in dirs.values():
        print(d)


def main(argv: list[str] | None = None) -> None:
    import warnings

    # a deprecation inside transformers that PEFT triggers on every adapter: not actionable
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    try:
        app(args=argv)
    except UserError as e:
        console.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
