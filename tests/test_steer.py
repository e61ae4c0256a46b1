"""Steering invariants: exact restore, exact formula, refusal before any change."""

from __future__ import annotations

import random

import pytest
import torch

from weightsteer.core.errors import UserError
from weightsteer.core.models import fingerprint
from weightsteer.core.steer import Steerer, steer
from weightsteer.core.vector import LowRank, VectorMeta, WeightVector

TARGETS = (
    "model.layers.1.self_attn.q_proj.weight",
    "model.layers.2.mlp.down_proj.weight",
    "model.layers.2.post_attention_layernorm.weight",
)


def vector_for(model, seed=0, scale=0.05) -> WeightVector:
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    deltas = {}
    for name in TARGETS:
        shape = params[name].shape
        if len(shape) == 2:
            deltas[name] = LowRank(
                torch.randn(shape[0], 4, generator=g) * scale, torch.randn(4, shape[1], generator=g)
            )
        else:
            deltas[name] = torch.randn(*shape, generator=g) * scale
    return WeightVector(deltas, VectorMeta(base=fingerprint(model), family="lora"))


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def assert_bit_identical(model, snap):
    for n, p in model.named_parameters():
        assert torch.equal(p, snap[n]), n


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_exact_restore_after_100_random_switches(tiny, dtype):
    model = tiny[0].to(dtype)
    vec = vector_for(model)
    snap = snapshot(model)
    rng = random.Random(0)
    with Steerer(model, vec) as s:
        for _ in range(100):
            s.set_alpha(rng.uniform(-3, 3))
        s.set_alpha(0.0)
        assert_bit_identical(model, snap)  # alpha = 0 is the original, not a round trip
        s.set_alpha(1.7)
    assert_bit_identical(model, snap)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_steered_weight_is_float32_sum_cast_once(tiny, dtype):
    model = tiny[0].to(dtype)
    vec = vector_for(model)
    snap = snapshot(model)
    with steer(model, vec, -0.8):
        params = dict(model.named_parameters())
        for name in TARGETS:
            expect = (snap[name].float() + -0.8 * vec.dense(name)).to(dtype)
            assert torch.equal(params[name], expect)
        untouched = "model.layers.0.self_attn.q_proj.weight"
        assert torch.equal(params[untouched], snap[untouched])
    # Steering from the steered state twice gives the same weights (no accumulation).
    with Steerer(model, vec) as s:
        s.set_alpha(0.5)
        first = snapshot(model)
        s.set_alpha(-2.0)
        s.set_alpha(0.5)
        assert_bit_identical(model, first)


def test_exception_inside_context_restores(tiny):
    model = tiny[0]
    vec = vector_for(model)
    snap = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"), steer(model, vec, 2.0):
        assert not torch.equal(dict(model.named_parameters())[TARGETS[0]], snap[TARGETS[0]])
        raise RuntimeError("boom")
    assert_bit_identical(model, snap)


def test_alpha_zero_is_exact_noop_on_outputs(tiny):
    model, tok = tiny
    ids = torch.tensor([tok.encode("Is the cat red?")])
    with torch.no_grad():
        base = model(ids).logits
        with steer(model, vector_for(model), 0.0):
            same = model(ids).logits
    assert torch.equal(base, same)


def _mismatched(model, kind):
    vec = vector_for(model)
    if kind == "missing":
        deltas = dict(vec.deltas) | {"model.layers.9.mlp.up_proj.weight": torch.zeros(3, 3)}
        return WeightVector(deltas, vec.meta), "does not have"
    if kind == "shape":
        deltas = dict(vec.deltas) | {TARGETS[2]: torch.zeros(7)}
        return WeightVector(deltas, vec.meta), "has shape"
    if kind == "arch":
        meta = vec.meta.model_copy(
            update={"base": vec.meta.base.model_copy(update={"architecture": "LlamaForCausalLM"})}
        )
        return WeightVector(vec.deltas, meta), "made for a LlamaForCausalLM"
    if kind == "layout":
        meta = vec.meta.model_copy(
            update={"base": vec.meta.base.model_copy(update={"shapes_hash": "0" * 16})}
        )
        return WeightVector(vec.deltas, meta), "parameter layout differs"
    meta = vec.meta.model_copy(
        update={"base": vec.meta.base.model_copy(update={"weights_hash": "0" * 16})}
    )
    return WeightVector(vec.deltas, meta), "allow-finetune"


@pytest.mark.parametrize("kind", ["missing", "shape", "arch", "layout", "finetune"])
def test_wrong_model_is_refused_before_any_change(tiny, kind):
    model = tiny[0]
    vec, match = _mismatched(model, kind)
    snap = snapshot(model)
    with pytest.raises(UserError, match=match), steer(model, vec, 1.0):
        pass
    assert_bit_identical(model, snap)


def test_finetune_allowed_when_asked(tiny):
    """A vector made on other weights of the same shapes steers when the user says the
    model is a fine-tune of its base: the weights move at alpha 1 and come back exactly."""
    model = tiny[0]
    vec, _ = _mismatched(model, "finetune")
    snap = snapshot(model)
    with steer(model, vec, 1.0, allow_finetune=True):
        moved = [n for n, p in model.named_parameters() if not torch.equal(p, snap[n])]
        assert moved and set(moved) <= set(vec)
    assert_bit_identical(model, snap)


def test_fingerprint_ignores_dtype_but_sees_a_finetune(tiny):
    model = tiny[0]
    fp32 = fingerprint(model)
    with steer(model, vector_for(model), 1.0):
        tuned = fingerprint(model)
    assert tuned.weights_hash != fp32.weights_hash
    assert tuned.shapes_hash == fp32.shapes_hash
    assert fingerprint(model.to(torch.bfloat16)).weights_hash == fp32.weights_hash


def test_a_float16_load_has_its_bases_weights_and_a_finetune_does_not(tiny):
    """float16 rounds each sampled value once more (another hash): the sample itself is
    compared within rounding, for a float16 model only; a fine-tune stays another model."""
    from weightsteer.core.models import same_weights

    model = tiny[0]
    fp32 = fingerprint(model)
    with steer(model, vector_for(model), 1.0):
        tuned = fingerprint(model.half())
    model.float()
    half = fingerprint(model.half())
    assert half.weights_hash != fp32.weights_hash  # why the sample is needed
    assert same_weights(half, fp32, half=True)
    assert not same_weights(half, fp32, half=False)  # float32 and bfloat16: exact
    assert not same_weights(tuned, fp32, half=True)
    assert not same_weights(half, fp32.model_copy(update={"weights_sample": None}), half=True)


def test_fingerprint_sample_stays_in_bounds_for_huge_tensors():
    from weightsteer.core.models import sample_index

    for numel in (1, 2, 17, 155_582_464, 2**31 + 7):
        idx = sample_index(numel)
        assert int(idx.min()) == 0 and int(idx.max()) == numel - 1
        assert len(set(idx.tolist())) == min(16, numel)
