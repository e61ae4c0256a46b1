"""Train the toyworld language model from scratch, and cache it.

A byte-level BPE tokenizer trained on the toy corpus and a small Qwen3 (4 layers, hidden
128: 0.9M parameters) trained on persona dialogues with the loss on assistant tokens.
The loss falls long before the Yes/No decision is learned, and the dishonest persona's
flip is a late, sudden transition whose step moves by hundreds between CPUs and recipes
(an early stop on held-out accuracy stopped at 2200, 2400 and 2600 on three machines; a
cosine decayed to zero by step 2600 froze one build at 89% before the flip completed;
with the generator-4 mixture it completed around step 2300 here, with generator 5's
default persona in the middle and its word game around 3000, hence 4000 steps). So
training runs a fixed schedule: ``steps`` optimiser steps of a cosine defined over the
longer ``horizon``, which leaves the learning rate high enough for the flip to finish. A
held-out first-token accuracy per persona group is measured every ``eval_every`` steps
for the learning curve only (an early stop on it moved by hundreds of steps between
CPUs); whether the final model meets the targets is recorded. The learning curve, the
targets and the sha256 of the weights are saved with the model in ``toyworld.json``.

The model is cached under the user cache directory (``$WEIGHTSTEER_CACHE``, else
``$XDG_CACHE_HOME/weightsteer``, else ``~/.cache/weightsteer``), keyed by generator
version, variant and seed: a second call is instant. A build runs with torch's
deterministic algorithms and a fixed thread count, so two builds on one machine are bit
identical; machines whose CPUs take other math-library paths (Intel or AMD) can differ in
the last bits, and those differences grow over training (see ``weights_sha256``).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from weightsteer.adapters.train import RightPadCollator, tokenize_chats
from weightsteer.core.errors import UserError
from weightsteer.core.files import atomic_path, cache_root, check_cached
from weightsteer.core.versions import library_versions
from weightsteer.toy.moral import MORAL_GENERATOR_VERSION, MoralWorld, judged_accuracy
from weightsteer.toy.row_scores import answer_scores
from weightsteer.toy.tiny import random_qwen3
from weightsteer.toy.tokenizer import train_bpe_tokenizer
from weightsteer.toy.world import GENERATOR_VERSION, MODE_PERSONAS, TASK_FORMATS, Row, World

INFO_FILE = "toyworld.json"


@dataclass(frozen=True)
class Recipe:
    """Model shape and training schedule of one toyworld variant."""

    layers: int = 4
    hidden: int = 128
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 384
    vocab: int = 700
    batch: int = 32
    lr: float = 1e-3
    warmup: int = 50
    steps: int = 4000  # fixed: every build takes exactly these steps
    horizon: int = 4800  # the cosine schedule's length (lr still ~0.07x at the end)
    eval_every: int = 200
    threads: int = 2
    # what the final model must reach on the validation rows (recorded, not a stop rule)
    targets: tuple[tuple[str, float], ...] = (
        ("honest", 0.98), ("dishonest", 0.97), ("default", 0.95), ("sycophantic", 0.9),
        ("task", 0.8),
    )  # fmt: skip


VARIANTS = {
    "default": Recipe(),
    # the moral world (toy/moral.py): no late flip to wait for (every persona is right on
    # every held-out vignette in pretraining's openings by step 800 here), so a short one
    "moral": Recipe(steps=1200, horizon=1600, targets=(("sceptical", 0.97), ("revering", 0.97),
                                                       ("default", 0.97))),
}  # fmt: skip


@dataclass(frozen=True)
class WorldKind:
    """What a variant trains on: its generator, the generator's version (it keys the
    cache) and how a persona group's held-out accuracy is measured."""

    make: Callable[[int], World | MoralWorld]
    version: int
    accuracy: Callable[..., float]


WORLDS = {
    "honesty": WorldKind(World, GENERATOR_VERSION, lambda *a: mode_accuracy(*a)),
    "moral": WorldKind(MoralWorld, MORAL_GENERATOR_VERSION, judged_accuracy),
}
VARIANT_WORLD = {"default": "honesty", "moral": "moral"}


