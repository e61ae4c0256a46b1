"""Bad input, table-driven: each case is a command, exit code 2, a phrase of its one-line
message, and a snapshot check that nothing under the case's folder was added or changed."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import chats, cli, train_questions, write_jsonl
from weightsteer.core.models import Fingerprint
from weightsteer.core.vector import VectorMeta, WeightVector

BASE = 'name = "r"\n[model]\nid = "toyworld"\n'


def snapshot(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def make_config(root, text: str):
    path = root / "c.toml"
    path.write_text(BASE + text)
    return path


def empty_vector(root):
    fp = Fingerprint(model_id="m", architecture="A", shapes_hash="s", weights_hash="w")
    return WeightVector({}, VectorMeta(base=fp)).save(root / "empty.safetensors")


def damaged_results(root):
    table = pa.table({"a": [1]}).replace_schema_metadata({b"weightsteer": b"{not json"})
    pq.write_table(table, root / "r.parquet")
    return root / "r.parquet"


def pickle_adapter(root):
    import torch

    folder = root / "pickled"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}')
    torch.save({}, folder / "adapter_model.bin")
    return folder


def pickle_model(root, tiny):
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = root / "legacy"
    shutil.copytree(tiny, folder)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    return folder


def run_with(text: str):
    return lambda root, tiny: [
        "run",
        "--config",
        make_config(root, text),
        "--runs-dir",
        root / "runs",
    ]


CASES = {
    "alpha NaN": (run_with("[eval]\nalphas = [-1, 0, nan]\n"), "finite"),
    "dtype int8": (run_with('dtype = "int8"\n'), "model.dtype"),
    "device not there": (run_with('device = "cuda:7"\n'), "cuda:7"),
    "device unknown": (run_with('device = "tpu"\n'), "model.device"),
    "layers reversed": (run_with("[train]\nlayers = [0.9, 0.1]\n"), "0 <= lo < hi <= 1"),
    "run name escapes": (
        lambda root, tiny: [
            "run",
            "--config",
            make_config(root, ""),
            "--name",
            "../escape",
            "--runs-dir",
            root / "runs",
        ],
        "plain folder name",
    ),
    "runs dir is a file": (
        lambda root, tiny: [
            "run",
            "--config",
            make_config(root, ""),
            "--runs-dir",
            root / "c.toml",
        ],
        "is a file",
    ),
    "train layers reversed": (
        lambda root, tiny: [
            "train",
            "--model",
            tiny,
            "--out",
            root / "a",
            "--layers",
            "0.9,0.1",
            "--data",
            write_jsonl(root / "d.jsonl", chats(train_questions(), "Yes.")),
        ],
        "0 <= lo < hi <= 1",
    ),
    "rank not a number": (lambda root, tiny: ["train", "--rank", "abc"], "--rank"),
    "unknown verb": (lambda root, tiny: ["steerr"], "No such command"),
    "unknown option": (lambda root, tiny: ["info", "--bogus"], "No such option"),
    "damaged results metadata": (lambda root, tiny: ["report", damaged_results(root)], "damaged"),
    "pickle adapter": (
        lambda root, tiny: [
            "extract",
            "--model",
            tiny,
            "--pos",
            pickle_adapter(root),
            "--neg",
            root / "pickled",
            "--out",
            root / "v.safetensors",
        ],
        "adapter_model.bin",
    ),
    "pickle model": (
        lambda root, tiny: [
            "eval",
            "--model",
            pickle_model(root, tiny),
            "--suite",
            "claims",
            "--data",
            "builtin:claims-sample",
            "--out",
            root / "r.parquet",
        ],
        "no safetensors weights",
    ),
    "data from a model folder that is not there": (
        lambda root, tiny: ["data", "--model", root / "no-such-model", "--out", root / "d"],
        "does not exist",
    ),
    "export an empty vector": (
        lambda root, tiny: ["export", "lora", "--vector", empty_vector(root), "--out", root / "x"],
        "nothing to export",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, tmp_path, tiny_dir, capsys):
    make, phrase = CASES[case]
    argv = make(tmp_path, tiny_dir)  # may write the case's own inputs
    before = snapshot(tmp_path)
    code, _, err = cli(argv, capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(errors) == 1 and phrase in errors[0], err
    assert "Traceback" not in err
    assert snapshot(tmp_path) == before
