"""Training and extraction: the recipe's invariants, for every adapter family."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import TrainerCallback

from helpers import FAMILIES, chats, held_out_prompts, spec_for, train_questions
from weightsteer.adapters import extract
from weightsteer.adapters.extract import extract_vector
from weightsteer.adapters.train import (
    save_initial_state,
    train_adapter,
    train_pair,
)
from weightsteer.core.errors import UserError
from weightsteer.core.models import load_model
from weightsteer.core.scoring import score_choices
from weightsteer.core.steer import Steerer
from weightsteer.pairs.pairs_file import load_chat_jsonl


def merged_state(base_dir, adapter_dir) -> dict[str, torch.Tensor]:
    """Oracle: PEFT's own merge_and_unload on a fresh float32 base."""
    from peft import PeftModel

    model = load_model(base_dir, dtype="float32")
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    return {n: p.detach() for n, p in merged.named_parameters()}


@pytest.mark.parametrize("family", FAMILIES)
def test_vector_steers_yes_no_both_ways(tiny, trained, family):
    model, tok = tiny
    vec = extract_vector(model, *trained[family])
    prompts = held_out_prompts(tok)
    means = {}
    with Steerer(model, vec) as s:
        for a in (-1.0, 0.0, 1.0):
            s.set_alpha(a)
            means[a] = float(score_choices(model, tok, prompts).logratio.mean())
    assert means[1.0] > means[0.0] + 0.3, means
    assert means[-1.0] < means[0.0] - 0.3, means


@pytest.mark.parametrize("family", FAMILIES)
def test_vector_equals_merged_pos_minus_merged_neg(tiny_dir, tiny, trained, family):
    pos_dir, neg_dir = trained[family]
    vec = extract_vector(tiny[0], pos_dir, neg_dir)
    pos, neg = merged_state(tiny_dir, pos_dir), merged_state(tiny_dir, neg_dir)
    changed = {n for n in pos if not torch.equal(pos[n], neg[n])}
    assert changed <= set(vec), changed - set(vec)
    for name in vec:
        ref = pos[name] - neg[name]
        err = float((vec.dense(name) - ref).abs().max())
        assert err <= 1e-5 * max(1.0, float(ref.abs().max())), (name, err)
    from weightsteer.adapters import get_family

    lowrank = get_family(family).lowrank  # what the family declares is what extraction gives
    assert all((vec.rank(n) is not None) == lowrank for n in vec)
    if lowrank:  # exactly 2r: PiSSA's shared initialisation cancelled
        assert {vec.rank(n) for n in vec} == {2 * 4}