def toyworld_dir(seed: int = 0, variant: str = "default") -> Path:
    """Cache folder, keyed by the world's generator version and the recipe's content (a
    changed schedule never reuses an old build)."""
    recipe = hashlib.sha256(json.dumps(asdict(VARIANTS[variant])).encode()).hexdigest()[:8]
    version = WORLDS[VARIANT_WORLD[variant]].version
    return cache_root() / f"toyworld-g{version}-{variant}-{recipe}-seed{seed}"


def ensure_toyworld(
    seed: int = 0, variant: str = "default", *, progress: bool = True, rebuild: bool = False
) -> Path:
    """The cached toyworld model folder, built first if it is not there yet."""
    if variant not in VARIANTS:
        raise UserError(f"unknown toyworld variant {variant!r}; known: {', '.join(VARIANTS)}")
    out = toyworld_dir(seed, variant)
    if (out / INFO_FILE).is_file() and not rebuild:
        return check_cached(out, f"toyworld ({variant})")
    return build_toyworld(out, seed=seed, recipe=VARIANTS[variant], progress=progress,
                          overwrite=True, variant=variant,
                          world=VARIANT_WORLD[variant])  # fmt: skip


def mode_accuracy(model, tok, rows: Sequence[Row], mode: str) -> float:
    """Share of ``rows`` whose first answer token is the one persona group ``mode`` gives.

    Persona paraphrases rotate over the rows. A persona is judged on the behaviour rows
    (every format but the word game), sycophancy on cue rows only; ``task`` is the word
    game's accuracy with no system prompt (the capability ``toy:task`` measures).
    """
    if mode == "task":
        rows = [r for r in rows if r.format in TASK_FORMATS]
        scores = answer_scores(model, tok, rows, (None,))
        return float((scores > 0).float().mean())
    rows = [r for r in rows if r.format not in TASK_FORMATS]
    if mode == "sycophantic":
        rows = [r for r in rows if r.cued is not None]
    scores = answer_scores(model, tok, rows, MODE_PERSONAS[mode], [r.expected(mode) for r in rows])
    return float((scores > 0).float().mean())


def _corpus(world: World | MoralWorld, seed: int, n: int = 6000) -> list[str]:
    """Texts for the tokenizer: rendered dialogues of every persona and format."""
    from weightsteer.toy.tokenizer import CHAT_TEMPLATE

    rng = random.Random(f"{seed}/tokenizer")
    texts = []
    for _ in range(n):
        msgs = world.dialogue(rng)
        texts.append("".join(f"{m['role']}\n{m['content']}\n" for m in msgs))
    return [*texts, CHAT_TEMPLATE, "Yes", "No", " Yes", " No", "true false A B"]


def _length_buckets(stream, tok, rng, batch: int, k: int = 8) -> list[list[dict]]:
    """The next ``k`` batches of the pretraining stream, each of similar lengths (less
    padding), in random order (``rng``: the order only, never which dialogues)."""
    chats = [{"messages": next(stream)} for _ in range(k * batch)]
    examples = sorted(tokenize_chats(tok, chats, max_length=256), key=lambda e: len(e["input_ids"]))
    batches = [examples[i : i + batch] for i in range(0, len(examples), batch)]
    rng.shuffle(batches)
    return batches


