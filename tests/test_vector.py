"""WeightVector algebra and file format, checked against dense closed forms."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from weightsteer.core.errors import UserError
from weightsteer.core.models import Fingerprint
from weightsteer.core.vector import LowRank, VectorMeta, WeightVector

FP = Fingerprint(model_id="m", architecture="Arch", shapes_hash="s", weights_hash="w")
NAMES = ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight")


def random_vector(seed: int, rank: int = 3, dense_second: bool = False) -> WeightVector:
    g = torch.Generator().manual_seed(seed)
    d0 = LowRank(torch.randn(12, rank, generator=g), torch.randn(rank, 10, generator=g))
    d1 = (
        torch.randn(10, 16, generator=g)
        if dense_second
        else LowRank(torch.randn(10, rank, generator=g), torch.randn(rank, 16, generator=g))
    )
    return WeightVector({NAMES[0]: d0, NAMES[1]: d1}, VectorMeta(base=FP, family="lora"))


def dense(v: WeightVector) -> dict[str, torch.Tensor]:
    return {n: v.dense(n).double() for n in v}


def test_norms_and_dot_from_factors_equal_dense():
    a, b = random_vector(0), random_vector(1, dense_second=True)
    da, db = dense(a), dense(b)
    for n in a:
        assert a.norms()[n] == pytest.approx(float(da[n].norm()), rel=1e-6)
    expect_dot = sum(float((da[n] * db[n]).sum()) for n in a)
    assert a.dot(b) == pytest.approx(expect_dot, rel=1e-6)
    norm_b = sum(float(x.norm() ** 2) for x in db.values()) ** 0.5
    assert a.cosine(b) == pytest.approx(expect_dot / (a.norm() * norm_b), rel=1e-6)
    assert a.cosine(a) == pytest.approx(1.0, abs=1e-9)
    assert a.cosine(-a) == pytest.approx(-1.0, abs=1e-9)


def test_sum_difference_scale_match_dense():
    a, b = random_vector(0), random_vector(1, dense_second=True)
    s, d, m = a + b, a - b, 2.5 * a
    for n in a:
        assert torch.allclose(s.dense(n).double(), dense(a)[n] + dense(b)[n], atol=1e-5)
        assert torch.allclose(d.dense(n).double(), dense(a)[n] - dense(b)[n], atol=1e-5)
        assert torch.allclose(m.dense(n).double(), 2.5 * dense(a)[n], atol=1e-5)
    assert s.rank(NAMES[0]) == 6  # low-rank + low-rank stays low-rank
    assert s.rank(NAMES[1]) is None  # low-rank + dense is dense
    assert "+ [lora]" in s.meta.provenance[-1]


def test_identical_components_cancel_exactly():
    a = random_vector(0)
    z = a - a
    assert all(z.rank(n) == 0 for n in z)
    assert z.norm() == 0.0
    # PiSSA-like: pos = [B1, -B0][A1; A0], neg = [B2, -B0][A2; A0] -> pos - neg has rank 2r.
    g = torch.Generator().manual_seed(3)
    b0, a0 = torch.randn(12, 3, generator=g), torch.randn(3, 10, generator=g)
    sides = []
    for _ in range(2):
        b, a_ = torch.randn(12, 3, generator=g), torch.randn(3, 10, generator=g)
        sides.append(LowRank(torch.cat([b, -b0], 1), torch.cat([a_, a0], 0)))
    pos = WeightVector({NAMES[0]: sides[0]}, VectorMeta(base=FP))
    neg = WeightVector({NAMES[0]: sides[1]}, VectorMeta(base=FP))
    diff = pos - neg
    assert diff.rank(NAMES[0]) == 6
    assert torch.allclose(diff.dense(NAMES[0]), sides[0].dense() - sides[1].dense(), atol=1e-5)


def test_restrict_by_layer_and_module():
    v = random_vector(0)
    assert list(v.restrict(layers=[1])) == [NAMES[1]]
    assert list(v.restrict(modules=["q_proj"])) == [NAMES[0]]
    assert list(v.restrict(modules=["mlp"])) == [NAMES[1]]
    assert len(v.restrict(layers=[5])) == 0


def test_compress_error_is_exact_and_full_rank_is_lossless():
    v = random_vector(0, rank=5, dense_second=True)
    c, err = v.compress(2)
    num = sum(float((v.dense(n).double() - c.dense(n).double()).norm() ** 2) for n in v)
    assert err == pytest.approx(num**0.5 / v.norm(), rel=1e-4)
    assert all(c.rank(n) == 2 for n in c)
    full, err0 = v.compress(16)
    assert err0 == pytest.approx(0.0, abs=1e-6)
    for n in v:
        assert torch.allclose(full.dense(n), v.dense(n), atol=1e-4)


def test_save_load_round_trip_is_bitwise(tmp_path):
    v = random_vector(0, dense_second=True)
    path = v.save(tmp_path / "v.safetensors")
    w = WeightVector.load(path)
    assert w.meta == v.meta
    for n in v:
        assert torch.equal(w.dense(n), v.dense(n))
    with pytest.raises(UserError, match="already exists"):
        v.save(path)
    z = v - v  # rank-0 factors survive a round trip too
    z.save(tmp_path / "z.safetensors")
    assert WeightVector.load(tmp_path / "z.safetensors").norm() == 0.0


def _write(path, tensors, meta):
    save_file(tensors, str(path), metadata=meta)
    return path


@pytest.mark.parametrize(
    "case, match",
    [
        ("garbage", "not a readable safetensors"),
        ("no_meta", "not a weightsteer vector"),
        ("nan", "NaN"),
        ("half", "float32"),
        ("missing_factor", "no .*::B factor"),
        ("version", "format version 99"),
        ("bad_meta", "invalid metadata"),
        ("missing", "does not exist"),
    ],
)
def test_invalid_files_are_refused(tmp_path, case, match):
    meta = {"weightsteer": VectorMeta(base=FP).model_dump_json()}
    path = tmp_path / "v.safetensors"
    good = torch.ones(2, 2)
    if case == "garbage":
        path.write_bytes(b"\x00\x01 not a safetensors file")
    elif case == "no_meta":
        _write(path, {"p": good}, {})
    elif case == "nan":
        _write(path, {"p": torch.tensor([[float("nan"), 0.0]])}, meta)
    elif case == "half":
        _write(path, {"p": good.half()}, meta)
    elif case == "missing_factor":
        _write(path, {"p::A": good}, meta)
    elif case == "version":
        raw = json.loads(meta["weightsteer"]) | {"format_version": 99}
        _write(path, {"p": good}, {"weightsteer": json.dumps(raw)})
    elif case == "bad_meta":
        _write(path, {"p": good}, {"weightsteer": json.dumps({"format_version": 1})})
    with pytest.raises(UserError, match=match):
        WeightVector.load(path)


def test_vectors_of_different_bases_do_not_mix():
    a = random_vector(0)
    other = VectorMeta(base=FP.model_copy(update={"shapes_hash": "other"}))
    b = WeightVector(dict(a.deltas), other)
    with pytest.raises(UserError, match="different bases"):
        _ = a + b


def test_an_atomically_written_folder_gets_the_users_mode(tmp_path):
    import os

    from weightsteer.core.files import atomic_path

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "out", is_dir=True) as tmp:
            (tmp / "f").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755


def test_a_vector_with_a_nan_is_refused_at_save_and_nothing_is_written(tmp_path):
    vec = random_vector(0, dense_second=True)
    vec.deltas[NAMES[1]][0, 0] = float("nan")
    with pytest.raises(UserError, match="non-finite"):
        vec.save(tmp_path / "v.safetensors")
    assert not list(tmp_path.iterdir())
