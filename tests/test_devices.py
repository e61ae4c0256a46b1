"""Where a model goes and in which dtype: the choice logic (CUDA faked where it is absent),
device_map on this CPU machine, and what steering refuses."""

from __future__ import annotations

import pytest
import torch

from helpers import cli, held_out_prompts
from weightsteer.core.errors import UserError
from weightsteer.core.models import input_device, load_model, resolve_device, resolve_dtype
from weightsteer.core.steer import Steerer


@pytest.fixture
def two_gpus(monkeypatch):
    """Pretend this machine has two CUDA devices with bfloat16 (no CUDA call is made)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


def test_default_dtype_is_float32_on_cpu_and_bfloat16_on_cuda(two_gpus):
    assert resolve_dtype("default", "cpu") is torch.float32
    assert resolve_dtype("default", "mps") is torch.float32
    assert resolve_dtype("default", "cuda:1") is torch.bfloat16
    assert resolve_dtype("float32", "cuda") is torch.float32  # what the user says stays
    assert resolve_dtype("auto", "cuda") == "auto"  # the checkpoint's


def test_default_dtype_without_bfloat16_is_float32(two_gpus, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_dtype("default", "cuda") is torch.float32


def test_auto_device_is_cuda_when_present_and_each_process_gets_its_own(two_gpus, monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert resolve_device("auto") == "cuda" and resolve_device("cpu") == "cpu"
    monkeypatch.setenv("LOCAL_RANK", "1")  # accelerate launch / torchrun, second process
    assert resolve_device("auto") == "cuda:1" and resolve_device("cuda") == "cuda:1"
    assert resolve_device("cuda:0") == "cuda:0"  # named explicitly: kept
    with pytest.raises(UserError, match="2 CUDA device"):
        resolve_device("cuda:2")


def test_auto_is_cpu_here_and_cuda_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(UserError, match="no CUDA device; use auto or cpu"):
        resolve_device("cuda")


def logp(model, tok, prompts):
    """Next-token log-probs after each prompt, through the scorer's own batching."""
    from weightsteer.core.scoring import last_logprobs

    enc = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    return torch.cat([lp for _, lp in last_logprobs(model, tok, enc, 8, 1)])


def dispatched(tiny_dir, how):
    """The tiny model placed by a transformers device_map strategy (here: all on the CPU),
    or dispatched layer by layer with accelerate's hooks, as a map over GPUs does."""
    if how != "hooks":
        return load_model(tiny_dir, dtype="float32", device_map=how)
    from accelerate import dispatch_model

    model = load_model(tiny_dir, dtype="float32")
    names = ["model.embed_tokens", "model.norm", "model.rotary_emb", "lm_head"]
    names += [f"model.layers.{i}" for i in range(model.config.num_hidden_layers)]
    dispatch_model(model, device_map=dict.fromkeys(names, "cpu"), force_hooks=True)
    assert model.hf_device_map and hasattr(model.model.layers[0], "_hf_hook")
    return model


@pytest.mark.parametrize("how", ["auto", "sequential", "hooks"])
def test_a_device_mapped_model_scores_and_steers_like_one_loaded_whole(tiny_dir, trained, how):
    from weightsteer.adapters.extract import extract_vector
    from weightsteer.core.models import load_tokenizer

    tok = load_tokenizer(tiny_dir)
    whole = load_model(tiny_dir, dtype="float32")
    spread = dispatched(tiny_dir, how)
    assert input_device(spread).type == "cpu"
    vec = extract_vector(whole, *trained["lora"])
    prompts = held_out_prompts(tok)[:4]
    before = logp(spread, tok, prompts)
    assert torch.equal(before, logp(whole, tok, prompts))
    originals = {n: p.detach().clone() for n, p in spread.named_parameters()}
    with Steerer(spread, vec) as s, Steerer(whole, vec) as w:
        s.set_alpha(2.0)
        w.set_alpha(2.0)
        steered = logp(spread, tok, prompts)
        assert torch.equal(steered, logp(whole, tok, prompts))
        assert not torch.equal(steered, before)
    assert all(torch.equal(p, originals[n]) for n, p in spread.named_parameters())


def test_weights_offloaded_by_a_device_map_are_not_steered(tiny_dir, trained):
    from weightsteer.adapters.extract import extract_vector

    model = load_model(tiny_dir, dtype="float32")
    vec = extract_vector(model, *trained["lora"])
    name = next(iter(vec))
    module = model.get_submodule(name.rsplit(".", 1)[0])
    module.weight = torch.nn.Parameter(torch.empty_like(module.weight, device="meta"))
    with pytest.raises(UserError, match="offloaded by the device_map"):
        Steerer(model, vec)


def test_an_unknown_device_map_is_one_line(tiny_dir, capsys, tmp_path):
    code, _, err = cli(
        ["eval", "--model", tiny_dir, "--device-map", "nowhere", "--out", tmp_path / "r.parquet"],
        capsys,
    )
    assert code == 2 and "device_map" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.parquet").exists()
