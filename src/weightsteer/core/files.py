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


def check_writable(
    path: str | Path, *, overwrite: bool = False, is_dir: bool | None = None
) -> Path:
    """May the tool write ``path``: the one rule every verb goes through.

    * A symbolic link (dangling, to a file or to a folder) is never written through nor
      replaced: the user gives the path it points to themselves.
    * Something already there is replaced only with ``overwrite`` (``--overwrite``), and
      only by an artifact of its own kind: a file the tool writes never replaces a folder
      (a user's folder that has a figure's name), nor a folder a file.
    """
    path = Path(path)
    if path.is_symlink():
        raise UserError(
            f"{path} is a symbolic link (to {os.readlink(path)}); weightsteer writes through "
            "no link and replaces none: give the path it points to instead"
        )
    if path.exists():
        if not overwrite:
            raise UserError(f"{path} already exists; choose another --out or pass --overwrite")
        if is_dir is not None and path.is_dir() != is_dir:
            kind, ours = ("folder", "file") if path.is_dir() else ("file", "folder")
            raise UserError(
                f"{path} is a {kind} weightsteer did not write (it writes a {ours} there); "
                "move it away or choose another path"
            )
    return path


def check_derived(paths: list[Path], *, overwrite: bool = False) -> None:
    """Every path a verb derives from its ``--out`` (a figure beside a table): each may be
    written (``check_writable``), checked before any work."""
    for p in paths:
        check_writable(p, overwrite=overwrite, is_dir=False)


def find_link(root: str | Path) -> Path | None:
    """The first symbolic link inside ``root`` (not following any), or None: a run folder
    holds none, so no write of a stage lands outside it."""
    for top, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            if Path(top, name).is_symlink():
                return Path(top, name)
    return None


@contextmanager
def atomic_path(
    path: str | Path, *, overwrite: bool = False, is_dir: bool = False
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On error the temporary is removed and ``path`` is left as it was.
    """
    path = check_writable(path, overwrite=overwrite, is_dir=is_dir)
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


def damaged_safetensors(folder: str | Path) -> str | None:
    """What is wrong with the first damaged ``*.safetensors`` in ``folder`` (its header
    unreadable, or the file shorter or longer than the header says: a killed copy, a full
    disk), or None. Reads only the headers: cheap enough for every load of a cache."""
    import json
    import struct

    for f in sorted(Path(folder).glob("*.safetensors")):
        size = f.stat().st_size
        try:
            with f.open("rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                if n > size:
                    raise ValueError("header longer than the file")
                header = json.loads(fh.read(n))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"),
                      default=0)  # fmt: skip
        except (struct.error, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            return f"{f.name} has no readable header ({e})"
        if size != 8 + n + end:
            return f"{f.name} is {size} bytes, its header says {8 + n + end} (truncated or cut)"
    return None


def check_cached(folder: Path, name: str) -> Path:
    """``folder``, a cached model (``name``: toyworld, smollm2), if its weights are whole;
    else one line saying how to clear it."""
    wrong = damaged_safetensors(folder)
    if wrong:
        raise UserError(
            f"the cached {name} model at {folder} is damaged: {wrong}; delete that folder "
            "and run again (it is rebuilt)"
        )
    return folder
