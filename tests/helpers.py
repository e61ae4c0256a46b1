"""Helpers the tests share (fixtures live in ``conftest.py``)."""

from __future__ import annotations

import json

import pytest

from weightsteer.adapters import FAMILIES as FAMILY_REGISTRY
from weightsteer.adapters import AdapterSpec
from weightsteer.cli import main
from weightsteer.core.models import render_chat
from weightsteer.toy.tiny import yes_no_questions

FAMILIES = tuple(FAMILY_REGISTRY)  # every registered family: a new one is tested the day it lands
# Learning rates that move a random tiny model within 30 steps (a new family: 1e-2).
TEST_LR = {"lora": 5e-3, "dora": 5e-3, "pissa": 5e-3, "delora": 2e-2, "oft": 2e-2, "ia3": 5e-2}


def chats(questions, answer):
    return [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": answer}]}
        for q in questions
    ]


def train_questions():
    return yes_no_questions()[::2]


def held_out_prompts(tokenizer):
    return [
        render_chat(tokenizer, [{"role": "user", "content": q}]) for q in yes_no_questions()[1::2]
    ]


def spec_for(family: str, **kw) -> AdapterSpec:
    base = dict(
        family=family, rank=4, alpha=8, lr=TEST_LR.get(family, 1e-2), max_steps=30, warmup_steps=0
    )
    return AdapterSpec(**{**base, **kw})


def cli(argv, capsys) -> tuple[int, str, str]:
    """Run the CLI in-process: ``(exit code, stdout, stderr)``."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    cap = capsys.readouterr()
    return e.value.code, cap.out, cap.err


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def random_lowrank_vector(model, rank: int = 16, scale: float = 0.02, layers=range(8, 24)):
    """A rank-``rank`` delta on every attention and MLP projection of ``layers``: a
    stand-in for a trained LoRA vector (exported exactly, as a trained one is)."""
    import torch

    from weightsteer.core.fingerprint import fingerprint
    from weightsteer.core.vector import LowRank, VectorMeta, WeightVector

    g = torch.Generator().manual_seed(0)
    deltas = {}
    for name, p in model.named_parameters():
        if p.dim() == 2 and ".layers." in name and int(name.split(".")[2]) in layers:
            out, inp = p.shape
            deltas[name] = LowRank(torch.randn(out, rank, generator=g) * scale,
                                   torch.randn(rank, inp, generator=g) * scale)  # fmt: skip
    return WeightVector(deltas, VectorMeta(base=fingerprint(model), family="lora"))
