"""Model sources: what ``--model NAME`` means.

``--model`` takes a hub id, a local folder, or a registered name. A registered name is a
:class:`ModelSource` that makes (once, then caches) a normal HF model folder: ``toyworld``
trains the embedded model, ``smollm2`` unpacks a pinned real model. Sources register
through the ``weightsteer.model_sources`` entry-point group, so this module, and loading,
know no product names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weightsteer.core.errors import UserError
from weightsteer.core.registry import Registry


@dataclass(frozen=True)
class ModelSource:
    """A registered name, read back from its registry entry."""

    name: str
    ensure: Callable[..., Path]  # ensure(progress=bool) -> the cached model folder
    info: Callable[[Path], dict[str, Any]] = field(default=lambda folder: {})
    summary: str = ""


# ``SOURCES.register(name, info=fn, summary="...")`` on the ``ensure`` function
SOURCES: Registry[Callable[..., Path]] = Registry("model source", "weightsteer.model_sources")


def get_source(name: str) -> ModelSource:
    entry = SOURCES.entry(name)
    return ModelSource(name, entry.obj, **entry.facts)


def is_registered(name: str | Path) -> bool:
    return isinstance(name, str) and name in SOURCES


def check_source(source: str | Path) -> str:
    """A registered name or a hub id as given, or a local folder (which must exist)
    expanded; nothing is built or loaded."""
    source = str(source)
    if is_registered(source):
        return source
    looks_local = source.startswith((".", "/", "~")) or Path(source).exists()
    if looks_local and not Path(source).expanduser().is_dir():
        raise UserError(f"model folder {source} does not exist")
    return str(Path(source).expanduser()) if looks_local else source


def resolve_source(source: str | Path, *, progress: bool = True) -> str:
    """What ``from_pretrained`` takes: a registered name's folder (made first if needed),
    else the hub id or folder as :func:`check_source` gives it."""
    source = check_source(source)
    if is_registered(source):
        return str(get_source(source).ensure(progress=progress))
    return source


def source_info(source: str, folder: str | Path) -> dict[str, Any]:
    """What identifies a registered source's build (steps, weights hash); {} otherwise."""
    return get_source(source).info(Path(folder)) if is_registered(source) else {}
