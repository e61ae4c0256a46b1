"""One registry mechanism for every kind of pluggable thing.

Adapter families, intervention methods, eval suites, analyses, model sources and
question sources are each a :class:`Registry`: a name -> entry map filled by a
decorator in the file that defines the entry. A registry finds its entries by
importing every module of its own package (the built-ins) and then the modules named
under its entry-point group (``[project.entry-points."weightsteer.<kind>"]``), so a
plugin package, or a higher layer of this one (toyworld), adds an entry without the
registry importing it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from weightsteer.core.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one kind, by name. ``package`` holds the built-ins (one per module)."""

    def __init__(self, kind: str, package: str | None = None, group: str | None = None):
        self.kind, self.package = kind, package
        self.group = group or f"weightsteer.{kind.replace(' ', '_')}s"
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@SUITES.register("claims")`` above the entry."""

        def deco(entry: T) -> T:
            self._entries[name] = entry
            return entry

        return deco

    def add(self, name: str, entry: T) -> T:
        self._entries[name] = entry
        return entry

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.package is not None:
            pkg = importlib.import_module(self.package)
            for mod in pkgutil.iter_modules(pkg.__path__):
                if not mod.name.startswith("_"):
                    importlib.import_module(f"{self.package}.{mod.name}")
        for ep in entry_points(group=self.group):
            ep.load()

    def get(self, name: str) -> T:
        self._load()
        if name not in self._entries:
            raise UserError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self)}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(sorted(self._entries))

    def items(self) -> list[tuple[str, T]]:
        self._load()
        return sorted(self._entries.items())
