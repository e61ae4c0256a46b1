"""Export: a PEFT LoRA adapter folder that steers like ``steer(model, V, alpha)``."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import held_out_prompts
from weightsteer.adapters.extract import extract_vector
from weightsteer.core.errors import UserError
from weightsteer.core.models import load_model
from weightsteer.core.steer import steer
from weightsteer.core.vector import WeightVector
from weightsteer.export.lora import export_lora, lora_factors


def logits(model, tok) -> torch.Tensor:
    ids = tok(held_out_prompts(tok)[:4], return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**ids).logits.float()


def peft_logits(tiny_dir, adapter_dir, tok) -> torch.Tensor:
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_model(tiny_dir, dtype="float32"), str(adapter_dir))
    return logits(model, tok)


@pytest.mark.parametrize(("family", "alpha"), [("lora", 1.0), ("pissa", -0.7)])
def test_an_exact_family_exports_to_the_same_logits(
    tiny_dir, tiny, trained, tmp_path, family, alpha
):
    model, tok = tiny
    vec = extract_vector(model, *trained[family])
    report = export_lora(vec, tmp_path / "a", alpha=alpha)
    assert report.rel_error == 0 and all(t.exact and t.rank == 8 for t in report.tensors)
    with steer(model, vec, alpha):
        want = logits(model, tok)
    got = peft_logits(tiny_dir, tmp_path / "a", tok)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(want, logits(model, tok), atol=1e-3)  # it does steer


def test_a_dense_family_exports_at_a_chosen_rank_with_its_exact_error(
    tiny_dir, tiny, trained, tmp_path
):
    model, tok = tiny
    vec = extract_vector(model, *trained["dora"])
    full = max(min(vec.shape(n)) for n in vec)
    # at full rank the SVD is the tensor: the same logits as steering
    report = export_lora(vec, tmp_path / "full", rank=full)
    assert report.rel_error < 1e-6
    with steer(model, vec, 1.0):
        want = logits(model, tok)
    torch.testing.assert_close(
        peft_logits(tiny_dir, tmp_path / "full", tok), want, atol=1e-4, rtol=1e-4
    )
    # at rank 2 the error is what truncating each tensor's SVD drops
    factors, report = lora_factors(vec, rank=2)
    dropped = total = 0.0
    for t in report.tensors:
        d = vec.dense(t.name).double()
        s = torch.linalg.svdvals(d)
        b, a = factors[t.name]
        rel = float((d - b.double() @ a.double()).norm() / d.norm())
        assert t.rank == 2 and t.rel_error == pytest.approx(rel, rel=1e-4, abs=1e-7)
        dropped, total = dropped + float((s[2:] ** 2).sum()), total + float((s**2).sum())
    assert report.rel_error == pytest.approx((dropped / total) ** 0.5, rel=1e-6)
    # a target error picks the smallest rank reaching it, per tensor
    _, target = lora_factors(vec, max_error=0.05)
    assert all(t.rel_error <= 0.05 for t in target.tensors)
    for t in target.tensors:
        if t.rank > 1:
            one = WeightVector({t.name: vec.deltas[t.name]}, vec.meta)
            assert lora_factors(one, rank=t.rank - 1)[1].rel_error > 0.05


def test_export_writes_a_standard_peft_folder(trained, tiny, tmp_path):
    vec = extract_vector(tiny[0], *trained["lora"])
    export_lora(vec, tmp_path / "a", alpha=0.5)
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "weightsteer_export.json"} <= names
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == config["lora_alpha"] == 8  # scaling 1
    assert not config.get("rank_pattern") and not config.get("alpha_pattern")
    with pytest.raises(UserError, match="already exists"):
        export_lora(vec, tmp_path / "a")


def test_bad_export_requests_are_refused(trained, tiny):
    vec = extract_vector(tiny[0], *trained["oft"])
    with pytest.raises(UserError, match="--rank K or --max-error"):
        lora_factors(vec)
    for kw, match in [
        ({"alpha": 0.0, "rank": 2}, "non-zero"),
        ({"rank": 2, "max_error": 0.1}, "not both"),
        ({"rank": 0}, ">= 1"),
        ({"max_error": 1.5}, r"\[0, 1\)"),
    ]:
        with pytest.raises(UserError, match=match):
            lora_factors(vec, **kw)


def test_serving_hints_name_the_vllm_rank_bucket_the_adapter_needs(tmp_path):
    from weightsteer.export.lora import serving_hints

    hints = serving_hints(tmp_path / "a", 12, "Qwen/Qwen3-0.6B", "honesty")
    assert "--max-lora-rank 16" in hints[0] and f"honesty={tmp_path / 'a'}" in hints[0]
    assert 'LoRARequest("honesty", 1,' in hints[1] and "max_lora_rank=16" in hints[1]
    assert "--max-lora-rank 8" in serving_hints(tmp_path, 8, "m")[0]  # a bucket is inclusive
    assert "above vLLM's largest" in serving_hints(tmp_path, 600, "m")[0]
