"""Where dW lives: the analyses' variants in closed form, a planted vector found by
keep/drop, and the retained-effect arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import held_out_prompts
from weightsteer.adapters.extract import extract_vector
from weightsteer.analysis import ANALYSES, FULL, AnalysisContext, random_matched
from weightsteer.core.models import load_model, load_tokenizer
from weightsteer.core.param_names import layer_index
from weightsteer.core.vector import LowRank, WeightVector


@pytest.fixture(scope="module")
def vectors(tiny_dir, trained):
    model = load_model(tiny_dir, dtype="float32")
    return {f: extract_vector(model, *trained[f]) for f in ("lora", "dora", "ia3")}


def dense(v: WeightVector, name: str, like: WeightVector) -> torch.Tensor:
    return v.dense(name) if name in v.deltas else torch.zeros(like.shape(name))


def built(name, vec, settings=None, **kw):
    """The variants of analysis ``name`` with its own settings (``settings``: fields)."""
    own = ANALYSES.entry(name).settings()
    if settings:
        own = own.model_copy(update=settings)
    return {v.name: v for v in ANALYSES.get(name)(vec, AnalysisContext(**kw), own)}


@pytest.mark.parametrize("analysis", list(ANALYSES))
def test_every_analysis_keeps_the_variant_contract(tiny_dir, vectors, analysis):
    """Every registered analysis: its variants are parts of the vector (its tensors, their
    shapes, finite), and every kept part has its dropped part: keep + drop = the vector."""
    vec = vectors["lora"]
    base = load_model(tiny_dir, dtype="float32")
    variants = built(analysis, vec, base=base, others=dict(vectors), draws=1)
    assert variants
    for name, v in variants.items():
        assert set(v.vector) <= set(vec), name
        for t in v.vector:
            d = v.vector.dense(t)
            assert d.shape == vec.shape(t) and torch.isfinite(d).all(), (name, t)
    keeps = [v for v in variants.values() if v.info.get("kind") == "keep"]
    for keep in keeps:
        split = keep.info.get("split")
        drops = [
            v
            for v in variants.values()
            if v.info.get("kind") == "drop" and v.info.get("split") == split
        ]
        assert len(drops) == 1, (analysis, keep.name)
        for t in vec:
            total = dense(keep.vector, t, vec) + dense(drops[0].vector, t, vec)
            assert torch.allclose(total, vec.dense(t), atol=1e-5), (keep.name, t)


@pytest.mark.parametrize("analysis", ["layers", "modules", "cells"])
@pytest.mark.parametrize("family", ["lora", "dora", "ia3"])
def test_keep_plus_drop_is_the_full_vector_for_every_split(vectors, analysis, family):
    vec = vectors[family]
    variants = built(analysis, vec)
    keeps = [n for n in variants if n.startswith("keep:") and "random" not in n]
    assert keeps
    for name in keeps:
        keep, drop = variants[name].vector, variants["drop:" + name[5:]].vector
        assert not set(keep) & set(drop) and set(keep) | set(drop) == set(vec)
        for t in vec:
            total = dense(keep, t, vec) + dense(drop, t, vec)
            assert torch.equal(total, vec.dense(t))


@pytest.mark.parametrize("family", ["lora", "dora"])
def test_singular_crops_and_their_residuals_reconstruct_the_vector(vectors, family):
    vec = vectors[family]
    v = built("svd", vec)
    for crop in ("top25", "mid50", "bottom25", "energy50", "energy90"):
        for t in vec:
            total = dense(v[crop].vector, t, vec) + dense(v[f"rest:{crop}"].vector, t, vec)
            assert torch.allclose(total, vec.dense(t), atol=1e-6 * float(vec.dense(t).abs().max()))
    for t in vec:  # the three index crops partition the directions
        parts = sum(v[c].vector.dense(t) for c in ("top25", "mid50", "bottom25"))
        assert torch.allclose(parts, vec.dense(t), atol=1e-5)
    e50, e90 = v["energy50"].vector.norm() ** 2, v["energy90"].vector.norm() ** 2
    assert 0.5 * vec.norm() ** 2 <= e50 + 1e-9 and e50 <= e90 <= vec.norm() ** 2 * (1 + 1e-6)

    # a crop is never bigger than the vector's own storage of a tensor, nor than the dense
    # tensor: ten crops of a rank-r vector weigh what it does, not ten dense copies
    def size(d) -> int:
        return d.A.numel() + d.B.numel() if isinstance(d, LowRank) else d.numel()

    for name, variant in v.items():
        for t in variant.vector:
            assert size(variant.vector[t]) <= max(size(vec[t]), vec.dense(t).numel()), name
            if isinstance(vec[t], LowRank):
                assert size(variant.vector[t]) <= size(vec[t]), (name, t)


def test_magnitude_and_direction_variants_keep_what_they_say(vectors):
    vec = vectors["dora"]
    v = built("magdir", vec, draws=3, seed=7)
    norms = vec.norms()
    for d in range(3):
        mag = v[f"mag_only:{d}"].vector.norms()
        assert all(math.isclose(mag[n], norms[n], rel_tol=1e-5) for n in norms)
        assert all(
            abs(float(torch.nn.functional.cosine_similarity(
                v[f"mag_only:{d}"].vector.dense(n).flatten(), vec.dense(n).flatten(), dim=0))) < 0.5
            for n in norms if vec.dense(n).numel() > 64
        )  # fmt: skip
    direction = v["dir_only"].vector
    assert math.isclose(direction.norm(), vec.norm(), rel_tol=1e-5)
    common = list(direction.norms().values())
    assert max(common) - min(common) < 1e-5 * max(common)
    for n in norms:
        cos = torch.nn.functional.cosine_similarity(
            direction.dense(n).flatten(), vec.dense(n).flatten(), dim=0
        )
        assert float(cos) > 1 - 1e-5
    rn = v["random_norm:0"].vector
    assert math.isclose(rn.norm(), vec.norm(), rel_tol=1e-5)


def test_random_controls_are_reproducible_from_their_seed(vectors):
    vec = vectors["lora"]
    a = random_matched(vec, list(vec), seed=3, draw=1)
    b = random_matched(vec, list(vec), seed=3, draw=1)
    c = random_matched(vec, list(vec), seed=4, draw=1)
    assert all(torch.equal(a.dense(n), b.dense(n)) for n in vec)
    assert not all(torch.equal(a.dense(n), c.dense(n)) for n in vec)


def test_the_shared_basis_of_one_vector_with_itself_keeps_all_of_it(vectors):
    vec = vectors["lora"]  # rank 8 per tensor (2 x rank 4)
    v = built("shared", vec, {"rank": 16}, others={"lora": vec}, draws=1)
    for n in vec:
        assert torch.allclose(v["keep_shared"].vector.dense(n), vec.dense(n), atol=1e-5)
        assert float(v["drop_shared"].vector.dense(n).abs().max()) < 1e-5
    # a smaller basis keeps less; keep + drop is the vector whatever its size
    small = built(
        "shared", vec, {"rank": 2}, others={"lora": vec, "dora": vectors["dora"]}, draws=1
    )
    assert small["keep_shared"].vector.norm() < vec.norm()
    for n in vec:
        total = small["keep_shared"].vector.dense(n) + small["drop_shared"].vector.dense(n)
        assert torch.allclose(total, vec.dense(n), atol=1e-5)


def test_the_base_basis_crop_of_every_direction_keeps_a_square_tensor_whole(tiny_dir, vectors):
    model = load_model(tiny_dir, dtype="float32")
    vec = vectors["lora"]
    v = built("basis", vec, base=model)
    params = dict(model.named_parameters())
    square = [n for n in vec if params[n].shape[0] == params[n].shape[1]]
    assert square
    for n in square:  # a full-rank square base: its basis spans everything
        assert torch.allclose(v["base_all"].vector.dense(n), vec.dense(n), atol=1e-5)
    assert 0 < v["base_top25"].info["energy"] < 1


def test_a_vector_placed_in_one_layer_is_found_there(tiny_dir, vectors):
    """The LoRA vector's effect kept in one layer, random norm-matched noise in the others:
    keeping that layer keeps ~all of the effect, dropping it removes ~all."""
    from weightsteer.analysis import subset
    from weightsteer.evals import EvalRow, Suite
    from weightsteer.evals.bootstrap import MetricsConfig
    from weightsteer.evals.retained import retained_effects
    from weightsteer.evals.score_intervention import evaluate_intervention
    from weightsteer.methods.weight import WeightSteering

    model, tok = load_model(tiny_dir, dtype="float32"), load_tokenizer(tiny_dir)
    vec = vectors["lora"]
    layers = sorted({layer_index(n) for n in vec})
    target = layers[len(layers) // 2]
    inside = [n for n in vec if layer_index(n) == target]
    noise = random_matched(vec, [n for n in vec if n not in inside], seed=0, draw=0) * 0.5
    planted = subset(vec, inside, "planted") + noise
    prompts = held_out_prompts(tok)
    rows = [EvalRow(f"r{i}", [{"role": "user", "content": p}], 1) for i, p in enumerate(prompts)]
    suite = Suite("planted", rows)
    variants = list(built("layers", planted, draws=1).values())
    frames = []
    for name, v in [(FULL, planted), *((x.name, x.vector) for x in variants)]:
        inter = WeightSteering(vector=v, family="lora", variant=name, allow_finetune=True)
        frames += evaluate_intervention(model, tok, inter, [suite], [-3.0, 3.0])
    df = pd.concat(frames, ignore_index=True)
    r = retained_effects(df, MetricsConfig(bootstrap=200)).set_index("variant")
    assert r.loc[FULL, "retained"] == 1.0
    assert r.loc[f"keep:layer{target}", "retained"] > 0.8
    assert abs(r.loc[f"drop:layer{target}", "retained"]) < 0.2
    for i in layers:  # the other layers hold noise: keeping one of them keeps little
        if i != target:
            assert abs(r.loc[f"keep:layer{i}", "retained"]) < 0.2


def test_retained_effect_in_closed_form():
    """effect = (score(+) - score(-)) / 2; retained = mean variant effect / mean full."""
    rows = [f"r{i}" for i in range(4)]

    def frame(variant, s, scores):
        return pd.DataFrame({"method": "weight", "family": "lora", "seed": 0, "eval": "x",
                             "row_id": rows, "strength": s, "calibrated_kl": np.nan,
                             "score": scores, "variant": variant})  # fmt: skip

    df = pd.concat([
        frame("full", 1.0, [2.0, 2.0, 4.0, 4.0]), frame("full", -1.0, [0.0, 0.0, 0.0, 0.0]),
        frame("half", 1.0, [1.0, 1.0, 2.0, 2.0]), frame("half", -1.0, [0.0, 0.0, 0.0, 0.0]),
        frame("none", 1.0, [5.0, 5.0, 5.0, 5.0]), frame("none", -1.0, [5.0, 5.0, 5.0, 5.0]),
    ])  # fmt: skip
    from weightsteer.evals.bootstrap import MetricsConfig
    from weightsteer.evals.retained import retained_effects

    r = retained_effects(df, MetricsConfig(bootstrap=100)).set_index("variant")
    assert r.loc["full", "full_effect"] == 1.5 and r.loc["full", "retained"] == 1.0
    assert r.loc["half", "retained"] == 0.5 and r.loc["none", "retained"] == 0.0
    assert r.loc["half", "lo"] <= 0.5 <= r.loc["half", "hi"]


def test_agreement_rows_per_scope_and_subspace_overlap(vectors):
    from weightsteer.analysis.shared_basis import cosine_rows, subspace_overlap

    lora = vectors["lora"]
    assert math.isclose(subspace_overlap(lora, lora * -2.0), 1.0, rel_tol=1e-9)
    noise = random_matched(lora, list(lora), seed=0, draw=0)
    assert subspace_overlap(lora, noise) < 0.5
    rows = pd.DataFrame(cosine_rows({"lora": lora, "minus": lora * -1.0}))
    pair = rows[(rows["a"] == "lora") & (rows["b"] == "minus")].set_index("scope")
    assert math.isclose(pair.loc["all", "cosine"], -1.0, rel_tol=1e-9)
    layers = [s for s in pair.index if s.startswith("layer")]
    assert layers and all(math.isclose(pair.loc[s, "cosine"], -1.0, rel_tol=1e-9) for s in layers)
    assert "q_proj" in pair.index
