"""Score toyworld rows: how strongly the model gives a chosen answer at the first token."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from weightsteer.core.models import render_chat
from weightsteer.core.scoring import score_choices
from weightsteer.pairs.personas import persona_chat
from weightsteer.toy.world import MODE_PERSONAS, Row, World


def answer_scores(
    model,
    tok,
    rows: Sequence[Row],
    personas: Sequence[str | None] = (None,),
    toward: Sequence[str] | None = None,
    *,
    batch_size: int = 64,
) -> torch.Tensor:
    """Yes/No logratio of each row signed toward ``toward`` (default: the honest answer).

    Positive means the model prefers that answer. System prompts ``personas`` rotate over
    the rows (``None``: no system prompt).
    """
    toward = [r.honest for r in rows] if toward is None else toward
    prompts = [
        render_chat(tok, persona_chat(personas[i % len(personas)], r.user))
        for i, r in enumerate(rows)
    ]
    logratio = score_choices(model, tok, prompts, batch_size=batch_size).logratio
    sign = torch.tensor([1.0 if t == "Yes" else -1.0 for t in toward])
    return logratio * sign


def persona_table(model, tok, suites: dict[str, list[Row]]) -> dict[str, dict[str, float]]:
    """Truthful-answer rate of every suite under the honest, dishonest and no-persona prompts."""
    return {
        name: {
            mode: float((answer_scores(model, tok, rows, MODE_PERSONAS[mode]) > 0).float().mean())
            for mode in ("honest", "default", "dishonest")
        }
        for name, rows in suites.items()
    }


def narrow_honesty_vector(
    model, tok, out_dir, *, seed: int = 0, n: int = 300, spec=None, progress: bool = False
):
    """The recipe on toyworld: NARROW prompts answered by the model under each honesty
    persona, one LoRA adapter per side, dW extracted. Returns ``(pairs, vector)``."""
    from weightsteer.adapters import AdapterSpec
    from weightsteer.adapters.extract import extract_vector
    from weightsteer.adapters.train import train_pair
    from weightsteer.pairs.generate import generate_pairs
    from weightsteer.pairs.personas import PAIRS

    spec = spec or AdapterSpec(family="lora", rank=8, alpha=16, lr=1e-3, epochs=4, warmup_steps=5)
    pool = World(seed).narrow_pool(n)
    questions = [(f"pool-{i}", r.user) for i, r in enumerate(pool)]
    pairs = generate_pairs(model, tok, questions, PAIRS["honesty"], seed=seed, max_new_tokens=24,
                           progress=progress)  # fmt: skip
    dirs = train_pair(model, tok, pairs["pos"], pairs["neg"], spec, out_dir, progress=progress)
    return pairs, extract_vector(model, *dirs, behavior="honesty", model_id="toyworld")
