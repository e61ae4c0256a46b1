"""Atomic writes: artifacts appear under their final name only when complete.

Every file or folder the library writes goes through these helpers, so an interrupted
command never leaves a half-written artifact behind, and nothing the user made is
overwritten unless they asked for it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from weightsteer.core.errors import UserError


def check_writable(path: str | Path, *, overwrite: bool = False) -> Path:
    """Refuse to replace an existing artifact unless ``overwrite`` is set."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists; choose another --out or pass --overwrite")
    return path


@contextmanager
def atomic_path(
    path: str | Path, *, overwrite: bool = False, is_dir: bool = False
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On error the temporary is removed and ``path`` is left as it was.
    """
    path = check_writable(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp if is_dir else tmp / path.name
    try:
        yield target
        if is_dir:  # mkdtemp makes it 0700; the artifact gets the user's usual mode
            target.chmod(0o777 & ~_umask())
        if path.is_dir() and not path.is_symlink():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(target, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cache_root() -> Path:
    """Where built and fetched models are cached: ``$WEIGHTSTEER_CACHE``, else
    ``$XDG_CACHE_HOME/weightsteer``, else ``~/.cache/weightsteer``."""
    if os.environ.get("WEIGHTSTEER_CACHE"):
        return Path(os.environ["WEIGHTSTEER_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "weightsteer"


def digest(path: str | Path, chars: int = 16) -> str:
    """Content hash (sha256, its first ``chars`` hex digits) of a file's bytes, or of a
    folder's files (each one's relative name and bytes, in sorted order)."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_file():
        _update(h, path)
    else:
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(path)).encode() + b"\0")
            _update(h, f)
    return h.hexdigest()[:chars]


def _update(h: Any, path: Path) -> None:
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def track(items: Any, description: str) -> Any:
    """Iterate ``items`` under a transient progress bar on stderr (stdout carries results)."""
    from rich.console import Console
    from rich.progress import track as rich_track

    return rich_track(items, description=description, transient=True, console=Console(stderr=True))
