"""The train stage: one POS and one NEG adapter per family and seed, from one shared start."""

from __future__ import annotations

from pathlib import Path

from weightsteer.core.config import content_key
from weightsteer.core.files import digest
from weightsteer.pairs.pairs_file import SIDES
from weightsteer.pipeline.layout import RunLayout
from weightsteer.pipeline.run import Context
from weightsteer.pipeline.stages.common import (
    progress_bar,
    unit_todo,
)


def _step_callback(bar, task):
    """An HF Trainer callback moving a rich progress task one optimiser step at a time."""
    from transformers import TrainerCallback

    class StepBar(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            bar.update(task, total=state.max_steps, completed=0)

        def on_step_end(self, args, state, control, **kw):
            bar.update(task, completed=state.global_step)

    return StepBar()


def _trained_tokens(adapter_dir: Path) -> int:
    from weightsteer.adapters.train import read_adapter_info

    info = read_adapter_info(adapter_dir) or {}
    return int(info.get("train", {}).get("tokens", 0))


def stage_train(ctx: Context) -> None:
    from weightsteer.adapters.train import save_initial_state, train_adapter
    from weightsteer.pairs.pairs_file import load_chat_jsonl

    cfg, run = ctx.cfg, ctx.run
    data = {side: run.layout.data(side) for side in SIDES}
    records: dict[str, list[dict]] = {}  # each side's pairs, read once when needed
    tokens = 0
    with progress_bar(ctx) as bar:
        units = bar.add_task("training adapters", total=2 * len(ctx.units()))
        steps = bar.add_task("  steps", total=None)
        for fam, seed in ctx.units():
            spec = cfg.train.spec(fam, seed)
            init_rel = RunLayout.rel_init(fam, seed)
            spec_json = spec.model_dump(mode="json")
            init_key = content_key({"spec": spec_json, "model": ctx.fingerprint()})
            if unit_todo(ctx, init_rel, init_key, all_ranks=True):
                with run.unit(init_rel, init_key) as out:
                    save_initial_state(ctx.model()[0], spec, out, overwrite=True)
            init = run.root / init_rel
            for side in SIDES:
                rel = RunLayout.rel_adapter(fam, seed, side)
                key = content_key(
                    {
                        "spec": spec.model_dump(mode="json"),
                        "data": digest(data[side]),
                        "model": ctx.fingerprint(),
                        "init": digest(init),
                    }
                )
                if unit_todo(ctx, rel, key, all_ranks=True):
                    model, tok = ctx.model()
                    if side not in records:
                        records[side] = load_chat_jsonl(data[side])
                    bar.update(steps, description=f"  {fam} seed {seed} {side}")
                    info = {
                        "path": f"data/{side}.jsonl",
                        "sha256": digest(data[side]),
                        "rows": len(records[side]),
                    }
                    with run.unit(rel, key) as out:
                        train_adapter(
                            model,
                            tok,
                            records[side],
                            spec,
                            out,
                            data_info=info,
                            overwrite=True,
                            progress=False,
                            callbacks=[_step_callback(bar, steps)],
                            init_state=init,
                        )
                tokens += _trained_tokens(run.root / rel)
                bar.advance(units)
    run.manifest["counts"]["train"] = {"adapters": 2 * len(ctx.units()), "tokens": tokens}
