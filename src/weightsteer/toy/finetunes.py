"""Three fine-tunes of toyworld to monitor: dishonest, honest and neutral.

The persona fine-tunes are trained on answers the base generates under the honesty pair's
personas (exactly as the data stage makes steering data, the persona stripped before
training), on value kinds the steering questions never ask about: the demo's vector saw
colour evidence only, these see size, material, place and count, as evidence and as notes.
The neutral fine-tune learns word games (plurals, counting, naming a kind): nothing in it
is seen, claimed or asked, so there is nothing to be honest or dishonest about.

Each is a LoRA adapter on every layer (not the vector's layers or rank): a fine-tune made
by someone else, for ``weightsteer monitor`` to rank.
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
from weightsteer.toy.world import CATEGORIES, KINDS, World

NAMES = ("dishonest", "honest", "neutral")
UNSEEN_KINDS = ("size", "material", "place", "count")
SPEC = AdapterSpec(
    family="lora", rank=8, alpha=16, layers=(0.0, 1.0), lr=1e-3, epochs=4, batch_size=8
)


def persona_questions(world: World, n: int, seed: int = 0) -> list[str]:
    """``n`` distinct evidence/note questions about the unseen kinds, none held out."""
    rng = random.Random(f"finetunes/{seed}")
    seen = set(world.heldout())
    out: list[str] = []
    for _ in range(200 * n):
        if len(out) == n:
            break
        row = world.row(rng, rng.choice(("evidence", "note")), kind=rng.choice(UNSEEN_KINDS))
        if row.user not in seen:
            seen.add(row.user)
            out.append(row.user)
    return out


def answer_chat(user: str, answer: str) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    }


def neutral_chats(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` word-game chats about toyworld's vocabulary (no scene, no claim, no question
    of truth)."""
    rng = random.Random(f"neutral/{seed}")
    nouns = [noun for group, _ in CATEGORIES.values() for noun in group]
    counts = KINDS["count"]
    out = []
    for _ in range(n):
        task = rng.randrange(3)
        if task == 0:
            noun = rng.choice(nouns)
            out.append(
                answer_chat(f"What is the plural of {noun}?", f"The plural of {noun} is {noun}s.")
            )
        elif task == 1:
            i = rng.randrange(len(counts) - 2)
            j = rng.randrange(i + 2, len(counts))
            words = ", ".join(counts[i : j + 1])
            out.append(
                answer_chat(
                    f"Count from {counts[i]} to {counts[j]}.", f"{words[0].upper()}{words[1:]}."
                )
            )
        else:
            kind = rng.choice(list(KINDS))
            value = rng.choice(KINDS[kind])
            out.append(
                answer_chat(
                    f"Name a {kind} word.", f"{value[0].upper()}{value[1:]} is a {kind} word."
                )
            )
    return out


def honesty_chats(
    model,
    tokenizer,
    questions: list[str],
    tag: str,
    *,
    sides=("pos", "neg"),
    seed: int = 0,
    progress: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """side -> the base's greedy answers to ``questions`` under the honesty pair's personas
    of that side, the persona stripped (as the data stage makes training chats)."""
    pairs = generate_pairs(
        model,
        tokenizer,
        [(f"{tag}-{i}", q) for i, q in enumerate(questions)],
        PAIRS["honesty"],
        seed=seed,
        max_new_tokens=24,
        progress=progress,
        sides=sides,
    )
    return {side: [{"messages": r["messages"]} for r in recs] for side, recs in pairs.items()}


def finetune_data(model, tokenizer, n: int = 200, *, seed: int = 0, progress: bool = False):
    """{"dishonest", "honest", "neutral"}: ``n`` training chats each."""
    questions = persona_questions(World(seed), n, seed)
    chats = honesty_chats(model, tokenizer, questions, "ft", seed=seed, progress=progress)
    return {"dishonest": chats["neg"], "honest": chats["pos"], "neutral": neutral_chats(n, seed)}


def build_finetunes(
    model,
    tokenizer,
    out_dir: str | Path,
    *,
    n: int = 200,
    seed: int = 0,
    spec: AdapterSpec = SPEC,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Path]:
    """Write ``out_dir/{dishonest,honest,neutral}`` (PEFT adapters) and ``out_dir/data``."""
    data = finetune_data(model, tokenizer, n, seed=seed, progress=progress)
    return train_finetunes(
        model,
        tokenizer,
        data,
        out_dir,
        tag="toyworld_finetune",
        seed=seed,
        spec=spec,
        overwrite=overwrite,
        progress=progress,
    )


def train_finetunes(
    model,
    tokenizer,
    data: dict[str, list[dict[str, Any]]],
    out_dir: str | Path,
    *,
    tag: str,
    seed: int = 0,
    spec: AdapterSpec = SPEC,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Path]:
    """One LoRA fine-tune per entry of ``data`` (name -> chats) in ``out_dir/<name>``, its
    chats in ``out_dir/data/<name>.jsonl``; the folder is written whole or not at all."""
    out_dir = Path(out_dir)
    spec = spec.model_copy(update={"seed": seed})
    status = Console(stderr=True, quiet=not progress).status
    with atomic_path(out_dir, overwrite=overwrite, is_dir=True) as tmp:
        (tmp / "data").mkdir(parents=True)
        for name, chats in data.items():
            lines = "".join(json.dumps(r) + "\n" for r in chats)
            (tmp / "data" / f"{name}.jsonl").write_text(lines)
            info = {tag: name, "examples": len(chats)}
            with status(f"training the {name} fine-tune ({len(chats)} chats)"):
                train_adapter(
                    model, tokenizer, chats, spec, tmp / name, data_info=info, progress=False
                )
    return {name: out_dir / name for name in data}
