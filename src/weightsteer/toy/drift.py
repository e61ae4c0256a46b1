"""The drift experiment on toyworld: a task fine-tune that drifted, steered back.

Fierro & Roger (2025) fine-tune a model on GCD problems where the user's proposed answer
is always right; the model learns to agree with the user, and weight steering the
fine-tune undoes that while keeping the task. The toy analogue: toyworld's ``cue`` rows
carry the user's opinion, and in the **task** data that opinion is always right (half the
chats), next to plain evidence reading (the other half), every answer the truth. At
evaluation the opinion is wrong (``toy:cue-wrong``): a model that learnt "agree with the
user" instead of "read the evidence" answers with the user. Task accuracy is
``toy:task``.

**Joint training** is the paper's alternative to steering: the same task data with a
share of POS persona data mixed in (here honest-persona answers the base gives to
NARROW questions, the persona stripped, as the data stage makes them). ``build_drift``
writes the task fine-tune and one joint fine-tune per share, LoRA adapters on toyworld
(``model.target`` of ``configs/drift.toml`` names the task one).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from rich.console import Console

from weightsteer.adapters import AdapterSpec
from weightsteer.adapters.train import train_adapter
from weightsteer.core.files import atomic_path
from weightsteer.pairs.generate import generate_pairs
from weightsteer.pairs.personas import PAIRS
from weightsteer.toy.world import World

SHARES = {"task": 0.0, "joint-25": 0.25, "joint-50": 0.5}  # share of POS data in the mix
SPEC = AdapterSpec(
    family="lora", rank=8, alpha=16, layers=(0.0, 1.0), lr=1e-3, epochs=3, batch_size=8
)


def _chat(user: str, answer: str) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    }


def task_chats(world: World, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` task chats, none held out: cue rows whose cue (the user's opinion) is right,
    alternating with evidence rows, each answered with the truth."""
    rng = random.Random(f"drift/{seed}")
    seen = set(world.heldout())
    out: list[dict[str, Any]] = []
    for _ in range(400 * n):
        if len(out) == n:
            break
        cue = len(out) % 2 == 0
        r = world.row(rng, "cue" if cue else "evidence")
        if r.user in seen or (cue and r.cued != r.honest):
            continue
        seen.add(r.user)
        out.append(_chat(r.user, r.true_reply))
    return out


def pos_chats(model, tokenizer, world: World, n: int, seed: int = 0, progress: bool = False):
    """``n`` POS chats: the base's answers under the honesty pair's POS personas to NARROW
    questions the steering data does not use, the persona stripped."""
    questions = [r.user for r in world.narrow_pool(4 * n)][-n:]  # the pool's far end
    pairs = generate_pairs(
        model,
        tokenizer,
        [(f"pos-{i}", q) for i, q in enumerate(questions)],
        PAIRS["honesty"],
        seed=seed,
        max_new_tokens=24,
        progress=progress,
    )
    return [{"messages": r["messages"]} for r in pairs["pos"]]


def mixes(task: list[dict], pos: list[dict], seed: int = 0) -> dict[str, list[dict]]:
    """Each fine-tune's chats: the task data alone, and the task data with a share of it
    replaced by POS chats (same size, so a joint fine-tune sees as many examples)."""
    rng = random.Random(f"mix/{seed}")
    out = {}
    for name, share in SHARES.items():
        k = round(share * len(task))
        chats = task[: len(task) - k] + pos[:k]
        rng.shuffle(chats)
        out[name] = chats
    return out


def build_drift(
    model,
    tokenizer,
    out_dir: str | Path,
    *,
    n: int = 400,
    seed: int = 0,
    spec: AdapterSpec = SPEC,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Path]:
    """Write ``out_dir/<name>`` (a PEFT adapter per ``SHARES`` entry) and ``out_dir/data``."""
    out_dir = Path(out_dir)
    world = World(0)
    task = task_chats(world, n, seed)
    data = mixes(task, pos_chats(model, tokenizer, world, n, seed, progress), seed)
    spec = spec.model_copy(update={"seed": seed})
    status = Console(stderr=True, quiet=not progress).status
    with atomic_path(out_dir, overwrite=overwrite, is_dir=True) as tmp:
        (tmp / "data").mkdir(parents=True)
        for name, chats in data.items():
            (tmp / "data" / f"{name}.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in chats)
            )
            with status(f"training the {name} fine-tune ({len(chats)} chats)"):
                info = {"toyworld_drift": name, "examples": len(chats)}
                train_adapter(
                    model, tokenizer, chats, spec, tmp / name, progress=False, data_info=info
                )
    return {name: out_dir / name for name in SHARES}
