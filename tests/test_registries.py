"""Every registered family, method and suite through its contract on the tiny model, so an
entry added tomorrow is tested the day it is added (the lists come from the registries)."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import chats, spec_for, train_questions
from weightsteer.adapters import FAMILIES
from weightsteer.adapters.extract import extract_vector
from weightsteer.adapters.train import train_pair
from weightsteer.core.models import render_chat
from weightsteer.core.scoring import score_choices
from weightsteer.core.steer import Steerer
from weightsteer.evals import SUITES, SuiteContext, build_suites, score_suite
from weightsteer.methods import METHODS, MethodInputs, candidates
from weightsteer.methods.compare_config import CompareConfig
from weightsteer.pairs.personas import PAIRS
from weightsteer.pairs.questions import QuestionsConfig
from weightsteer.pipeline import RunConfig


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_gives_a_vector_that_moves_the_model_and_restores_it(tiny, tmp_path, family):
    model, tok = tiny
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    spec = spec_for(family, max_steps=5)
    yes, no = chats(train_questions(), "Yes."), chats(train_questions(), "No.")
    pos, neg = train_pair(model, tok, yes, no, spec, tmp_path, progress=False)
    vec = extract_vector(model, pos, neg)
    assert vec.norm() > 0 and math.isfinite(vec.norm())
    prompt = [render_chat(tok, [{"role": "user", "content": train_questions()[0]}])]
    base = score_choices(model, tok, prompt).logratio
    with Steerer(model, vec) as s:
        s.set_alpha(1.0)
        assert not torch.equal(score_choices(model, tok, prompt).logratio, base)
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n


@pytest.fixture(scope="module")
def inputs(tiny_dir, trained, tmp_path_factory):
    from weightsteer.core.models import load_model, load_tokenizer

    model, tok = load_model(tiny_dir, dtype="float32"), load_tokenizer(tiny_dir)
    path = tmp_path_factory.mktemp("vec") / "lora.safetensors"
    extract_vector(model, *trained["lora"]).save(path)
    pairs = {"pos": chats(train_questions(), "Yes."), "neg": chats(train_questions(), "No.")}
    for side, recs in pairs.items():
        for r in recs:
            r["persona"] = PAIRS["honesty"].prompt(side, 0)
    return MethodInputs(model, tok, PAIRS["honesty"], pairs, {("lora", 0): path}, [1],
                        CompareConfig())  # fmt: skip


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_is_the_unchanged_model_at_zero_and_restores_on_exit(inputs, method):
    model, tok = inputs.model, inputs.tokenizer
    prompt = [render_chat(tok, [{"role": "user", "content": train_questions()[1]}])]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    base = score_choices(model, tok, prompt).logratio
    built = candidates([method], inputs)
    assert built, method
    for cand in built:
        intervention = cand.build()
        assert intervention.system_prompt(0.0) is None
        with intervention.attach(model) as set_strength:
            set_strength(1.0)
            if intervention.system_prompt(1.0) is None:  # a model change: it moves the score
                assert not torch.equal(score_choices(model, tok, prompt).logratio, base)
            set_strength(0.0)
            assert torch.equal(score_choices(model, tok, prompt).logratio, base), cand.slug
            set_strength(-1.0)
        assert torch.equal(score_choices(model, tok, prompt).logratio, base), cand.slug
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n


def _sample_config(name: str):
    """The suite's own config, reading its shipped sample where its default is a hub set."""
    from importlib import resources

    spec = SUITES.entry(name)
    if spec.config is None:
        return None
    from weightsteer.evals.scorers import SCORERS

    sample = resources.files("weightsteer.data") / f"{name}-sample.jsonl"
    fields = spec.config.model_fields
    kw = {}
    if "source" in fields and sample.is_file():
        kw["source"] = f"builtin:{name}-sample"
    if "scorer" in fields:  # free text: any registered scorer (the behaviour has none)
        kw["scorer"] = next(iter(SCORERS))
    return spec.config(**kw)


@pytest.mark.parametrize("name", list(SUITES))
def test_every_suite_builds_unique_rows_and_scores_each_one(tiny, name):
    model, tok = tiny
    cfg = RunConfig().eval.model_copy(update={"suites": (name,), "rows_per_suite": 6})
    if SUITES.entry(name).config is not None:
        cfg = cfg.model_copy(update={name: _sample_config(name)})
    ctx = SuiteContext("", "honesty", QuestionsConfig(source="toyworld", n_train=5, n_eval=6))
    for suite in build_suites(cfg, ctx):
        ids = [r.row_id for r in suite.rows]
        assert ids and len(set(ids)) == len(ids)
        assert {r.label for r in suite.rows} <= {1, -1}
        scores = score_suite(model, tok, suite)
        assert scores.logratio.shape == (len(suite.rows),)
        assert torch.isfinite(scores.logratio).all()