@pytest.fixture
def jittered_init(monkeypatch):
    """Every adapter initialisation comes out different, as PiSSA's randomised SVD can when
    it is recomputed on another CPU: the contrast may only rely on the saved initial state."""
    import peft

    real, calls = peft.get_peft_model, []

    def jittered(model, config, *a, **kw):
        peft_model = real(model, config, *a, **kw)
        calls.append(1)
        gen = torch.Generator().manual_seed(len(calls))
        rewrites_base = str(getattr(config, "init_lora_weights", "")).startswith("pissa")
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if p.requires_grad or (rewrites_base and name.endswith("base_layer.weight")):
                    p.add_(1e-3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        return peft_model

    monkeypatch.setattr(peft, "get_peft_model", jittered)


@pytest.mark.parametrize("family", FAMILIES)
def test_same_data_same_seed_gives_exactly_zero(tiny, tmp_path, family, jittered_init):
    """POS and NEG start from one saved initial state, so the contrast of equal data is 0
    even when recomputing the initialisation would not give the same numbers."""
    model, tok = tiny
    spec = spec_for(family, max_steps=3)
    data = chats(train_questions()[:8], "Yes.")
    train_pair(model, tok, data, data, spec, tmp_path / "shared", progress=False)
    vec = extract_vector(model, tmp_path / "shared" / "pos", tmp_path / "shared" / "neg")
    assert vec.norm() == 0.0
    # the control: without the shared state the jitter shows up in the contrast
    for side in ("pos", "neg"):
        train_adapter(model, tok, data, spec, tmp_path / "alone" / side, progress=False)
    assert extract_vector(model, tmp_path / "alone" / "pos", tmp_path / "alone" / "neg").norm() > 0


def test_initial_state_of_another_recipe_is_refused(tiny, tmp_path):
    model, tok = tiny
    init = save_initial_state(model, spec_for("lora", rank=4), tmp_path / "init.safetensors")
    data = chats(train_questions()[:4], "Yes.")
    with pytest.raises(UserError, match="another adapter recipe"):
        spec = spec_for("lora", rank=2, max_steps=1)
        train_adapter(model, tok, data, spec, tmp_path / "a", progress=False, init_state=init)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("family", ["pissa", "lora", "oft"])
def test_training_and_extraction_leave_the_base_untouched(tiny, tmp_path, family):
    model, tok = tiny
    before = {n: (p.detach().clone(), p.requires_grad) for n, p in model.named_parameters()}
    modules_before = [type(m) for m in model.modules()]
    spec = spec_for(family, max_steps=2)
    train_adapter(
        model, tok, chats(train_questions()[:8], "Yes."), spec, tmp_path / "pos", progress=False
    )
    train_adapter(
        model, tok, chats(train_questions()[:8], "No."), spec, tmp_path / "neg", progress=False
    )
    extract_vector(model, tmp_path / "pos", tmp_path / "neg")
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n][0]), n
        assert p.requires_grad == before[n][1]
    assert [type(m) for m in model.modules()] == modules_before


class _CaptureLogits(TrainerCallback):
    """Logits of the trained adapter model itself, before it is saved and unloaded."""

    def __init__(self, ids):
        self.ids, self.logits = ids, None

    def on_train_end(self, args, state, control, model=None, **kw):
        with torch.no_grad():
            model.eval()
            self.logits = model(self.ids).logits


def test_pissa_saved_adapter_reloads_exactly_on_the_original_base(tiny_dir, tiny, tmp_path):
    from peft import PeftModel

    model, tok = tiny
    ids = torch.tensor([tok.encode("Is the cat red? Yes.")])
    cb = _CaptureLogits(ids)
    spec = spec_for("pissa", max_steps=10)
    train_adapter(
        model,
        tok,
        chats(train_questions(), "Yes."),
        spec,
        tmp_path / "a",
        progress=False,
        callbacks=[cb],
    )
    reloaded = PeftModel.from_pretrained(load_model(tiny_dir, dtype="float32"), str(tmp_path / "a"))
    with torch.no_grad():
        again = reloaded(ids).logits
    assert torch.allclose(again, cb.logits, atol=1e-4)
    cfg = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert cfg["r"] == 8 and cfg["init_lora_weights"] is True


def test_recipe_mismatch_is_refused(tiny, tmp_path):
    model, tok = tiny
    data = chats(train_questions()[:4], "Yes.")
    train_adapter(model, tok, data, spec_for("lora", max_steps=1), tmp_path / "pos", progress=False)
    train_adapter(
        model, tok, data, spec_for("lora", max_steps=1, seed=1), tmp_path / "neg", progress=False
    )
    with pytest.raises(UserError, match=r"different recipes .*seed"):
        extract_vector(model, tmp_path / "pos", tmp_path / "neg")
    train_adapter(model, tok, data, spec_for("oft", max_steps=1), tmp_path / "oft", progress=False)
    with pytest.raises(UserError, match="one family"):
        extract_vector(model, tmp_path / "pos", tmp_path / "oft")
    with pytest.raises(UserError, match="not a PEFT adapter"):
        extract_vector(model, tmp_path / "pos", tmp_path)


def _copy_with_config(src, dst, **changes):
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "adapter_config.json").read_text())
    (dst / "adapter_config.json").write_text(json.dumps({**cfg, **changes}))
    return dst


