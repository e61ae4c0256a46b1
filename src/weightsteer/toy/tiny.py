"""A tiny random-init Qwen3 with its own tokenizer, saved as a normal HF model folder.

Used by the tests and the core demo: every code path of a real model (chat template,
q/k/v/o/gate/up/down projections, tied embeddings, several layers) in under a second.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch

from weightsteer.core.files import atomic_path
from weightsteer.toy.tokenizer import train_bpe_tokenizer

SUBJECTS = ("cat", "dog", "fox", "owl", "ball", "box", "cup", "kettle", "river", "stone")
PROPERTIES = ("red", "blue", "green", "big", "small", "old", "new", "made of wood", "heavy")


def yes_no_questions() -> list[str]:
    """Questions of one small world, in a fixed order (used for data and held-out prompts)."""
    return [f"Is the {s} {p}?" for s, p in itertools.product(SUBJECTS, PROPERTIES)]


def corpus() -> list[str]:
    lines = []
    for q in yes_no_questions():
        lines += [q, f"{q} Yes.", f"{q} No.", "Yes", "No", " Yes", " No"]
    lines += ["true false A B", "You are a helpful assistant.", "Pretend you are honest."]
    return lines


def random_qwen3(
    tokenizer, *, layers: int, hidden: int, heads: int, kv_heads: int, intermediate: int,
    max_positions: int, seed: int,
):  # fmt: skip
    """A freshly initialised Qwen3 (seeded) sized for ``tokenizer``, embeddings tied."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    return Qwen3ForCausalLM(config)


def build_tiny_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    layers: int = 4,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    vocab_size: int = 400,
    overwrite: bool = False,
) -> Path:
    """Build and save the tiny model; deterministic for a given seed."""
    tokenizer = train_bpe_tokenizer(corpus(), vocab_size)
    model = random_qwen3(tokenizer, layers=layers, hidden=hidden, heads=heads, kv_heads=kv_heads,
                         intermediate=intermediate, max_positions=512, seed=seed)  # fmt: skip
    with atomic_path(out_dir, overwrite=overwrite, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)
