"""Ranking fine-tunes by their cosine with dW: AUROC with a CI (``monitor --labels``), and
vectors made from two fine-tunes' weight changes (tau vectors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import FAMILIES, cli, write_jsonl
from weightsteer.adapters.extract import extract_vector
from weightsteer.core.errors import UserError
from weightsteer.core.models import load_model, load_tokenizer, merge_adapter
from weightsteer.monitor.ranking import auroc, auroc_interval, read_labels
from weightsteer.monitor.tau_vectors import tau_vectors


def test_auroc_is_1_when_the_labelled_all_score_higher_and_0_5_when_independent():
    assert auroc([0.9, 0.8, 0.7, 0.1, 0.2], [1, 1, 1, 0, 0]) == 1.0
    assert auroc([0.9, 0.8, 0.7, 0.1, 0.2], [0, 0, 0, 1, 1]) == 0.0
    assert auroc([1, 2, 3, 4], [1, 0, 0, 1]) == 0.5  # the labels say nothing of the order
    assert auroc([0.3] * 6, [1, 0, 1, 0, 1, 0]) == 0.5  # ties count half
    assert auroc([1, 2, 2, 3], [0, 1, 0, 1]) == 0.875  # one tied pair of four


def test_auroc_of_independent_labels_is_near_one_half_and_its_ci_covers_it():
    rng = np.random.default_rng(1)
    scores, labels = rng.normal(size=400), rng.integers(0, 2, 400)
    value = auroc(scores, labels)
    lo, hi = auroc_interval(scores, labels, draws=500)
    assert abs(value - 0.5) < 0.07 and lo < 0.5 < hi
    assert auroc_interval([3, 2, 1, 0], [1, 1, 0, 0], draws=200) == (1.0, 1.0)
    with pytest.raises(UserError, match="both labels"):
        auroc([1, 2], [1, 1])


def test_labels_read_one_and_zero_or_true_and_false(tmp_path):
    path = write_jsonl(tmp_path / "l.jsonl", [{"finetune": "a", "label": 1},
                                              {"finetune": "b", "label": "false"}])  # fmt: skip
    assert read_labels(path) == {"a": 1, "b": 0}
    bad = write_jsonl(tmp_path / "b.jsonl", [{"finetune": "a", "label": "maybe"}])
    with pytest.raises(UserError, match="not 1/0"):
        read_labels(bad)
    with pytest.raises(UserError, match="label"):
        read_labels(write_jsonl(tmp_path / "c.jsonl", [{"finetune": "a"}]))


def test_monitor_labels_prints_the_auroc_of_the_cosines_it_prints(
    tiny_dir, trained, tmp_path, capsys
):
    """Every family's POS adapter labelled, every NEG one a control: the AUROC line is
    the AUROC of the cosines on stdout, and the figure is written."""
    vec = extract_vector(load_model(tiny_dir, dtype="float32"), *trained["lora"])
    vec.save(tmp_path / "v.safetensors")
    rows = [{"finetune": str(trained[f][side]), "label": int(side == 0)}
            for f in FAMILIES for side in (0, 1)]  # fmt: skip
    labels = write_jsonl(tmp_path / "labels.jsonl", rows)
    out = tmp_path / "m.csv"
    code, stdout, err = cli(["monitor", "--vector", tmp_path / "v.safetensors", "--model",
                             tiny_dir, "--labels", labels, "--out", out], capsys)  # fmt: skip
    assert code == 0, err
    lines = stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == [r["finetune"] for r in rows]
    cos = [float(line.split()[2]) for line in lines]
    want = auroc(cos, [r["label"] for r in rows])
    assert f"AUROC (cos, labelled toward POS): {want:.3f}" in err.replace("\n", " ")
    assert (tmp_path / "m-auroc.png").stat().st_size > 0
    code, _, err = cli(["monitor", "--vector", tmp_path / "v.safetensors", "--model", tiny_dir,
                        "--labels", labels, "--toward", "neg"], capsys)  # fmt: skip
    assert code == 0 and f"toward NEG): {1 - want:.3f}" in err.replace("\n", " ")


def test_a_finetune_without_a_label_is_refused(tiny_dir, trained, tmp_path, capsys):
    vec = extract_vector(load_model(tiny_dir, dtype="float32"), *trained["lora"])
    vec.save(tmp_path / "v.safetensors")
    labels = write_jsonl(tmp_path / "l.jsonl", [{"finetune": str(trained["lora"][0]), "label": 1}])
    code, _, err = cli(["monitor", "--vector", tmp_path / "v.safetensors", "--model", tiny_dir,
                        "--labels", labels, "--finetuned", trained["lora"][1]], capsys)  # fmt: skip
    assert code == 2 and "no label for" in err


def test_a_tau_vector_of_two_merged_models_equals_the_adapters_vector(tiny_dir, trained, tmp_path):
    """theta_pos - theta_neg read from two full model folders (and from one folder and one
    adapter) is the LoRA vector of the two adapters, up to float rounding of the merge."""
    base = load_model(tiny_dir, dtype="float32")
    tok = load_tokenizer(tiny_dir)
    pos, neg = trained["lora"]
    folders = []
    for side, adapter in (("pos", pos), ("neg", neg)):
        merged = merge_adapter(load_model(tiny_dir, dtype="float32"), adapter)
        merged.save_pretrained(tmp_path / side)
        tok.save_pretrained(tmp_path / side)
        folders.append(tmp_path / side)
    exact = extract_vector(base, pos, neg)
    for a, b in ((folders[0], folders[1]), (pos, folders[1])):
        dw, common = tau_vectors(base, a, b)
        assert set(exact) <= set(dw)
        for name in dw:
            want = exact.dense(name) if name in exact else torch.zeros(dw.shape(name))
            assert torch.allclose(dw.dense(name), want, atol=1e-6), name
        assert common.norm() > 0


def test_extract_takes_model_folders(tiny_dir, trained, tmp_path, capsys):
    from weightsteer.core.vector import WeightVector

    tok = load_tokenizer(tiny_dir)
    merged = merge_adapter(load_model(tiny_dir, dtype="float32"), trained["lora"][0])
    merged.save_pretrained(tmp_path / "pos")
    tok.save_pretrained(tmp_path / "pos")
    out = tmp_path / "tau.safetensors"
    code, stdout, err = cli(["extract", "--model", tiny_dir, "--pos", tmp_path / "pos", "--neg",
                             trained["lora"][1], "--out", out, "--common-out",
                             tmp_path / "c.safetensors"], capsys)  # fmt: skip
    assert code == 0, err
    assert stdout.split() == [str(out)] and (tmp_path / "c.safetensors").is_file()
    vec = WeightVector.load(out)
    exact = extract_vector(load_model(tiny_dir, dtype="float32"), *trained["lora"])
    assert vec.meta.family == "tau" and abs(vec.norm() - exact.norm()) < 1e-4 * exact.norm()
