"""Bad input, table-driven: each case is a command, exit code 2, a phrase of its one-line
message, and a snapshot check that nothing under the case's folder was added or changed."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import chats, cli, train_questions, write_jsonl
from weightsteer.core.models import Fingerprint
from weightsteer.core.vector import VectorMeta, WeightVector

BASE = 'name = "r"\n[model]\nid = "toyworld"\n'


def snapshot(root):
    """Every entry under ``root``, links not followed: a file's bytes, a link's target, a
    folder as such (a link replaced by a file, or written through, shows)."""
    out = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(top, name)
            rel = p.relative_to(root)
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("folder",)
            else:
                out[rel] = p.read_bytes()
    return out


def link(root, name: str, to: str | None = None, kind: str = "dangling"):
    """A symbolic link ``root/name`` of the user's: dangling, or to a file or a folder of
    theirs (inside ``root``, so the snapshot covers the target too)."""
    target = root / (to or f"{name}-target")
    if kind == "file":
        target.write_text("the user's file\n")
    elif kind == "folder":
        target.mkdir()
        (target / "keep.txt").write_text("the user's folder\n")
    (root / name).symlink_to(target)
    return root / name


def results_table(root, name="r.parquet", *, meta=None, **broken):
    """A results table of every column, with ``broken`` columns replaced (another tool's)."""
    import pandas as pd

    from weightsteer.evals.results import COLUMNS

    values = {"method": "weight", "family": "lora", "strength": 0.0, "seed": 0, "eval": "s",
              "row_id": "r0", "group": "", "label": 1, "status": "", "text": "",
              "variant": ""}  # fmt: skip
    df = pd.DataFrame({c: [values.get(c, 0.5)] * 2 for c in COLUMNS})
    for col, v in broken.items():
        df[col] = v
    table = pa.Table.from_pandas(df, preserve_index=False)
    if meta:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    pq.write_table(table, root / name)
    return root / name


def fake_run(root, config: dict, name="r", manifest: bytes | None = None):
    """A run folder with a manifest of ``config`` (as a run of another setup left it)."""
    import json

    folder = root / "runs" / name
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "pos.jsonl").write_text('{"mine": 1}\n')
    body = {"weightsteer_run": 1, "units": {}, "stages": {}, "counts": {}, "config": config}
    (folder / "manifest.json").write_bytes(manifest or json.dumps(body).encode())
    return folder


def steer_to(out, *extra):
    """``steer`` of an empty vector onto the tiny model into ``out`` (``extra``: more flags):
    each row changes one thing of it."""
    return lambda root, tiny: ["steer", "--model", tiny, "--vector", empty_vector(root),
                               "--alpha", "1", *extra, "--out", out(root)]  # fmt: skip


def eval_claims_to(out, *extra):
    """``eval`` of the shipped claims sample on the tiny model into ``out``."""
    return lambda root, tiny: ["eval", "--model", tiny, "--suite", "claims", "--rows",
                               "builtin:claims-sample", *extra, "--out", out(root)]  # fmt: skip


def extract_to(out, *extra):
    """``extract`` of two adapter folders that are not there, into ``out``."""
    return lambda root, tiny: ["extract", "--model", tiny, "--pos", root / "p", "--neg",
                               root / "n", *extra, "--out", out(root)]  # fmt: skip


def other_shapes(root):
    """A local model folder whose config gives other shapes (no weights needed)."""
    return rwkv_folder(root)


def make_config(root, text: str):
    path = root / "c.toml"
    path.write_text(BASE + text)
    return path


def empty_vector(root):
    fp = Fingerprint(model_id="m", architecture="A", shapes_hash="s", weights_hash="w")
    return WeightVector({}, VectorMeta(base=fp)).save(root / "empty.safetensors")


def monitor_one_class(root, tiny):
    """``monitor --labels`` of a table whose every fine-tune is labelled 1 (no AUROC)."""
    labels = root / "labels.csv"
    labels.write_text(f"finetune,label\n{tiny},1\n")
    vector = empty_vector(root)
    return ["monitor", "--vector", vector, "--model", tiny, "--labels", labels,
            "--out", root / "m.csv"]  # fmt: skip


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


def nan_vector(root):
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.tensor([float("nan")])}, str(root / "nan.safetensors"))
    return root / "nan.safetensors"


def junk(root, name: str, data: bytes = b"\x00not a real file\xff" * 20):
    (root / name).write_bytes(data)
    return root / name


def plain_table(root):
    """A parquet with no weightsteer metadata and none of the results columns."""
    pq.write_table(pa.table({"a": [1]}), root / "t.parquet")
    return root / "t.parquet"