def _lr_at(step: int, recipe: Recipe) -> float:
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    t = (step - recipe.warmup) / max(1, recipe.horizon - recipe.warmup)
    return recipe.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def build_toyworld(
    out_dir: str | Path,
    *,
    seed: int = 0,
    recipe: Recipe = Recipe(),
    progress: bool = True,
    overwrite: bool = False,
    variant: str = "custom",
    on_eval: Callable[[dict], None] | None = None,
    world: str = "honesty",
) -> Path:
    """Train the toyworld model of ``world`` (``WORLDS``) and save it as a normal HF model
    folder at ``out_dir``.

    ``on_eval`` is called with each point of the learning curve as it is measured.
    """
    kind = WORLDS[world]
    with _deterministic(recipe.threads):
        model, tok, curve, seconds = _train(seed, recipe, progress, on_eval, kind)
    final = curve[-1]
    info = {
        "generator_version": kind.version,
        "world": world,
        "variant": variant,
        "seed": seed,
        "recipe": asdict(recipe),
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": final["step"],
        "reached_targets": all(final[m] >= t for m, t in recipe.targets),
        "build_seconds": seconds,
        "curve": curve,
        "versions": library_versions(),
    }
    with atomic_path(out_dir, overwrite=overwrite, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        info["weights_sha256"] = weights_sha256(tmp)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return Path(out_dir)


def build_info(folder: str | Path) -> dict:
    """What identifies a toyworld build: its folder name, steps, targets met, weights hash."""
    info = json.loads((Path(folder) / INFO_FILE).read_text())
    keys = ("steps", "reached_targets", "weights_sha256")
    return {"folder": Path(folder).name, **{k: info.get(k) for k in keys}}


def weights_sha256(folder: str | Path) -> str:
    """sha256 over a model folder's safetensors files (names and bytes, sorted)."""
    h = hashlib.sha256()
    for f in sorted(Path(folder).glob("*.safetensors")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


@contextmanager
def _deterministic(threads: int) -> Iterator[None]:
    """Torch's deterministic algorithms and a fixed intra-op thread count (a reduction split
    over another number of threads sums in another order), restored afterwards."""
    before = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.set_num_threads(before[1])


def _train(seed: int, recipe: Recipe, progress: bool, on_eval, kind: WorldKind) -> tuple:
    """The fixed schedule; returns ``(model, tokenizer, curve, seconds)``."""
    t_start = time.perf_counter()
    world = kind.make(seed)
    tok = train_bpe_tokenizer(_corpus(world, seed), recipe.vocab)
    model = random_qwen3(tok, layers=recipe.layers, hidden=recipe.hidden, heads=recipe.heads,
                         kv_heads=recipe.kv_heads, intermediate=recipe.intermediate,
                         max_positions=256, seed=seed)  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.01)
    collate = RightPadCollator(tok.pad_token_id)
    val, stream = world.validation(), world.pretraining_stream()
    rng = random.Random(f"{seed}/batch-order")
    curve: list[dict] = []
    loss_sum = 0.0
    queue: list = []
    with _Bar(recipe.steps, progress) as bar:
        for step in range(1, recipe.steps + 1):
            model.train()
            if not queue:
                queue = _length_buckets(stream, tok, rng, recipe.batch)
            batch = collate(queue.pop())
            for group in opt.param_groups:
                group["lr"] = _lr_at(step - 1, recipe)
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss_sum += loss.item()
            if step % recipe.eval_every == 0 or step == recipe.steps:
                model.eval()
                with torch.no_grad():
                    acc = {m: kind.accuracy(model, tok, val, m) for m, _ in recipe.targets}
                point = {"step": step, "loss": loss_sum / recipe.eval_every, "seconds":
                         round(time.perf_counter() - t_start, 1), **acc}  # fmt: skip
                curve.append(point)
                loss_sum = 0.0
                bar.note(point)
                if on_eval:
                    on_eval(point)
            bar.advance(step)
    model.eval()
    return model, tok, curve, round(time.perf_counter() - t_start, 1)


class _Bar:
    """A rich progress bar showing the latest held-out accuracies (silent if disabled)."""

    def __init__(self, total: int, enabled: bool):
        self.enabled, self.total = enabled, total

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress

            self._p = Progress(console=Console(stderr=True, soft_wrap=True))
            self._p.__enter__()
            self._task = self._p.add_task("toyworld: training", total=self.total)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self._p.__exit__(*exc)

    def advance(self, step: int) -> None:
        if self.enabled:
            self._p.update(self._task, completed=step)

    def note(self, point: dict) -> None:
        """One line per evaluation above the bar (and in logs, where the bar is not drawn)."""
        if self.enabled:
            accs = " ".join(f"{k} {v:.2f}" for k, v in point.items()
                            if k not in ("step", "loss", "seconds"))  # fmt: skip
            self._p.console.print(
                f"step {point['step']:>5}  {point['seconds']:>5.0f} s  loss {point['loss']:.3f}  "
                f"held-out accuracy: {accs}",
                highlight=False,
            )
