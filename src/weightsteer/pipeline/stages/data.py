"""The data stage: POS and NEG persona answers to the training questions (``pairs/``)."""

from __future__ import annotations

import contextlib
import shutil

from weightsteer.core.config import content_key
from weightsteer.core.errors import UserError
from weightsteer.core.files import atomic_path
from weightsteer.pairs.pairs_file import SIDES
from weightsteer.pipeline.engine import engine_for
from weightsteer.pipeline.layout import RunLayout
from weightsteer.pipeline.run import Context
from weightsteer.pipeline.stages.common import (
    progress_bar,
    unit_todo,
)


def stage_data(ctx: Context) -> None:
    from weightsteer.pairs.filters import SELF, build_filter
    from weightsteer.pairs.generate import generate_pair_data, pair_items
    from weightsteer.pairs.pairs_file import write_pairs
    from weightsteer.pairs.personas import load_pair
    from weightsteer.pairs.questions import split_questions

    cfg, run = ctx.cfg, ctx.run
    pair = load_pair(cfg.behavior.name, cfg.behavior.file)
    split = split_questions(cfg.questions)
    items = pair_items(split.train, cfg.data.paraphrases, cfg.data.samples)
    key = content_key(
        {
            "model": ctx.fingerprint(),
            "pair": [pair.behavior, pair.pos, pair.neg],
            "items": [[it.id, it.user] for it in items],
            # greedy answers do not depend on how prompts are chunked (sampled ones do:
            # each chunk has its own seed)
            "data": cfg.data.model_dump(
                mode="json", exclude={"chunk_size"} if cfg.data.temperature == 0 else set()
            ),
        }
    )
    if not unit_todo(ctx, RunLayout.rel_data(), key, all_ranks=True):
        return
    model, tok = ctx.model()
    keep = build_filter(
        cfg.data.filter,
        pair.behavior,
        lambda judge: (model, tok) if judge == SELF else ctx.load(judge),
    )
    work = run.layout.work(f"data-{key}")
    with progress_bar(ctx) as bar, engine_for(ctx, model, tok, lora=False, bar=bar):
        task = bar.add_task("generating POS/NEG answers", total=len(items))
        on_chunk = _chunk_reporter(ctx, pair, lambda n: bar.update(task, advance=n))
        result = generate_pair_data(
            model,
            tok,
            items,
            pair,
            work_dir=work,
            max_new_tokens=cfg.data.max_new_tokens,
            temperature=cfg.data.temperature,
            top_p=cfg.data.top_p,
            seed=cfg.data.seed,
            batch_size=cfg.data.batch_size,
            chunk_size=cfg.data.chunk_size,
            keep=keep,
            on_chunk=on_chunk,
            truncated=cfg.data.truncated,
        )
    if result is None:  # another rank's share is written; rank 0 writes the pairs
        return
    if not result.counts["kept"]:
        raise UserError(
            f"every generated pair was dropped ({result.counts}); raise data.max_new_tokens, "
            'keep cut-off answers (data.truncated = "keep"), or check the filter'
        )
    unit = run.unit(RunLayout.rel_data(), key)
    with unit as out, atomic_path(out, overwrite=True, is_dir=True) as tmp:
        write_pairs(tmp, result.records)
    run.manifest["counts"]["data"] = result.counts
    shutil.rmtree(work, ignore_errors=True)
    with contextlib.suppress(OSError):
        work.parent.rmdir()  # only when empty
    c = result.counts
    cut = f"{c['unterminated']} unterminated"
    cut = f"0 unterminated; {cut} kept truncated" if cfg.data.truncated == "keep" else cut
    ctx.console.print(
        f"  data: {c['kept']} pairs kept of {c['pairs']} (dropped: {c['empty']} empty, "
        f"{cut}, {c['filtered']} filtered)",
        highlight=False,
    )


def _chunk_reporter(ctx: Context, pair, advance):
    """``on_chunk`` of the generation: moves the bar, and prints one decoded example at
    once (a chat-template bug shows here when numbers hide it)."""
    shown = False

    def on_chunk(done: int, total: int, rows: list[dict]) -> None:
        nonlocal shown
        advance(len(rows))
        if shown:
            return
        shown = True
        row = rows[0]
        ctx.console.print(f"  example question: {row['item']['user']!r}", highlight=False)
        for side in SIDES:
            persona = pair.prompt(side, row["item"]["paraphrase"])
            ctx.console.print(f"    {side} [{persona}] -> {row[side]['text']!r}", highlight=False)

    return on_chunk
