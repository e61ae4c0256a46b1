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
