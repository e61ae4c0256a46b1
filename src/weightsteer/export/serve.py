"""Serve a base model with steering vectors at chosen strengths, as named LoRA modules on a
vLLM server (``weightsteer serve``).

Each ``(vector, strength)`` is exported as a PEFT LoRA (``export_lora``: exact for
LoRA/PiSSA vectors, a stated SVD truncation for dense ones) and named
``<name>@<strength>`` on the server; a request picks its steering by ``"model"``, so one
server answers every strength, per request. The server runs in the vLLM environment
(``make vllm``), never in this process; the adapters are written to a scratch folder
removed when the server stops.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from weightsteer.core.engine import EngineConfig, Server, lora_bucket, start_server
from weightsteer.core.errors import UserError
from weightsteer.core.vector import WeightVector
from weightsteer.export.lora import ExportReport, export_lora


@dataclass(frozen=True)
class Steering:
    """One vector to serve: its name on the server, the vector, its strengths."""

    name: str
    vector: WeightVector
    strengths: tuple[float, ...]


def parse_steering(spec: str) -> tuple[str, Path, tuple[float, ...]]:
    """``NAME=PATH@S1,S2,...`` (``NAME=`` optional: the file's stem) as its parts."""
    name, eq, rest = spec.partition("=")
    if not eq:
        name, rest = "", spec
    path, at, strengths = rest.rpartition("@")
    if not at or not path:
        raise UserError(
            f"--vector {spec!r}: give NAME=PATH@STRENGTHS, e.g. honesty=v.safetensors@-1,1"
        )
    try:
        values = tuple(float(s) for s in strengths.split(","))
    except ValueError:
        raise UserError(
            f"--vector {spec!r}: strengths must be numbers, got {strengths!r}"
        ) from None
    if not values or any(not math.isfinite(v) or v == 0 for v in values):
        raise UserError(f"--vector {spec!r}: strengths must be finite and non-zero (0 is the base)")
    return name or Path(path).stem, Path(path), values


def served_name(name: str, strength: float) -> str:
    return f"{name}@{strength:g}"


def write_adapters(
    steerings: Sequence[Steering], folder: Path, *, rank: int | None, max_error: float | None
) -> dict[str, tuple[Path, ExportReport]]:
    """``{served name: (adapter folder, export report)}`` for every vector and strength."""
    out: dict[str, tuple[Path, ExportReport]] = {}
    for st in steerings:
        for s in st.strengths:
            name = served_name(st.name, s)
            if name in out:
                raise UserError(f"{name} is named twice; give each vector its own NAME=")
            path = folder / name.replace("@", "_at_")
            out[name] = (
                path,
                export_lora(st.vector, path, alpha=s, rank=rank, max_error=max_error),
            )
    return out


@contextmanager
def serve_steerings(
    model_dir: str | Path,
    steerings: Sequence[Steering],
    *,
    log: Path,
    cfg: EngineConfig | None = None,
    port: int | None = None,
    rank: int | None = None,
    max_error: float | None = None,
) -> Iterator[tuple[Server, dict[str, tuple[Path, ExportReport]]]]:
    """A vLLM server of ``model_dir`` with every steering as a named LoRA module; yields it
    and the adapters; stops it and removes the adapters on exit."""
    if not steerings:
        raise UserError("nothing to serve: give at least one --vector NAME=PATH@STRENGTHS")
    folder = Path(tempfile.mkdtemp(prefix="weightsteer-serve-"))
    try:
        adapters = write_adapters(steerings, folder, rank=rank, max_error=max_error)
        top = max(t.rank for _, rep in adapters.values() for t in rep.tensors)
        loras = {name: path for name, (path, _) in adapters.items()}
        with start_server(model_dir, log, cfg or EngineConfig(), port=port,
                          lora_rank=lora_bucket(top), loras=loras) as server:  # fmt: skip
            yield server, adapters
    finally:
        shutil.rmtree(folder, ignore_errors=True)
