"""The typer app, the options every verb shares, and the helpers verbs call.

Exit codes: 0 success, 2 a user error (one line on stderr saying what and how to fix),
1 an internal error (with traceback).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from weightsteer.core.errors import UserError, os_error_line
from weightsteer.core.threads import busy_elsewhere, thread_settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Contrastive weight steering: turn a behaviour into dW = theta_pos - theta_neg "
    "and steer with theta_base + alpha * dW.",
)
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _print_version(value: bool) -> None:
    if value:
        from weightsteer import __version__

        print(f"weightsteer {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="print the version"),
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1, help="torch CPU threads (default: torch's, or OMP_NUM_THREADS when set)"
        ),
    ] = None,
) -> None:
    """Contrastive weight steering: turn a behaviour into dW = theta_pos - theta_neg and
    steer with theta_base + alpha * dW."""
    import os

    load = busy_elsewhere()
    os.environ.update(thread_settings(threads, dict(os.environ), load, os.cpu_count() or 1))
    if threads is not None and "torch" in sys.modules:  # already started (in-process use)
        sys.modules["torch"].set_num_threads(threads)


ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="hub id, local model folder, or a registered name: toyworld, smollm2"
    ),
]
DtypeOpt = Annotated[
    str,
    typer.Option(
        help="default (bfloat16 on CUDA, float32 elsewhere), auto (the checkpoint's), "
        "float32, bfloat16 or float16"
    ),
]
DeviceOpt = Annotated[
    str, typer.Option(help="auto (cuda when present, else cpu), cpu, mps, cuda or cuda:N")
]
DeviceMapOpt = Annotated[
    str,
    typer.Option(
        help="none, or spread a model too large for one device over all of them: auto, "
        "balanced, balanced_low_0 or sequential (transformers' device_map)"
    ),
]
OverwriteOpt = Annotated[bool, typer.Option(help="replace an existing output")]
SystemOpt = Annotated[
    str,
    typer.Option(
        "--system-prompt",
        help="a chat with no system message: the template's default (template) or none",
    ),
]


def quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_for_cli(
    model: str,
    dtype: str,
    system_prompt: str = "template",
    device: str = "auto",
    device_map: str = "none",
):
    """The model (on ``device``: ``resolve_device``, checked before anything loads; or
    spread by ``device_map``) and its tokenizer."""
    from weightsteer.core import dist
    from weightsteer.core.models import load_model, load_tokenizer, resolve_device
    from weightsteer.core.sources import resolve_source

    where = resolve_device(device)
    dist.check_device_map(device_map)
    quiet_transformers()
    with dist.main_first():  # a registered source may build first (its own bar): once
        folder = resolve_source(model)
    with console.status(f"loading {model}"):
        m = load_model(folder, dtype=dtype, device=where, device_map=device_map)
        return m, load_tokenizer(folder, system_prompt=system_prompt)


def parse_floats(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{what} must be comma-separated numbers, got {text!r}") from None


def parse_options(items: list[str]) -> dict[str, Any]:
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
    str | None,
    typer.Option(
        "--model", "-m", help="hub id, local model folder, or a registered name: toyworld, smollm2"
    ),
]


def need(**opts: Any) -> None:
    missing = [f"--{k.replace('_', '-')}" for k, v in opts.items() if v is None]
    if missing:
        raise UserError(f"give {', '.join(missing)} (or --run RUN_DIR to use a run folder)")


def run_stage(run_dir: Path, stage: str) -> None:
    from weightsteer.pipeline import Context, Run, run_stages

    quiet_transformers()
    ctx = Context(Run.open(run_dir), console)
    run_stages(ctx, [stage])
    console.print(f"[green]done[/] {stage} stage of {run_dir}")


def start_run(cfg, name: str | None, runs_dir: Path, out_dir: Path | None = None):
    """Validate everything, then open (or resume) the run folder: nothing is written first."""
    from weightsteer.pipeline import Context, Run, preflight

    quiet_transformers()
    run_name = cfg.name if name is None else name
    if out_dir is None:
        check_run_name(run_name)
    if out_dir is None and runs_dir.exists() and not runs_dir.is_dir():
        raise UserError(f"--runs-dir {runs_dir} is a file; give a folder for the run folders")
    suites = preflight(cfg)
    root = out_dir if out_dir is not None else runs_dir / run_name
    return Context(Run.create(root, cfg), console, eval_suites=suites)


NAME_MAX = 255  # bytes of one path component on the common file systems


def check_run_name(run_name: str) -> None:
    """A run name is one plain folder name: one line, no path, within the file system's
    limit. Checked before anything is made."""
    if any(not ch.isprintable() for ch in run_name):
        raise UserError(f"run name {run_name!r} is not one line of printable text; give a plain "
                        "folder name")  # fmt: skip
    if run_name in ("", ".", "..") or Path(run_name).name != run_name:
        raise UserError(
            f"run name {run_name!r} is not a plain folder name; runs go under --runs-dir "
            "(use --runs-dir to choose where)"
        )
    if len(run_name.encode()) > NAME_MAX:
        raise UserError(f"run name is too long ({len(run_name.encode())} bytes; a folder name "
                        f"takes at most {NAME_MAX}); give a shorter --name")  # fmt: skip


ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="run config (TOML)")]
NameOpt = Annotated[str | None, typer.Option(help="run name (default: the config's name)")]
EngineOpt = Annotated[
    str | None, typer.Option(help="hf or vllm: what generates text (default: [engine] name)")
]
EngineUrlOpt = Annotated[
    str | None, typer.Option(help="a running vLLM server (implies --engine vllm)")
]


def with_engine(cfg, engine: str | None, url: str | None):
    """``cfg`` with ``--engine`` / ``--engine-url`` over its ``[engine]`` section."""
    if engine is None and url is None:
        return cfg
    from weightsteer.core.engine import EngineConfig

    update: dict = {"name": engine or "vllm"} | ({"url": url} if url else {})
    if update["name"] == "hf" and url:
        raise UserError("--engine-url names a vLLM server; drop it or use --engine vllm")
    try:
        engine_cfg = EngineConfig.model_validate({**cfg.engine.model_dump(), **update})
    except ValueError:
        raise UserError(f"--engine must be hf or vllm, got {engine!r}") from None
    return cfg.model_copy(update={"engine": engine_cfg})


RunsDirOpt = Annotated[Path, typer.Option(help="folder holding run folders")]


def _typer_abort() -> type[BaseException]:
    import importlib

    try:
        return importlib.import_module("typer.exceptions").Abort
    except ImportError:  # pragma: no cover - older typer: click's
        return importlib.import_module("click.exceptions").Abort


# verbs whose work several processes share (persona generation by chunks, data-parallel
# training); under a launcher every other verb runs on rank 0 alone
PARALLEL_VERBS = {"run", "compare", "data", "train"}


def _verb(args: list[str]) -> str:
    """The verb of a command line (global options and their values skipped)."""
    it = iter(args)
    for a in it:
        if a == "--threads":
            next(it, None)
        elif not a.startswith("-"):
            return a
    return ""


def _error(line: str) -> None:
    """One line on stderr (rank-prefixed under several processes, where other ranks are
    quiet)."""
    from weightsteer.core import dist

    console.quiet = False
    rank = f"[rank {dist.rank()}] " if dist.world_size() > 1 else ""
    console.print(f"[red]error:[/] {rank}{line}", highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    import os
    import warnings

    # a deprecation inside transformers that PEFT triggers on every adapter: not actionable
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    import importlib

    try:  # typer's own copy of click raises these
        cx = importlib.import_module("typer._click.exceptions")
    except ImportError:  # pragma: no cover - a typer that uses click itself
        cx = importlib.import_module("click.exceptions")
    Abort = getattr(cx, "Abort", None) or _typer_abort()
    from weightsteer.core import dist

    if not dist.is_main():  # rank 0 speaks for a multi-process job; the rest only on error
        if _verb(sys.argv[1:] if argv is None else argv) not in PARALLEL_VERBS:
            sys.exit(0)  # a verb one process does whole: the others have nothing to do
        console.quiet = True
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    try:
        code = app(args=argv, standalone_mode=False)
    except UserError as e:
        _error(str(e))
        sys.exit(2)
    except cx.NoArgsIsHelpError as e:  # a bare verb group: its help, as typer shows it
        print(e.ctx.get_help() if e.ctx else "", file=sys.stderr)
        sys.exit(2)
    except cx.UsageError as e:  # a bad option value, an unknown option or verb: one line
        where = f" (see `{e.ctx.command_path} --help`)" if e.ctx else ""
        _error(f"{e.format_message()}{where}")
        sys.exit(2)
    except (KeyboardInterrupt, Abort):
        console.print("interrupted; run the same command again to resume")
        sys.exit(130)
    except Exception as e:  # an OS error the user can fix (read-only, full, not a folder)
        line = os_error_line(e)
        if line is None:
            raise
        _error(line)
        sys.exit(2)
    if code == 130:  # typer turns Ctrl-C into exit code 130 without a word
        console.print("interrupted; run the same command again to resume")
    sys.exit(code if isinstance(code, int) else 0)
