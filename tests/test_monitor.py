"""Monitoring: cos(theta_X - theta_base, dW) for adapter and model folders, while training,
and the toyworld acceptance (dishonest < neutral < honest)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from helpers import chats, cli, spec_for, train_questions
from weightsteer.adapters.extract import adapter_deltas, extract_common, extract_vector
from weightsteer.adapters.train import RightPadCollator, tokenize_chats, train_adapter
from weightsteer.core.errors import UserError
from weightsteer.core.models import load_model
from weightsteer.core.steer import Steerer
from weightsteer.core.vector import WeightVector
from weightsteer.monitor import (
    Agreement,
    MonitorCallback,
    common_path,
    monitor_finetune,
)
from weightsteer.toy.tiny import build_tiny_model


@pytest.fixture(scope="module")
def lora_vec(tiny_dir, trained):
    """The LoRA vector of the tiny fixtures and its common mode."""
    model = load_model(tiny_dir, dtype="float32")
    vec = extract_vector(model, *trained["lora"])
    return vec, extract_common(model, *trained["lora"], vec)


def save_shifted(model, tok, shift: WeightVector, path):
    """Save theta_base + shift as a model folder (a 'full fine-tune' with a known tau)."""
    with Steerer(model, shift, allow_finetune=True) as s:
        s.set_alpha(1.0)
        model.save_pretrained(path)
        tok.save_pretrained(path)
    return path


def test_common_mode_is_the_sum_of_both_sides(tiny, trained, lora_vec):
    model, _ = tiny
    vec, common = lora_vec
    neg = WeightVector(adapter_deltas(model, trained["lora"][1]), vec.meta)
    for name in vec:  # (pos + neg) - (pos - neg) = 2 neg
        diff = common.dense(name) - vec.dense(name)
        assert torch.allclose(diff, 2 * neg.dense(name), atol=1e-6), name
    assert set(common) == set(vec) and all(common.rank(n) is not None for n in common)


@pytest.mark.parametrize(("a", "b"), [(0.7, 0.4), (-0.5, 2.0)])
def test_a_change_along_dw_plus_common_mode(tiny, lora_vec, tmp_path, a, b):
    """tau = a dW + b c: coef and cosine from the closed form, contrast exactly sign(a)."""
    model, tok = tiny
    vec, common = lora_vec
    folder = save_shifted(model, tok, a * vec + b * common, tmp_path / "ft")
    res = monitor_finetune(model, vec, folder, common=common)
    tau = a * vec + b * common
    assert res.kind == "model" and res.touched == len(vec)
    assert res.overall.cosine == pytest.approx(tau.dot(vec) / (tau.norm() * vec.norm()), abs=1e-5)
    assert res.overall.coef == pytest.approx(tau.dot(vec) / vec.dot(vec), rel=1e-4)
    assert res.overall.contrast == pytest.approx(math.copysign(1.0, a), abs=1e-4)
    assert abs(res.overall.cosine) < 0.999  # the common mode bends the plain cosine


@pytest.mark.parametrize("family", ["lora", "dora"])
def test_adapter_folder_equals_its_merged_model(tiny_dir, trained, lora_vec, tmp_path, family):
    """The adapter route (factors / per-module merges) gives what the merged model gives."""
    from peft import PeftModel

    vec, common = lora_vec
    pos = trained[family][0]
    merged = PeftModel.from_pretrained(load_model(tiny_dir, dtype="float32"), str(pos))
    merged.merge_and_unload().save_pretrained(tmp_path / "merged")
    base = load_model(tiny_dir, dtype="float32")
    via_adapter = monitor_finetune(base, vec, pos, common=common)
    via_model = monitor_finetune(base, vec, tmp_path / "merged", common=common)
    assert via_adapter.kind == "adapter" and via_model.kind == "model"
    for name, a in via_adapter.tensors.items():
        b = via_model.tensors[name]
        assert a.dot == pytest.approx(b.dot, rel=1e-4, abs=1e-9), name
        assert a.tau_sq == pytest.approx(b.tau_sq, rel=1e-4, abs=1e-12), name
        assert a.tau_c == pytest.approx(b.tau_c, rel=1e-4, abs=1e-9), name
    assert via_adapter.overall.contrast == pytest.approx(via_model.overall.contrast, abs=1e-5)


def test_groups_add_up_and_the_table_has_every_scope(tiny, lora_vec, tmp_path):
    model, tok = tiny
    vec, _ = lora_vec
    res = monitor_finetune(model, vec, save_shifted(model, tok, 0.3 * vec, tmp_path / "ft"))
    for key in ("layer", "module"):
        groups = res.by(key)
        assert sum(a.dot for a in groups.values()) == pytest.approx(res.overall.dot)
        assert sum(a.tensors for a in groups.values()) == len(vec)
        assert all(a.cosine == pytest.approx(1.0, abs=1e-4) for a in groups.values())
    scopes = pd.DataFrame(res.rows()).groupby("scope").size()
    assert scopes["all"] == 1 and scopes["tensor"] == len(vec)
    assert Agreement.total([]).tensors == 0 and math.isnan(Agreement.total([]).cosine)


def test_every_checkpoint_layout_reads_the_same(tiny, lora_vec, tmp_path):
    """One safetensors file, shards with an index, a legacy pytorch_model.bin (loaded
    whole, and only when the user says it is trusted); a checkpoint lacking one of the
    vector's tensors is refused."""
    from safetensors.torch import load_file, save_file

    model, tok = tiny
    vec, _ = lora_vec
    shift = -0.2 * vec
    one = save_shifted(model, tok, shift, tmp_path / "one")
    with Steerer(model, shift, allow_finetune=True) as s:
        s.set_alpha(1.0)
        model.save_pretrained(tmp_path / "sharded", max_shard_size="50KB")
        legacy = tmp_path / "legacy"
        legacy.mkdir()
        torch.save(model.state_dict(), legacy / "pytorch_model.bin")
        model.config.save_pretrained(legacy)
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    expected = monitor_finetune(model, vec, one).overall
    assert monitor_finetune(model, vec, tmp_path / "sharded").overall == expected
    with pytest.raises(UserError, match="no safetensors weights"):  # pickle: trusted only
        monitor_finetune(model, vec, legacy)
    trusted = monitor_finetune(model, vec, legacy, allow_pickle=True)
    assert trusted.overall.dot == pytest.approx(expected.dot)
    tensors = load_file(one / "model.safetensors")
    del tensors[next(iter(vec))]
    save_file(tensors, one / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(UserError, match="has no tensor"):
        monitor_finetune(model, vec, one)


def test_cli_prints_one_line_per_finetune_and_writes_table_and_figure(
    tiny_dir, tiny, trained, lora_vec, tmp_path, capsys
):
    model, tok = tiny
    vec, common = lora_vec
    vec.save(tmp_path / "v.safetensors")
    common.save(common_path(tmp_path / "v.safetensors"))  # found next to the vector
    same = save_shifted(model, tok, 0 * vec, tmp_path / "unchanged")
    pos = trained["lora"][0]
    out = tmp_path / "mon" / "table.csv"
    code, stdout, err = cli(
        [
            "monitor",
            "--vector",
            tmp_path / "v.safetensors",
            "--model",
            tiny_dir,
            "--finetuned",
            pos,
            same,
            "--out",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    lines = stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == [str(pos), str(same)]
    expected = monitor_finetune(model, vec, pos, common=common).overall
    assert lines[0].split()[1:5] == [
        "cos",
        f"{expected.cosine:+.4f}",
        "contrast",
        f"{expected.contrast:+.4f}",
    ]
    assert "cos nan" in lines[1] and "changes none of the vector" in err
    table = pd.read_csv(out)
    overall = table[(table.scope == "all") & (table.finetuned == str(pos))].iloc[0]
    assert overall.cosine == pytest.approx(expected.cosine)
    assert set(table.scope) == {"all", "layer", "module", "tensor"}
    assert out.with_suffix(".png").stat().st_size > 0


def test_cli_bad_inputs_exit_2_with_one_line(tiny_dir, tiny, lora_vec, toy_dir, tmp_path, capsys):
    model, tok = tiny
    vec, _ = lora_vec
    vpath = vec.save(tmp_path / "v.safetensors")
    other_shapes = build_tiny_model(tmp_path / "wide", intermediate=96)
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    wrong_common = tmp_path / "c.safetensors"
    vec.restrict(layers=[1]).save(wrong_common)
    ok = save_shifted(model, tok, 0.1 * vec, tmp_path / "ok")
    base = ["monitor", "--vector", vpath, "--model", tiny_dir, "--finetuned"]
    cases = {
        "has shape": [*base, other_shapes],
        "neither a PEFT adapter": [*base, not_a_model],
        "does not exist": [*base, tmp_path / "missing"],
        "use a .csv": [*base, ok, "--out", tmp_path / "t.txt"],
        "other parameters": [*base, ok, "--common", wrong_common],
        "in the vector (made for": [
            "monitor",
            "--vector",
            vpath,
            "--model",
            toy_dir,
            "--finetuned",
            ok,
        ],
    }
    for message, argv in cases.items():
        code, _, err = cli(argv, capsys)
        assert code == 2, (message, err)
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "t.txt").exists() and not (tmp_path / "t.png").exists()
    (tmp_path / "t.csv").write_text("mine")
    code, _, err = cli([*base, ok, "--out", tmp_path / "t.csv"], capsys)
    assert code == 2 and "already exists" in err and (tmp_path / "t.csv").read_text() == "mine"


def test_callback_during_full_finetuning_matches_the_saved_model(tiny_dir, lora_vec, tmp_path):
    from transformers import Trainer, TrainingArguments

    vec, common = lora_vec
    model = load_model(tiny_dir, dtype="float32")
    from weightsteer.core.models import load_tokenizer

    tok = load_tokenizer(tiny_dir)
    cb = MonitorCallback({"yes": vec}, common={"yes": common})
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        max_steps=6,
        logging_steps=3,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        remove_unused_columns=False,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=tokenize_chats(tok, chats(train_questions(), "Yes."), 64),
        data_collator=RightPadCollator(tok.pad_token_id),
    )
    cb.attach(trainer)
    assert trainer.callback_handler.callbacks[0] is cb
    trainer.train()
    model.save_pretrained(tmp_path / "full")
    saved = monitor_finetune(
        load_model(tiny_dir, dtype="float32"), vec, tmp_path / "full", common=common
    )
    assert [h["step"] for h in cb.history] == [3, 6]
    assert cb.history[-1]["monitor/yes/cosine"] == pytest.approx(saved.overall.cosine, abs=1e-5)
    assert cb.history[-1]["monitor/yes/contrast"] == pytest.approx(saved.overall.contrast, abs=1e-5)
    logged = [h for h in trainer.state.log_history if "monitor/yes/cosine" in h]
    assert [h["step"] for h in logged][:2] == [3, 6]


@pytest.mark.parametrize("family", ["lora", "pissa"])
def test_callback_during_peft_training_matches_the_saved_adapter(
    tiny_dir, lora_vec, tmp_path, family
):
    """PiSSA starts from a non-zero adapter: the callback subtracts the start, as the
    converted adapter does."""
    from weightsteer.core.models import load_tokenizer

    vec, _ = lora_vec
    model, tok = load_model(tiny_dir, dtype="float32"), load_tokenizer(tiny_dir)
    cb = MonitorCallback([vec])
    out = train_adapter(
        model,
        tok,
        chats(train_questions(), "Yes."),
        spec_for(family, max_steps=10),
        tmp_path / "a",
        progress=False,
        callbacks=[cb],
    )
    saved = monitor_finetune(model, vec, out)
    (label,) = cb.vectors
    assert cb.history[-1]["step"] == 10
    assert cb.history[-1][f"monitor/{label}/cosine"] == pytest.approx(
        saved.overall.cosine, abs=1e-4
    )


# -- acceptance on toyworld -----------------------------------------------------------------


def test_monitor_ranks_toyworld_finetunes_dishonest_neutral_honest(toy_honesty, tmp_path, capsys):
    code, stdout, err = cli(["toy", "finetunes", "--out", tmp_path / "ft"], capsys)
    assert code == 0, err
    folders = stdout.strip().splitlines()
    assert [f.rsplit("/", 1)[-1] for f in folders] == ["dishonest", "honest", "neutral"]
    code, stdout, err = cli(
        ["monitor", "--vector", toy_honesty.path, "--model", "toyworld", "--finetuned", *folders],
        capsys,
    )
    assert code == 0, err
    cos, contrast = {}, {}
    for line in stdout.strip().splitlines():
        f = line.split()
        name = f[0].rsplit("/", 1)[-1]
        cos[name], contrast[name] = float(f[2]), float(f[4])
    print("cosine", cos, "contrast", contrast)
    assert contrast["dishonest"] < contrast["neutral"] < contrast["honest"]
    assert cos["dishonest"] == min(cos.values()) and cos["dishonest"] < -0.05


@pytest.mark.parametrize("peft", [False, True], ids=["full", "peft_config"])
def test_callback_under_trl_sft_trainer_matches_the_saved_model(tiny_dir, lora_vec, tmp_path, peft):
    """How most users fine-tune: TRL's SFTTrainer on conversational data, full or with a
    ``peft_config``. The callback's last reading equals ``monitor`` on what was saved."""
    trl = pytest.importorskip("trl")
    from datasets import Dataset
    from peft import LoraConfig

    from weightsteer.core.models import load_tokenizer

    vec, common = lora_vec
    model, tok = load_model(tiny_dir, dtype="float32"), load_tokenizer(tiny_dir)
    cb = MonitorCallback({"yes": vec}, common={"yes": common})
    args = trl.SFTConfig(
        output_dir=str(tmp_path / "sft"),
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        max_steps=4,
        logging_steps=2,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        max_length=64,
    )
    names = sorted({n.split(".")[-2] for n in vec})  # the module kinds the vector covers
    trainer = trl.SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(chats(train_questions(), "Yes.")),
        processing_class=tok,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=names) if peft else None,
        callbacks=[cb],
    )
    trainer.train()
    trainer.model.save_pretrained(tmp_path / "out")
    saved = monitor_finetune(
        load_model(tiny_dir, dtype="float32"), vec, tmp_path / "out", common=common
    )
    assert [h["step"] for h in cb.history] == [2, 4]
    assert cb.history[-1]["monitor/yes/cosine"] == pytest.approx(saved.overall.cosine, abs=1e-4)
    assert saved.touched > 0


def test_callback_refuses_sharded_parameters_with_what_to_do(tiny_dir, lora_vec):
    """ZeRO-3 leaves each rank an empty placeholder per parameter: refused in one line."""
    import torch

    vec, _ = lora_vec
    model = load_model(tiny_dir, dtype="float32")
    name = next(iter(vec))
    param = dict(model.named_parameters())[name]
    param.data = torch.empty(0)  # what a ZeRO-3 rank holds between gathers
    cb = MonitorCallback([vec])
    with pytest.raises(UserError, match=r"sharded \(FSDP or DeepSpeed ZeRO-3\)"):
        cb.on_train_begin(None, None, None, model=model)
