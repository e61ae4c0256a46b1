"""Fixtures: a tiny local model (built once per session) and trained POS/NEG adapters."""

from __future__ import annotations

import pytest
import torch

from weightsteer.adapters import AdapterSpec
from weightsteer.modelling import load_model, load_tokenizer, render_chat
from weightsteer.toy.tiny import build_tiny_model, yes_no_questions
from weightsteer.train import train_pair

FAMILIES = ("lora", "dora", "pissa", "delora", "oft", "ia3")
# Learning rates that move a random tiny model within 30 steps.
TEST_LR = {"lora": 5e-3, "dora": 5e-3, "pissa": 5e-3, "delora": 2e-2, "oft": 2e-2, "ia3": 5e-2}


def pytest_configure(config):
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def tiny(tiny_dir):
    """A fresh float32 copy of the tiny model and its tokenizer."""
    return load_model(tiny_dir, dtype="float32"), load_tokenizer(tiny_dir)


@pytest.fixture(scope="session")
def toy_dir():
    """The toyworld model (built once, then cached under $WEIGHTSTEER_CACHE)."""
    from weightsteer.toy.build import ensure_toyworld

    return ensure_toyworld(seed=0, progress=False)


@pytest.fixture(scope="session")
def toy(toy_dir):
    return load_model(toy_dir, dtype="float32"), load_tokenizer(toy_dir)


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
    base = dict(family=family, rank=4, alpha=8, lr=TEST_LR[family], max_steps=30, warmup_steps=0)
    return AdapterSpec(**{**base, **kw})


@pytest.fixture(scope="session")
def trained(tiny_dir, tmp_path_factory):
    """family -> (pos_dir, neg_dir): POS trained to answer "Yes.", NEG to answer "No."."""
    root = tmp_path_factory.mktemp("adapters")
    model, tok = load_model(tiny_dir, dtype="float32"), load_tokenizer(tiny_dir)
    out = {}
    yes, no = chats(train_questions(), "Yes."), chats(train_questions(), "No.")
    for fam in FAMILIES:
        out[fam] = train_pair(model, tok, yes, no, spec_for(fam), root / fam, progress=False)
    return out