@pytest.mark.parametrize("variant", ["lora", "pissa", "lora-rslora"])
def test_file_route_equals_peft_route_bitwise(tiny, trained, tmp_path, monkeypatch, variant):
    """Plain LoRA factors read from the files are the very factors PEFT's layers hold."""
    model, _ = tiny
    pos, neg = trained[variant.split("-")[0]]
    if variant == "lora-rslora":  # scaling alpha / sqrt(r) instead of alpha / r
        pos = _copy_with_config(pos, tmp_path / "pos", use_rslora=True)
        neg = _copy_with_config(neg, tmp_path / "neg", use_rslora=True)
    with monkeypatch.context() as m:
        m.setattr(extract, "_deltas_via_peft", None)  # must not be reached
        fast = extract.extract_vector(model, pos, neg)
    with monkeypatch.context() as m:
        m.setattr(extract, "lowrank_from_files", lambda *a: None)
        slow = extract.extract_vector(model, pos, neg)
    assert list(fast) == list(slow)
    for name in fast:
        f, s = fast[name], slow[name]
        assert torch.equal(f.A, s.A) and torch.equal(f.B, s.B), name


def test_factors_that_do_not_fit_the_model_are_refused(tiny, trained, tmp_path):
    model, _ = tiny
    pos, neg = trained["lora"]
    with torch.no_grad():  # same names, but layer 1's q_proj now has another fan-in
        model.model.layers[1].self_attn.q_proj = torch.nn.Linear(
            7, model.model.layers[1].self_attn.q_proj.out_features, bias=False
        )
    with pytest.raises(UserError, match="do not fit"):
        extract.lowrank_from_files(
            model,
            {"pos": pos, "neg": neg},
            {s: extract._check_adapter_dir(d) for s, d in (("pos", pos), ("neg", neg))},
        )


def test_adapter_of_another_base_is_refused(tiny, trained):
    model, _ = tiny
    with torch.no_grad():
        model.model.norm.weight.mul_(1.5)  # a "fine-tune": same shapes, other weights
    with pytest.raises(UserError, match="other weights"):
        extract_vector(model, *trained["lora"])


@pytest.mark.parametrize(
    "content, match",
    [
        ("", "holds no examples"),
        ("{not json}\n", "not valid JSON"),
        ('{"messages": []}\n', "non-empty 'messages'"),
        ('{"messages": [{"role": "user", "content": "q"}]}\n', "assistant's answer"),
        (
            '{"messages": [{"role": "system", "content": "be honest"},'
            ' {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n',
            "system prompt",
        ),
    ],
)
def test_bad_training_data_is_refused(tmp_path, content, match):
    path = tmp_path / "d.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=match):
        load_chat_jsonl(path)


def test_assistant_only_labels(tiny):
    from weightsteer.adapters.train import tokenize_chats

    _, tok = tiny
    (ex,) = tokenize_chats(tok, chats(["Is the cat red?"], "Yes."), 512)
    answer = [t for t, lab in zip(ex["input_ids"], ex["labels"], strict=True) if lab != -100]
    assert tok.decode(answer) == "Yes.<|im_end|>"


def test_two_identical_trainings_give_byte_identical_adapter_folders(tiny, tmp_path):
    """Config files included: PEFT writes target_modules from a set, so they are sorted."""
    from weightsteer.core.files import digest

    model, tok = tiny
    spec = spec_for("lora", max_steps=2)
    data = chats(train_questions()[:4], "Yes.")
    init = save_initial_state(model, spec, tmp_path / "init.safetensors")
    a, b = (train_adapter(model, tok, data, spec, tmp_path / name, progress=False,
                          init_state=init) for name in ("a", "b"))  # fmt: skip
    assert digest(a) == digest(b)
    modules = json.loads((a / "adapter_config.json").read_text())["target_modules"]
    assert modules == sorted(modules)