def user_file(root, name: str):
    (root / name).write_text("mine, not weightsteer's\n")
    return root / name


def chat_data(root, name="d.jsonl", answer="Yes."):
    return write_jsonl(root / name, chats(train_questions(), answer))


def adapter_lacking_keys(root, tiny):
    """A real adapter folder whose weightsteer_adapter.json lost its keys."""
    import json

    from weightsteer.adapters import AdapterSpec
    from weightsteer.adapters.train import ADAPTER_INFO, train_adapter
    from weightsteer.core.models import load_model, load_tokenizer

    spec = AdapterSpec(family="lora", rank=2, alpha=4, max_steps=1, batch_size=4, lr=1e-3)
    out = root / "lacking"
    train_adapter(
        load_model(tiny),
        load_tokenizer(tiny),
        chats(train_questions(), "Yes."),
        spec,
        out,
        progress=False,
    )
    (out / ADAPTER_INFO).write_text(json.dumps({"note": "no keys"}))
    return out


def run_with(text: str):
    return lambda root, tiny: [
        "run",
        "--config",
        make_config(root, text),
        "--runs-dir",
        root / "runs",
    ]


def rwkv_folder(root):
    """A local model whose blocks have no output projection (RWKV), config only."""
    from transformers import AutoConfig

    folder = root / "rwkv"
    sizes = {"hidden_size": 16, "attention_hidden_size": 16, "intermediate_size": 32}
    AutoConfig.for_model("rwkv", num_hidden_layers=2, vocab_size=50, **sizes).save_pretrained(
        folder
    )
    return folder


