"""The run's generation engine (``[engine]``): a vLLM server the stages generate on.

``name = "hf"`` changes nothing. With ``"vllm"`` a stage that generates starts a server
for the run's model at its first request (or uses the one at ``[engine] url``); it is
kept while the next stages generate too and stopped before one that does not, and when
the run ends (``close_engine``). The data stage needs only the base model; eval and
compare serve weight vectors as LoRA adapters, so they need a server started with LoRA. Its log
is ``engine.log`` in the run folder; adapters are written under ``.work/`` and removed.
The run's files and manifest keys are the same for both engines.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weightsteer.core.served import Served, serving
from weightsteer.pipeline.run import Context

ENGINE_LOG = "engine.log"  # a started vLLM server's output, in the run folder
ADAPTERS = "engine-adapters"  # under the run's .work/: adapters served at each strength


@dataclass
class RunEngine:
    """The server a run generates on: its URL and whether it serves LoRA adapters."""

    url: str
    lora: bool
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)


def _server(ctx: Context, lora: bool) -> RunEngine:
    from weightsteer.core.engine import check_server, lora_bucket, start_server
    from weightsteer.core.sources import resolve_source

    cfg, have = ctx.cfg.engine, ctx.engine
    if have is not None and (have.lora or not lora):
        return have
    if cfg.url:
        ctx.engine = RunEngine(check_server(cfg.url), True)
        return ctx.engine
    close_engine(ctx, keep_adapters=True)
    rank = lora_bucket(served_rank(ctx.cfg)) if lora else None
    log = ctx.run.root / ENGINE_LOG
    eng = RunEngine("", lora)
    with ctx.console.status("starting the vLLM server (its log: engine.log)"):
        server = eng.stack.enter_context(
            start_server(resolve_source(ctx.cfg.model.id), log, cfg, lora_rank=rank)
        )
    eng.url = server.url
    ctx.engine = eng
    return eng


def served_rank(cfg: Any) -> int:
    """The LoRA rank the run's vectors get on the server: ``2r`` of a low-rank family
    (LoRA, PiSSA: exact), or ``[engine] lora_rank`` when set (a dense family's SVD rank).
    A larger ``--max-lora-rank`` is more work per token for every adapter."""
    from weightsteer.adapters.family import get_family

    ranks = [2 * cfg.train.spec(f, 0).rank for f in cfg.train.families if get_family(f).lowrank]
    given = [cfg.engine.lora_rank] if cfg.engine.lora_rank else []
    return max(ranks + given) if ranks + given else 2 * cfg.train.rank


def close_engine(ctx: Context, *, keep_adapters: bool = False) -> None:
    """Stop the run's server, if it started one, and remove the adapters it served."""
    eng, ctx.engine = ctx.engine, None
    if eng is not None:
        eng.stack.close()
    if not keep_adapters:
        shutil.rmtree(ctx.run.layout.work(ADAPTERS), ignore_errors=True)
        with contextlib.suppress(OSError):
            ctx.run.layout.work(ADAPTERS).parent.rmdir()  # only when empty


def _exporter(rank: int, max_error: float):
    def write(vector: Any, strength: float, path: Path) -> str:
        from weightsteer.core.served import NotServable
        from weightsteer.export import export_lora

        report = export_lora(vector, path, alpha=strength, rank=rank, overwrite=True)
        if all(t.exact for t in report.tensors):
            return ""
        what = (f"the {vector.meta.family} vector as a rank-{rank} LoRA is off by "
                f"{report.rel_error:.2e} (relative; exact in this process)")  # fmt: skip
        if report.rel_error > max_error:
            shutil.rmtree(path, ignore_errors=True)
            raise NotServable(f"{what}, above [engine] max_error {max_error:g}: its answers "
                              "are generated with transformers (a higher lora_rank serves "
                              "it)")  # fmt: skip
        return f"{what}: served"

    return write


@contextlib.contextmanager
def engine_for(
    ctx: Context, model: Any, tok: Any, *, lora: bool, bar: Any = None
) -> Iterator[Served | None]:
    """Generation on ``model`` inside the block goes to the run's vLLM server, started at
    the first request (None and nothing changed for ``[engine] name = "hf"``). ``lora``:
    steered generation (eval, compare) needs adapters. ``bar``: a rich progress bar that
    counts the responses."""
    from weightsteer.core.generation import end_token_ids

    cfg = ctx.cfg.engine
    if cfg.name == "hf":
        yield None
        return
    if lora and ctx.cfg.model.target:  # the server serves model.id, not the fine-tune
        ctx.console.print("  engine: steering model.target runs on transformers (the "
                          "server serves model.id)", highlight=False)  # fmt: skip
        yield None
        return
    log = None if cfg.url else ctx.run.root / ENGINE_LOG
    say = lambda line: ctx.console.print(line, highlight=False, markup=False)  # noqa: E731
    export = _exporter(cfg.lora_rank or served_rank(ctx.cfg), cfg.max_error)
    folder = ctx.run.layout.work(ADAPTERS)
    served = Served(lambda: _server(ctx, lora).url, end_token_ids(model, tok), cfg,
                    folder=folder, export=export, log=log, say=say)  # fmt: skip
    if bar is not None:  # one line per bar, however many blocks use it
        label = "vLLM responses"
        task = next((t.id for t in bar.tasks if t.description == label), None)
        task = bar.add_task(label, total=None) if task is None else task
        served.on_response = lambda n: bar.advance(task, n)
    with serving(model, served):
        yield served
