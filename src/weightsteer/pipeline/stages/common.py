"""What every stage shares: the stage order, saying what happens to a unit, the
progress bar, and the parts of content keys several stages use."""

from __future__ import annotations

from weightsteer.core import dist
from weightsteer.core.config import content_key
from weightsteer.pipeline.run import Context

STAGES = ("data", "train", "extract", "eval", "compare", "report")
ALL_RANKS = ("data", "train")  # under several processes; rank 0 alone does the rest


def say_unit(ctx: Context, rel: str, state: str) -> None:
    if state == "done":
        ctx.console.print(f"  reuse  {rel}", style="dim", highlight=False)
    elif state == "user":
        ctx.console.print(
            f"  keep   {rel} (not written by this run: used as given)",
            style="yellow",
            highlight=False,
        )


def unit_todo(ctx: Context, rel: str, key: str, *, all_ranks: bool = False) -> bool:
    """Say what happens to unit ``rel`` (reuse it, keep the user's file, or make it) and
    record a user's file as such; True when the unit must be made. In a stage every rank
    runs (``all_ranks``), rank 0 decides for all."""
    state = ctx.run.state(rel, key)
    if all_ranks:
        state = dist.broadcast(state)
    say_unit(ctx, rel, state)
    if state == "user":
        ctx.run.adopt(rel)
    return state == "todo"


def progress_bar(ctx: Context):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=ctx.console,
        disable=not ctx.progress,
        transient=True,
    )


def rows_key(suites) -> str:
    return content_key([[s.name, [r.row_id for r in s.rows]] for s in suites])


def settings_key(settings) -> dict | None:
    """An entry's own settings as a cache-key part (None: it has none)."""
    return None if settings is None else settings.model_dump(mode="json")
