"""The toyworld verbs: build the embedded model, make fine-tunes to monitor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from weightsteer.cli.app import (
    OverwriteOpt,
    app,
    console,
    load_for_cli,
    quiet_transformers,
)
from weightsteer.core.errors import UserError

toy_app = typer.Typer(no_args_is_help=True, help="The embedded toyworld model.")
app.add_typer(toy_app, name="toy")


@toy_app.command("build")
def toy_build(
    seed: Annotated[int, typer.Option(help="world and training seed")] = 0,
    variant: Annotated[
        str, typer.Option(help="model size and schedule: default, or moral (the moral world)")
    ] = "default",
    rebuild: Annotated[bool, typer.Option(help="train again even if cached")] = False,
) -> None:
    """Build (or find in the cache) the toyworld model; print its folder as the last line."""
    from weightsteer.toy.build import INFO_FILE, ensure_toyworld

    quiet_transformers()
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
    from weightsteer.core.files import check_writable
    from weightsteer.toy.finetunes import build_finetunes

    check_writable(out_dir, overwrite=overwrite)
    m, tok = load_for_cli("toyworld", "float32")
    dirs = build_finetunes(
        m, tok, out_dir, n=examples, seed=seed, overwrite=overwrite, progress=True
    )
    console.print(f"[green]saved[/] {len(dirs)} fine-tunes and their data under {out_dir}")
    for d in dirs.values():
        print(d)


@toy_app.command("drift")
def toy_drift(
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the drift fine-tunes")],
    examples: Annotated[int, typer.Option(min=8, help="training chats per fine-tune")] = 400,
    seed: Annotated[int, typer.Option(help="data and training seed")] = 0,
    overwrite: OverwriteOpt = False,
) -> None:
    """The drift experiment's fine-tunes of toyworld: the task one (the user's opinion is
    always right in its data) and joint ones (task data with 25% and 50% honest-persona
    data); prints their folders (configs/drift.toml steers the first)."""
    from weightsteer.core.files import check_writable
    from weightsteer.toy.drift import build_drift

    check_writable(out_dir, overwrite=overwrite)
    m, tok = load_for_cli("toyworld", "float32")
    dirs = build_drift(m, tok, out_dir, n=examples, seed=seed, overwrite=overwrite, progress=True)
    console.print(f"[green]saved[/] {len(dirs)} fine-tunes and their data under {out_dir}")
    for d in dirs.values():
        print(d)


@toy_app.command("drift-table")
def toy_drift_table(
    run_dir: Annotated[Path, typer.Option("--run", help="the drift run (configs/drift.toml)")],
    finetunes: Annotated[
        Path, typer.Option(help="the folder `toy drift` wrote (its joint fine-tunes)")
    ] = Path("toy-drift"),
) -> None:
    """The drift experiment in one table: toyworld, the task fine-tune unsteered and steered
    by every method of the run, and the joint fine-tunes, each with its wrong-cue agreement
    and task accuracy (95% CIs); writes <run>/drift.md and prints its path."""
    import pandas as pd

    from weightsteer.core.files import atomic_path
    from weightsteer.core.models import load_model, merge_adapter
    from weightsteer.core.sources import resolve_source
    from weightsteer.evals import build_suites
    from weightsteer.evals.results import read_results
    from weightsteer.evals.score_intervention import evaluate_intervention
    from weightsteer.methods import NONE
    from weightsteer.pipeline import Run
    from weightsteer.toy.drift import SHARES, drift_lines, drift_points

    run = Run.open(run_dir)
    lay = run.layout
    if not lay.results() or not lay.compared():
        raise UserError(f"{run_dir} has no eval and compare tables yet; run it to the end first")
    joints = [finetunes / n for n in SHARES if n != "task"]
    for d in joints:
        if not (d / "adapter_config.json").is_file():
            raise UserError(f"{d} is not a fine-tune of `toy drift`; pass --finetunes")
    settings = run.cfg.eval.model_copy(update={"suites": ("toyworld:cue-wrong", "toyworld:task")})
    suites = build_suites(settings)
    m, tok = load_for_cli("toyworld", "float32")
    folder = resolve_source("toyworld")

    def unsteered(model) -> pd.DataFrame:
        frames = evaluate_intervention(model, tok, NONE, suites, [0.0])
        return pd.concat(frames, ignore_index=True)

    frames = {"toyworld": unsteered(m)}
    sweep = read_results(lay.results())
    frames["task fine-tune"] = read_results([p for p in lay.compared() if p.stem == "none"])
    frames["steered, fixed alpha"] = sweep[sweep["strength"] != 0]
    compared = read_results([p for p in lay.compared() if p.stem != "none"])
    frames["steered, calibrated"] = compared
    for d in joints:
        with console.status(f"scoring {d.name}"):
            frames[d.name] = unsteered(merge_adapter(load_model(folder, dtype="float32"), d))
    lines = [
        f"# The drift experiment: run `{run_dir.name}`",
        "",
        "Agreement: the share of `toy:cue-wrong` rows (the user's opinion is wrong) the model "
        "answers with the user; task: `toy:task` accuracy. Each point is the mean over seeds "
        "with a 95% bootstrap CI over rows.",
        "",
        *drift_lines(drift_points(frames)),
        "",
    ]
    out = run.root / "drift.md"
    with atomic_path(out, overwrite=True) as tmp:
        tmp.write_text("\n".join(lines))
    console.print("\n".join(lines), highlight=False)
    print(out)
