"""The CLI verbs end to end on the tiny model: outputs, exit codes, nothing half written."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import chats, cli, train_questions, write_jsonl
from weightsteer.cli import main
from weightsteer.core.models import fingerprint, load_model
from weightsteer.core.vector import VectorMeta, WeightVector


@pytest.fixture(scope="module")
def cli_vector(tiny_dir, tmp_path_factory):
    """Adapters and a vector made through the CLI verbs."""
    root = tmp_path_factory.mktemp("cli")
    pos = write_jsonl(root / "pos.jsonl", chats(train_questions(), "Yes."))
    neg = write_jsonl(root / "neg.jsonl", chats(train_questions(), "No."))
    common = ["--rank", 4, "--lora-alpha", 8, "--lr", 5e-3, "--max-steps", 20]
    for side, data in (("pos", pos), ("neg", neg)):
        with pytest.raises(SystemExit) as e:
            main(
                ["train", "--model", str(tiny_dir), "--data", str(data), "--out", str(root / side)]
                + [str(c) for c in common]
            )
        assert e.value.code == 0
    with pytest.raises(SystemExit) as e:
        main(
            [
                "extract",
                "--model",
                str(tiny_dir),
                "--pos",
                str(root / "pos"),
                "--neg",
                str(root / "neg"),
                "--out",
                str(root / "v.safetensors"),
                "--behavior",
                "yes-bias",
            ]
        )
    assert e.value.code == 0
    return root


def test_extract_writes_a_self_describing_vector(cli_vector, tiny_dir):
    vec = WeightVector.load(cli_vector / "v.safetensors")
    assert vec.meta.family == "lora" and vec.meta.behavior == "yes-bias"
    assert vec.meta.adapter["rank"] == 4 and vec.meta.seed == 0
    assert vec.meta.data["pos"]["rows"] == len(train_questions())
    assert vec.meta.base.model_id == str(tiny_dir)


def test_extract_of_one_adapter_against_itself_warns_of_a_zero_vector(
    cli_vector, tiny_dir, tmp_path, capsys
):
    same = ["--pos", cli_vector / "pos", "--neg", cli_vector / "pos"]
    args = ["extract", "--model", tiny_dir, *same, "--out", tmp_path / "z.safetensors"]
    code, _, err = cli(args, capsys)
    assert code == 0 and WeightVector.load(tmp_path / "z.safetensors").norm() == 0
    assert "warning: the vector is exactly zero" in " ".join(err.split())
    both = ["--pos", cli_vector / "pos", "--neg", cli_vector / "neg"]
    out = ["--out", tmp_path / "v.safetensors"]
    code, _, err = cli(["extract", "--model", tiny_dir, *both, *out], capsys)
    assert code == 0 and "exactly zero" not in err


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_extract_works_in_every_listed_dtype(cli_vector, tiny_dir, tmp_path, capsys, dtype):
    """float16 rounds the base's weights otherwise than the float32 the adapters were
    trained on: still the same base (it once said "trained on other weights")."""
    both = ["--pos", cli_vector / "pos", "--neg", cli_vector / "neg"]
    out = tmp_path / f"{dtype}.safetensors"
    code, _, err = cli(["extract", "--model", tiny_dir, *both, "--dtype", dtype, "--out", out],
                       capsys)  # fmt: skip
    assert code == 0, err
    assert WeightVector.load(out).norm() > 0


def test_eval_target_adapter_of_another_base_is_merged_with_a_warning(
    cli_vector, tiny_dir, tmp_path, capsys
):
    import shutil

    from weightsteer.core.models import load_model

    other = tmp_path / "other"  # the same shapes, other weights
    shutil.copytree(tiny_dir, other)
    m = load_model(other)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.01)
    m.save_pretrained(other)
    rows = ["--suite", "claims", "--rows", "builtin:claims-sample", "--alphas", "0"]
    args = ["eval", "--model", other, "--target", cli_vector / "pos", *rows,
            "--out", tmp_path / "r.parquet"]  # fmt: skip
    code, _, err = cli(args, capsys)
    assert code == 0, err
    assert "warning: the adapter in" in err and "whose weights differ" in " ".join(err.split())
    args[2] = tiny_dir
    args[-1] = tmp_path / "r2.parquet"
    code, _, err = cli(args, capsys)
    assert code == 0 and "whose weights differ" not in " ".join(err.split())


def test_info_prints_metadata_and_norms(cli_vector, capsys):
    code, out, _ = cli(["info", cli_vector / "v.safetensors"], capsys)
    assert code == 0
    assert "lora" in out and "rank 8-8" in out and "q_proj" in out
    code, out, _ = cli(["info", cli_vector / "v.safetensors", "--json"], capsys)
    data = json.loads(out)
    vec = WeightVector.load(cli_vector / "v.safetensors")
    assert data["norm"] == pytest.approx(vec.norm())
    assert len(data["tensors"]) == len(vec)


def test_steer_writes_a_loadable_steered_model(cli_vector, tiny_dir, tmp_path, capsys):
    out_dir = tmp_path / "steered"
    vector = cli_vector / "v.safetensors"
    argv = ["steer", "--model", tiny_dir, "--vector", vector, "--out", out_dir, "--alpha"]
    code, out, _ = cli([*argv, 0.5], capsys)
    assert code == 0 and out.strip().splitlines()[-1] == str(out_dir)
    base = dict(load_model(tiny_dir, dtype="float32").named_parameters())
    steered = dict(load_model(out_dir, dtype="float32").named_parameters())
    vec = WeightVector.load(vector)
    for name, p in steered.items():
        expect = base[name] + 0.5 * vec.dense(name) if name in vec else base[name]
        assert torch.equal(p, expect), name
    # A second run refuses to overwrite what the first one wrote.
    code, _, err = cli([*argv, 1], capsys)
    assert code == 2 and "already exists" in err


def test_export_lora_writes_an_adapter_that_loads_as_the_steered_model(
    cli_vector, tiny_dir, tmp_path, capsys
):
    from peft import PeftModel

    out_dir = tmp_path / "neg"
    vector = cli_vector / "v.safetensors"
    argv = ["export", "lora", "--vector", vector, "--out", out_dir, "--alpha=-0.5"]
    code, out, err = cli(argv, capsys)
    assert code == 0 and out.strip().splitlines()[-1] == str(out_dir) and "exact" in err
    merged = PeftModel.from_pretrained(load_model(tiny_dir), str(out_dir)).merge_and_unload()
    base = dict(load_model(tiny_dir).named_parameters())
    vec = WeightVector.load(vector)
    for name, p in merged.named_parameters():
        expect = base[name] - 0.5 * vec.dense(name) if name in vec else base[name]
        torch.testing.assert_close(p, expect, atol=1e-6, rtol=1e-5)
    code, _, err = cli(argv, capsys)
    assert code == 2 and "already exists" in err


def _one_line_error(code, err, match):
    assert code == 2
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and match in lines[0], err


@pytest.mark.parametrize(
    "argv, match",
    [
        (["info", "{tmp}/missing.safetensors"], "does not exist"),
        (["info", "{tmp}/corrupt.safetensors"], "not a readable safetensors"),
        (
            ["train", "--model", "{model}", "--data", "{tmp}/none.jsonl", "--out", "{tmp}/a"],
            "does not exist",
        ),
        (
            [
                "train",
                "--model",
                "{model}",
                "--data",
                "{tmp}/d.jsonl",
                "--out",
                "{tmp}/a",
                "--family",
                "loraa",
            ],
            "unknown adapter family",
        ),
        (
            ["train", "--model", "{tmp}/nomodel", "--data", "{tmp}/d.jsonl", "--out", "{tmp}/a"],
            "does not exist",
        ),
        (
            [
                "extract",
                "--model",
                "{model}",
                "--pos",
                "{tmp}",
                "--neg",
                "{tmp}",
                "--out",
                "{tmp}/v.safetensors",
            ],
            "neither a PEFT adapter folder",
        ),
        (
            [
                "steer",
                "--model",
                "{model}",
                "--vector",
                "{tmp}/other.safetensors",
                "--alpha",
                "1",
                "--out",
                "{tmp}/s",
            ],
            "does not have",
        ),
        (
            ["export", "lora", "--vector", "{tmp}/dense.safetensors", "--out", "{tmp}/a"],
            "give --rank K or --max-error E",
        ),
        (
            ["export", "lora", "--vector", "{tmp}/corrupt.safetensors", "--out", "{tmp}/a"],
            "corrupt.safetensors",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tiny_dir, tmp_path, capsys, argv, match
):
    (tmp_path / "corrupt.safetensors").write_bytes(b"garbage")
    write_jsonl(tmp_path / "d.jsonl", chats(train_questions()[:2], "Yes."))
    fp = fingerprint(load_model(tiny_dir))
    WeightVector({"transformer.h.0.attn.weight": torch.ones(2, 2)}, VectorMeta(base=fp)).save(
        tmp_path / "other.safetensors"
    )
    weight = dict(load_model(tiny_dir).named_parameters())["model.layers.0.mlp.up_proj.weight"]
    WeightVector(
        {"model.layers.0.mlp.up_proj.weight": torch.ones_like(weight)}, VectorMeta(base=fp)
    ).save(tmp_path / "dense.safetensors")
    before = sorted(p.name for p in tmp_path.iterdir())
    filled = [a.format(tmp=tmp_path, model=tiny_dir) for a in argv]
    code, _, err = cli(filled, capsys)
    _one_line_error(code, err, match)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_version_prints_the_package_version(capsys):
    from weightsteer import __version__

    code, out, _ = cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"weightsteer {__version__}"


def test_old_option_spellings_still_work_and_say_the_new_one(tiny_dir, tmp_path, capsys):
    """train --alpha (the LoRA scaling) is now --lora-alpha, eval --data (a suite's rows)
    is --rows: one meaning per option name across verbs; the old spellings warn."""
    from helpers import chats, cli, train_questions, write_jsonl

    data = write_jsonl(tmp_path / "d.jsonl", chats(train_questions()[:4], "Yes."))
    code, out, err = cli(
        [
            "train",
            "--model",
            tiny_dir,
            "--data",
            data,
            "--out",
            tmp_path / "a",
            "--rank",
            2,
            "--alpha",
            4,
            "--max-steps",
            1,
        ],
        capsys,
    )
    assert code == 0 and "say --lora-alpha" in err and out.strip() == str(tmp_path / "a")
    import json

    spec = json.loads((tmp_path / "a" / "weightsteer_adapter.json").read_text())["spec"]
    assert spec["alpha"] == 4.0
    code, _, err = cli(
        [
            "eval",
            "--model",
            tiny_dir,
            "--suite",
            "claims",
            "--data",
            "builtin:claims-sample",
            "--alphas=0",
            "--out",
            tmp_path / "r.parquet",
        ],
        capsys,
    )
    assert code == 0 and "say --rows" in err


def test_threads_and_the_wait_policy_a_run_starts_with(monkeypatch, capsys, tmp_path):
    from helpers import cli
    from weightsteer.core.threads import thread_settings

    assert thread_settings(None, {}, load=0.2, cpus=2) == {}  # alone: torch's defaults
    assert thread_settings(None, {}, load=1.5, cpus=2) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert thread_settings(None, {"OMP_WAIT_POLICY": "ACTIVE"}, load=9, cpus=2) == {}
    assert thread_settings(1, {}, load=0.0, cpus=16) == {"OMP_NUM_THREADS": "1"}
    # the load is what runs now, less this process: not the average a pip install left
    from weightsteer.core.threads import busy_elsewhere

    now = tmp_path / "loadavg"
    now.write_text("1.90 1.20 0.80 1/95 4242\n")  # a past average of 1.9, ourselves alone
    assert busy_elsewhere(source=now, gap=0) == 0.0
    now.write_text("0.10 0.10 0.10 3/95 4242\n")  # two other threads running
    assert busy_elsewhere(source=now, gap=0) == 2.0
    assert busy_elsewhere(source=tmp_path / "none", gap=0) >= 0.0  # no /proc: the average
    import torch

    # recorded, so the teardown puts back what was there (absent or not): later tests'
    # subprocesses must not inherit one thread
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    before = torch.get_num_threads()
    try:
        code, _, _ = cli(["--threads", 1, "config-help"], capsys)
        assert code == 0 and torch.get_num_threads() == 1
        assert __import__("os").environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)
    code, _, err = cli(["--threads", 0, "config-help"], capsys)
    assert code == 2 and "--threads" in err
