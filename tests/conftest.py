"""Fixtures: a tiny local model (built once per session), trained POS/NEG adapters, and
the toyworld model with its honesty vector (trained once per test run)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from helpers import FAMILIES, chats, spec_for, train_questions
from weightsteer.adapters.train import train_pair
from weightsteer.core.models import load_model, load_tokenizer
from weightsteer.toy.tiny import build_tiny_model


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


@pytest.fixture(scope="session")
def trained(tiny_dir, tmp_path_factory):
    """family -> (pos_dir, neg_dir): POS trained to answer "Yes.", NEG to answer "No."."""
    root = tmp_path_factory.mktemp("adapters")
    model, tok = load_model(tiny_dir, dtype="float32"), load_tokenizer(tiny_dir)
    yes, no = chats(train_questions(), "Yes."), chats(train_questions(), "No.")
    return {
        fam: train_pair(model, tok, yes, no, spec_for(fam), root / fam, progress=False)
        for fam in FAMILIES
    }


@pytest.fixture(scope="session")
def toy_honesty(toy_dir, tmp_path_factory):
    """The demo's LoRA honesty vector on toyworld (NARROW pairs the model generated under
    each honesty persona), its common mode saved next to it; ``.pairs``, ``.vector``,
    ``.path``."""
    from weightsteer.adapters import AdapterSpec
    from weightsteer.adapters.extract import extract_common
    from weightsteer.monitor import common_path
    from weightsteer.toy.row_scores import narrow_honesty_vector

    tmp = tmp_path_factory.mktemp("toy-honesty")
    model, tok = load_model(toy_dir, dtype="float32"), load_tokenizer(toy_dir)
    spec = AdapterSpec(family="lora", rank=8, alpha=16, lr=1e-3, epochs=4, warmup_steps=5,
                       layers=(0.25, 1.0))  # fmt: skip
    pairs, vec = narrow_honesty_vector(model, tok, tmp, spec=spec)
    path = vec.save(tmp / "honesty.safetensors")
    extract_common(model, tmp / "pos", tmp / "neg", vec).save(common_path(path))
    return SimpleNamespace(pairs=pairs, vector=vec, path=path)