def sspace_on_rwkv(root, tiny):
    text = f'name = "r"\n[model]\nid = "{rwkv_folder(root)}"\n[compare]\nmethods = ["act:sspace"]\n'
    path = root / "c.toml"
    path.write_text(text)
    return ["run", "--config", path, "--runs-dir", root / "runs"]


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
    "run name with a newline": (
        lambda root, tiny: [
            "run",
            "--config",
            make_config(root, ""),
            "--name",
            "a\nb",
            "--runs-dir",
            root / "runs",
        ],
        "one line",
    ),
    "run name too long": (
        lambda root, tiny: [
            "run",
            "--config",
            make_config(root, ""),
            "--name",
            "x" * 300,
            "--runs-dir",
            root / "runs",
        ],
        "too long",
    ),
    "target_kl infinite": (run_with("[compare]\ntarget_kl = inf\n"), "finite"),
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
            "--rows",
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
    # -- run / compare: the config, checked before any folder is made
    "run config missing": (
        lambda root, tiny: ["run", "--config", root / "none.toml", "--runs-dir", root / "runs"],
        "none.toml",
    ),
    "run config not TOML": (
        lambda root, tiny: [
            "run",
            "--config",
            junk(root, "c.toml", b"name = [unclosed\n"),
            "--runs-dir",
            root / "runs",
        ],
        "c.toml",
    ),
    "run unknown key": (run_with("[train]\nrnak = 4\n"), "rnak"),
    "run unknown behaviour": (run_with('[behavior]\nname = "kindness"\n'), "kindness"),
    "run unknown suite": (run_with('[eval]\nsuites = ["claimz"]\n'), "claimz"),
    "run unknown family": (run_with('[train]\nfamilies = ["lorra"]\n'), "lorra"),
    "run rank 0": (run_with("[train]\nrank = 0\n"), "train.rank"),
    "run CI level above 1": (run_with("[metrics]\nci = 1.5\n"), "metrics.ci"),
    "run unknown compare method": (run_with('[compare]\nmethods = ["act:magic"]\n'), "act:magic"),
    "run negative KL budget": (run_with("[compare]\nbudgets = [-1]\n"), "budget"),
    "run topk with more clusters than training questions": (
        run_with(
            '[compare]\nmethods = ["act:topk_clusters"]\n[compare."act:topk_clusters"]\nk = 61\n'
        ),
        "questions.n_train",
    ),
    "run cosine gate threshold 1": (
        run_with('[compare."act:cosine_gated"]\nthreshold = 1.0\n'),
        "threshold",
    ),
    "run S-space rank 0": (run_with('[compare."act:sspace"]\nrank = 0\n'), "rank"),
    "run S-space on a model with no output projection": (sspace_on_rwkv, "no output projection"),
    "run too many calibration prompts": (
        run_with("[compare]\nn_calibration = 100000\n"),
        "usable prompts",
    ),
    "run unknown model source": (
        lambda root, tiny: [
            "run",
            "--config",
            junk(root, "c.toml", b'name = "r"\n[model]\nid = "/no/such/model"\n'),
            "--runs-dir",
            root / "runs",
        ],
        "/no/such/model",
    ),
    "compare unknown method": (
        lambda root, tiny: [
            "compare",
            "--config",
            make_config(root, '[compare]\nmethods = ["prompt:magic"]\n'),
            "--runs-dir",
            root / "runs",
        ],
        "prompt:magic",
    ),
    # -- data / train / extract
    "data unknown behaviour": (
        lambda root, tiny: ["data", "--model", tiny, "--behavior", "kindness", "--out", root / "d"],
        "kindness",
    ),
    "data out is a file": (
        lambda root, tiny: ["data", "--model", tiny, "--out", user_file(root, "d")],
        "d",
    ),
    "train data missing": (
        lambda root, tiny: [
            "train",
            "--model",
            tiny,
            "--data",
            root / "none.jsonl",
            "--out",
            root / "a",
        ],
        "none.jsonl",
    ),
    "train data not JSON lines": (
        lambda root, tiny: [
            "train",
            "--model",
            tiny,
            "--data",
            junk(root, "d.jsonl"),
            "--out",
            root / "a",
        ],
        "d.jsonl",
    ),
    "train data empty": (
        lambda root, tiny: [
            "train",
            "--model",
            tiny,
            "--data",
            junk(root, "d.jsonl", b""),
            "--out",
            root / "a",
        ],
        "d.jsonl",
    ),
    "train unknown family": (
        lambda root, tiny: [
            "train",
            "--model",
            tiny,
            "--data",
            chat_data(root),
            "--family",
            "lorra",
            "--out",
            root / "a",
        ],
        "lorra",
    ),
    "train out is a user's file": (
        lambda root, tiny: [
            "train",
            "--model",
            tiny,
            "--data",
            chat_data(root),
            "--out",
            user_file(root, "a"),
        ],
        "exists",
    ),
    "extract adapter missing": (
        extract_to(lambda root: root / "v.safetensors"),
        "does not exist",
    ),
    "extract adapter info lacking keys": (
        lambda root, tiny: [
            "extract",
            "--model",
            tiny,
            "--pos",
            adapter_lacking_keys(root, tiny),
            "--neg",
            root / "lacking",
            "--out",
            root / "v.safetensors",
        ],
        "lacks family, spec, base",
    ),
    # -- vectors: info, steer, eval, monitor, export
    "info missing vector": (
        lambda root, tiny: ["info", root / "none.safetensors"],
        "none.safetensors",
    ),
    "info corrupt vector": (
        lambda root, tiny: ["info", junk(root, "v.safetensors")],
        "v.safetensors",
    ),
    "info NaN vector": (lambda root, tiny: ["info", nan_vector(root)], "nan.safetensors"),
    "steer vector for another model": (steer_to(lambda root: root / "m"), "made for"),
    "steer alpha not a number": (
        lambda root, tiny: [
            "steer",
            "--model",
            tiny,
            "--vector",
            root / "v",
            "--alpha",
            "x",
            "--out",
            root / "m",
        ],
        "--alpha",
    ),
    "steer out below a file": (steer_to(lambda root: user_file(root, "f") / "m"), "f"),
    "eval unknown suite": (
        lambda root, tiny: [
            "eval",
            "--model",
            tiny,
            "--suite",
            "claimz",
            "--out",
            root / "r.parquet",
        ],
        "claimz",
    ),
    "eval alphas not numbers": (
        lambda root, tiny: [
            "eval",
            "--model",
            tiny,
            "--suite",
            "claims",
            "--rows",
            "builtin:claims-sample",
            "--alphas",
            "a,b",
            "--out",
            root / "r.parquet",
        ],
        "alphas",
    ),
    "eval suite data missing": (
        lambda root, tiny: [
            "eval",
            "--model",
            tiny,
            "--suite",
            "claims",
            "--rows",
            root / "none.jsonl",
            "--out",
            root / "r.parquet",
        ],
        "none.jsonl",
    ),
    "monitor vector corrupt": (
        lambda root, tiny: [
            "monitor",
            "--vector",
            junk(root, "v.safetensors"),
            "--model",
            tiny,
            "--finetuned",
            tiny,
        ],
        "v.safetensors",
    ),
    "monitor fine-tune missing": (
        lambda root, tiny: [
            "monitor",
            "--vector",
            empty_vector(root),
            "--model",
            tiny,
            "--finetuned",
            root / "none",
        ],
        "none",
    ),
    "monitor labels of one class": (monitor_one_class, "both labels"),
    "export vector missing": (
        lambda root, tiny: [
            "export",
            "lora",
            "--vector",
            root / "none.safetensors",
            "--out",
            root / "x",
        ],
        "none.safetensors",
    ),
    "eval on a CUDA device this machine lacks": (
        lambda root, tiny: [
            "eval",
            "--model",
            tiny,
            "--device",
            "cuda:7",
            "--suite",
            "claims",
            "--rows",
            "builtin:claims-sample",
            "--out",
            root / "r.parquet",
        ],
        "cuda:7",
    ),
    "steer on an unknown device": (
        steer_to(lambda root: root / "m", "--device", "tpu"),
        "unknown device",
    ),
    # -- report, toy
    "report path missing": (lambda root, tiny: ["report", root / "none.parquet"], "none.parquet"),
    "report replaces a user's markdown": (
        lambda root, tiny: ["report", (user_file(root, "t.md"), plain_table(root))[1]],
        "not written by weightsteer report",
    ),
    "report table lacks columns": (
        lambda root, tiny: [
            "report",
            plain_table(root),
        ],
        "lacks columns",
    ),
    "toy unknown variant": (lambda root, tiny: ["toy", "build", "--variant", "huge"], "huge"),
    # -- issue 34: links, things of the user's under derived names, foreign tables and runs
    "eval out is a dangling link": (
        eval_claims_to(lambda root: link(root, "r.parquet")),
        "symbolic link",
    ),
    "eval out is a link to a file": (
        eval_claims_to(lambda root: link(root, "r.parquet", kind="file"), "--overwrite"),
        "symbolic link",
    ),
    "train out is a link to a folder": (
        lambda root, tiny: [
            "train",
            "--model",
            tiny,
            "--data",
            chat_data(root),
            "--overwrite",
            "--out",
            link(root, "a", kind="folder"),
        ],
        "symbolic link",
    ),
    "steer out is a dangling link": (steer_to(lambda root: link(root, "m")), "symbolic link"),
    "export out is a link to a folder": (
        lambda root, tiny: [
            "export",
            "lora",
            "--vector",
            empty_vector(root),
            "--overwrite",
            "--out",
            link(root, "x", kind="folder"),
        ],
        "symbolic link",
    ),
    "extract out is a link to a file": (
        extract_to(lambda root: link(root, "v.safetensors", kind="file"), "--overwrite"),
        "symbolic link",
    ),
    "data out is a link to a folder": (
        lambda root, tiny: ["data", "--model", tiny, "--out", link(root, "d", kind="folder")],
        "symbolic link",
    ),
    "run folder holds a link": (
        lambda root, tiny: (
            fake_run(root, {"name": "r", "model": {"id": "toyworld"}}),
            link(root / "runs" / "r", "results", "../../elsewhere", "folder"),
            ["run", "--config", make_config(root, ""), "--runs-dir", root / "runs"],
        )[-1],
        "symbolic link",
    ),
    "run folder is a link": (
        lambda root, tiny: (
            (root / "runs").mkdir(),
            link(root / "runs", "r", "../away", "folder"),
            ["run", "--config", make_config(root, ""), "--runs-dir", root / "runs"],
        )[-1],
        "symbolic link",
    ),
    "monitor out's figure is a user's file": (
        lambda root, tiny: (
            user_file(root, "m.svg"),
            [
                "monitor",
                "--vector",
                empty_vector(root),
                "--model",
                tiny,
                "--finetuned",
                tiny,
                "--out",
                root / "m.csv",
            ],
        )[-1],
        "m.svg already exists",
    ),
    "data into a run of another model": (
        lambda root, tiny: [
            "data",
            "--model",
            tiny,
            "--out",
            fake_run(root, {"name": "r", "model": {"id": "toyworld"}}),
        ],
        "another experiment",
    ),
    "run into a run of another behaviour": (
        lambda root, tiny: (
            fake_run(
                root, {"name": "r", "model": {"id": "toyworld"}, "behavior": {"name": "sycophancy"}}
            ),
            ["run", "--config", make_config(root, ""), "--runs-dir", root / "runs"],
        )[-1],
        "behavior.name",
    ),
    "run folder whose manifest is not UTF-8": (
        lambda root, tiny: [
            "train",
            "--run",
            fake_run(root, {}, manifest=b'{"config": "\xff\xfe"}'),
        ],
        "damaged",
    ),
    "report of a table with a string seed": (
        lambda root, tiny: ["report", results_table(root, seed=["a", "b"])],
        "column seed",
    ),
    "report of a table with missing labels": (
        lambda root, tiny: ["report", results_table(root, label=[1.0, float("nan")])],
        "column label has missing values",
    ),
    "report of a table whose suites metadata is a list": (
        lambda root, tiny: ["report", results_table(root, meta={b"weightsteer.suites": b"[1]"})],
        "weightsteer.suites metadata is a list",
    ),
    "report of a table whose config metadata is a list": (
        lambda root, tiny: ["report", results_table(root, meta={b"weightsteer": b"[1, 2]"})],
        "weightsteer metadata is a list",
    ),
    "report figures folder is a user's file": (
        lambda root, tiny: (user_file(root, "r-figures"), ["report", results_table(root)])[-1],
        "is a file weightsteer did not write",
    ),
    "report figures folder is a link": (
        lambda root, tiny: (
            link(root, "r-figures", kind="folder"),
            ["report", results_table(root)],
        )[-1],
        "symbolic link",
    ),
    "run target of other shapes": (
        lambda root, tiny: run_with(f'target = "{other_shapes(root)}"\n')(root, tiny),
        "does not have the shapes",
    ),
    "run tinymfv frame unknown": (
        run_with('[eval]\nsuites = ["tinymfv"]\n[eval.tinymfv]\nframe = "xml"\n'),
        "frame",
    ),
    "run tinymfv clip of a half": (
        run_with('[eval]\nsuites = ["tinymfv"]\n[eval.tinymfv]\nclip = 0.5\n'),
        "clip",
    ),
    "run tinymfv target not a foundation": (
        run_with(
            '[eval]\nsuites = ["tinymfv"]\n[eval.tinymfv]\nsource = '
            '"builtin:tinymfv-sample"\ntarget = "Authorty"\n'
        ),
        "not a foundation",
    ),
    "run authority on an unknown vignette source": (
        run_with(
            '[behavior]\nname = "authority"\n[eval]\nsuites = ["tinymfv"]\n'
            '[eval.tinymfv]\nsource = "toyworld-morals"\n'
        ),
        "toyworld-morals",
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


# -- the OS says no: read-only, full, not a folder -----------------------------------------


@pytest.mark.parametrize(
    ("err", "phrase"),
    [
        (OSError(30, "Read-only file system", "/mnt/ro/out"), "read-only"),
        (OSError(28, "No space left on device", "/data/v.safetensors"), "disk is full"),
        (OSError(20, "Not a directory", "/a/file/x"), "is a file, not a folder"),
        (OSError(13, "Permission denied", "/root/x"), "permission denied"),
        (
            type("SafetensorError", (Exception,), {})("No space left on device (os error 28)"),
            "disk is full",
        ),
    ],
)
def test_os_errors_become_one_line_with_what_to_do(err, phrase, monkeypatch, tmp_path, capsys):
    from weightsteer.core import vector

    def refuse(*a, **kw):
        raise err

    monkeypatch.setattr(vector.WeightVector, "load", refuse)
    code, _, stderr = cli(["info", tmp_path / "v.safetensors"], capsys)
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and phrase in lines[0], stderr
    assert "Traceback" not in stderr


def test_a_disk_filling_mid_write_leaves_no_partial_output(tmp_path, tiny_dir):
    """``steer`` under a 64 KiB file-size limit (``RLIMIT_FSIZE``; the write fails with
    EFBIG as on a full disk): one line, exit 2, and no model folder, not even a partial
    one. Then with room, the same command writes it."""
    import resource
    import signal
    import subprocess
    import sys

    import torch

    from weightsteer.core.models import fingerprint, load_model

    model = load_model(tiny_dir)
    name = next(n for n, p in model.named_parameters() if p.ndim == 2)

    vec = WeightVector(
        {name: torch.ones_like(dict(model.named_parameters())[name])},
        VectorMeta(base=fingerprint(model, str(tiny_dir))),
    )
    vec.save(tmp_path / "v.safetensors")
    cmd = [
        sys.executable,
        "-m",
        "weightsteer.cli",
        "steer",
        "--model",
        str(tiny_dir),
        "--vector",
        str(tmp_path / "v.safetensors"),
        "--alpha",
        "0.5",
        "--out",
        str(tmp_path / "steered"),
    ]

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    full = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=limit, timeout=300)
    lines = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert full.returncode == 2 and len(lines) == 1, full.stderr[-2000:]
    assert "Traceback" not in full.stderr
    assert not (tmp_path / "steered").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries
    room = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert room.returncode == 0, room.stderr[-2000:]
    assert (tmp_path / "steered" / "config.json").is_file()
