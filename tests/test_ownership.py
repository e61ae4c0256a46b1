"""Nothing the user owns is replaced, nothing is written through a link, and a damaged
cached model is one line (core/files.py: the one "may I write here" rule)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from helpers import cli
from weightsteer.core.errors import UserError
from weightsteer.core.files import (
    atomic_path,
    check_writable,
    damaged_safetensors,
    find_link,
)


@pytest.mark.parametrize("kind", ["dangling", "file", "folder"])
def test_a_link_is_never_written_through_nor_replaced(tmp_path, kind):
    target = tmp_path / "target"
    if kind == "file":
        target.write_text("mine")
    elif kind == "folder":
        target.mkdir()
    out = tmp_path / "out"
    out.symlink_to(target)
    for overwrite in (False, True):
        with (
            pytest.raises(UserError, match="symbolic link"),
            atomic_path(out, overwrite=overwrite, is_dir=kind == "folder") as tmp,
        ):
            tmp.write_text("written")  # pragma: no cover - never reached
    assert out.is_symlink() and out.readlink() == target
    assert not target.exists() if kind == "dangling" else target.exists()
    if kind == "file":
        assert target.read_text() == "mine"


def test_overwrite_replaces_only_an_artifact_of_its_own_kind(tmp_path):
    folder = tmp_path / "figure.png"  # the user's folder with a figure's name
    folder.mkdir()
    (folder / "keep").write_text("mine")
    with (
        pytest.raises(UserError, match="is a folder weightsteer did not write"),
        atomic_path(folder, overwrite=True) as tmp,
    ):
        tmp.write_text("png")  # pragma: no cover
    assert (folder / "keep").read_text() == "mine"
    file = tmp_path / "adapter"
    file.write_text("mine")
    with pytest.raises(UserError, match="is a file weightsteer did not write"):
        check_writable(file, overwrite=True, is_dir=True)
    assert check_writable(file, overwrite=True, is_dir=False) == file  # same kind: allowed


def test_find_link_sees_a_link_at_any_depth(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert find_link(tmp_path) is None
    (tmp_path / "a" / "b" / "l").symlink_to(tmp_path / "nowhere")
    assert find_link(tmp_path) == tmp_path / "a" / "b" / "l"


def test_a_truncated_or_headerless_safetensors_is_named(tmp_path):
    save_file({"w": torch.ones(64)}, str(tmp_path / "model.safetensors"))
    assert damaged_safetensors(tmp_path) is None
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[:-10])
    assert "truncated" in damaged_safetensors(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 4)
    assert "no readable header" in damaged_safetensors(tmp_path)


@pytest.mark.parametrize("name", ["toyworld", "smollm2"])
def test_a_damaged_cached_model_is_one_line_saying_how_to_clear_it(
    name, tmp_path, monkeypatch, capsys
):
    """A killed copy left a short model.safetensors in the cache: eval says which folder to
    delete (it is rebuilt), with no traceback and nothing written."""
    monkeypatch.setenv("WEIGHTSTEER_CACHE", str(tmp_path / "cache"))
    if name == "toyworld":
        from weightsteer.toy.build import INFO_FILE, toyworld_dir

        folder = toyworld_dir(0, "default")
    else:
        from weightsteer.fetched.smollm2 import INFO_FILE, model_dir

        folder = model_dir()
    folder.mkdir(parents=True)
    (folder / INFO_FILE).write_text(json.dumps({"steps": 1}))
    save_file({"w": torch.ones(64)}, str(folder / "model.safetensors"))
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    out = tmp_path / "r.parquet"
    code, _, err = cli(["eval", "--model", name, "--suite", "claims", "--rows",
                        "builtin:claims-sample", "--out", out], capsys)  # fmt: skip
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err
    assert "damaged" in " ".join(err.split()) and "delete that folder" in " ".join(err.split())
    assert not out.exists()
