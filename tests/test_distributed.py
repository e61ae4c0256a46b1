"""Several processes under ``accelerate launch`` (gloo on this CPU machine): the adapter
equals one process's with the same global batch, every file is written once, persona data
is split by chunks and comes out byte-identical.

accelerate's ``--cpu`` launches one process (its multi-CPU path goes through mpirun), so the
job is launched the way a multi-GPU one is (``--multi_gpu``: torchrun workers); on a machine
without CUDA each worker joins a gloo group, as ``Trainer`` does with ``use_cpu``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from helpers import chats, train_questions, write_jsonl
from weightsteer.core import dist
from weightsteer.core.errors import UserError


def launch(args, cwd, processes=2):
    """``accelerate launch`` of the weightsteer CLI: (exit code, stdout, stderr)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    cmd += ["--num_processes", str(processes), "--num_machines", "1"]
    cmd += ["--mixed_precision", "no", "--dynamo_backend", "no", "-m", "weightsteer.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on two cores
    env.pop("RANK", None)
    p = subprocess.run(
        cmd + [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    return p.returncode, p.stdout, p.stderr


def single(args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(
        [sys.executable, "-m", "weightsteer.cli", *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    return p.returncode, p.stdout, p.stderr


def assert_close(dir_a, dir_b, atol=1e-5):
    a = load_file(str(dir_a / "adapter_model.safetensors"))
    b = load_file(str(dir_b / "adapter_model.safetensors"))
    assert set(a) == set(b)
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    moved = max(a[k].abs().max().item() for k in a)
    assert worst < atol < moved, (worst, moved)


def no_leftovers(root):
    return [p for p in root.rglob(".*") if p.name.endswith((".tmp", ".old"))]


def test_train_on_two_processes_equals_one_with_the_same_global_batch(tiny_dir, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", chats(train_questions()[:16], "Yes."))
    init = tmp_path / "init.safetensors"
    common = ["--model", tiny_dir, "--data", data, "--family", "lora", "--rank", "4",
              "--max-steps", "4", "--lr", "5e-3", "--init", init]  # fmt: skip
    code, out, err = single(["train", *common, "--batch-size", "4", "--out", "one"], tmp_path)
    assert code == 0, err
    code, out, err = launch(["train", *common, "--batch-size", "2", "--out", "two"], tmp_path)
    assert code == 0, err[-3000:]
    assert out.split() == ["two"]  # the path, once: `$(accelerate launch ... train)` works
    assert err.count("saved lora adapter") == 1
    assert_close(tmp_path / "one", tmp_path / "two")
    info = json.loads((tmp_path / "two" / "weightsteer_adapter.json").read_text())
    assert info["train"]["steps"] == 4
    assert not no_leftovers(tmp_path)


RUN = """
name = "dp"
[model]
id = "toyworld"
[questions]
n_train = 12
n_eval = 16
[data]
paraphrases = 2
max_new_tokens = 24
chunk_size = 8
[train]
families = ["lora"]
seeds = [0]
rank = 4
alpha = 8
lr = 2e-3
epochs = 2
batch_size = {batch}
layers = [0.25, 1.0]
[eval]
suites = ["claims"]
rows_per_suite = 8
alphas = [0, 1]
[compare]
methods = []
"""


@pytest.mark.usefixtures("toy_dir")  # built (and cached) before the processes start
def test_a_run_on_two_processes_writes_the_pairs_and_adapters_one_process_writes(tmp_path):
    (tmp_path / "one.toml").write_text(RUN.format(batch=4))
    (tmp_path / "two.toml").write_text(RUN.format(batch=2))  # 2 processes x 2 = 4
    code, _, err = single(["run", "-c", "one.toml", "--name", "one"], tmp_path)
    assert code == 0, err[-3000:]
    code, out, err = launch(["run", "-c", "two.toml", "--name", "two"], tmp_path)
    assert code == 0, err[-3000:]
    one, two = tmp_path / "runs" / "one", tmp_path / "runs" / "two"
    assert out.split() == [str(two.relative_to(tmp_path) / "report.md")]
    # 24 prompts in chunks of 8: rank 0 made chunks 0 and 2, rank 1 chunk 1
    for side in ("pos", "neg"):
        a = (one / "data" / f"{side}.jsonl").read_bytes()
        assert a == (two / "data" / f"{side}.jsonl").read_bytes() and a
    for side in ("pos", "neg"):
        rel = f"adapters/lora/seed0/{side}"
        assert_close(one / rel, two / rel)
    manifest = json.loads((two / "manifest.json").read_text())
    assert {u["state"] for u in manifest["units"].values()} == {"done"}
    assert set(manifest["stages"]) == {"data", "train", "extract", "eval", "compare", "report"}
    assert (two / "report.md").is_file() and not no_leftovers(two)


def test_device_map_and_several_processes_are_refused_together(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="device_map"):
        dist.check_device_map("auto")
    dist.check_device_map("none")


def test_one_process_needs_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert dist.is_main() and dist.world_size() == 1
    assert dist.broadcast("x") == "x"
    assert list(dist.shard(5)) == [0, 1, 2, 3, 4]
    dist.barrier()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert list(dist.shard(8)) == [1, 4, 7] and not dist.is_main()


@pytest.mark.parametrize(
    "env", [{"ACCELERATE_USE_FSDP": "true"}, {"ACCELERATE_USE_DEEPSPEED": "true",
                                             "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}]
)  # fmt: skip
def test_sharding_configs_are_refused_before_training(tiny, tmp_path, monkeypatch, env):
    from helpers import spec_for
    from weightsteer.adapters.train import train_adapter

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    model, tok = tiny
    with pytest.raises(UserError, match="shards parameters"):
        train_adapter(model, tok, chats(train_questions(), "Yes."), spec_for("lora"),
                      tmp_path / "a", progress=False)  # fmt: skip
    assert not (tmp_path / "a").exists()
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    dist.check_unsharded()  # ZeRO-1/2 shard optimiser state only


def test_only_the_sharing_verbs_run_on_every_rank():
    from weightsteer.cli.app import PARALLEL_VERBS, _verb

    assert _verb(["--threads", "2", "train", "--model", "m"]) == "train"
    assert _verb(["eval", "--out", "x"]) == "eval" and _verb([]) == ""
    assert {"run", "train", "data", "compare"} == PARALLEL_VERBS


def test_a_rank_other_than_0_leaves_a_single_process_verb_to_rank_0(tmp_path, capsys):
    env = {**os.environ, "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    p = subprocess.run(
        [sys.executable, "-m", "weightsteer.cli", "eval", "--model", "nowhere", "--out",
         str(tmp_path / "r.parquet")], env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0 and p.stdout == "" and not (tmp_path / "r.parquet").exists()
