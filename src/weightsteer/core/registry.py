"""One registry mechanism for every kind of pluggable thing.

Adapter families, intervention methods, eval suites, analyses, scorers, model sources and
question/prompt/vignette sources are each a :class:`Registry`: a name -> :class:`Entry` map filled
by one decorator, ``@REGISTRY.register(name, Config)``, in the file that defines the
entry. ``Config`` is the entry's own frozen settings (a ``Section``; ``None``: it has
none): the run config grows one sub-section per entry that has one, under the entry's
name (``[train.delora]``, ``[compare."act:pca"]``, ``[eval.tinymfv]``,
``[analysis.shared]``), and ``weightsteer config-help`` lists its fields. Keyword
arguments of ``register`` are facts about the entry its kind defines (a family's default
learning rate, what an analysis needs); they stay with it as ``Entry.facts``.

A registry finds its entries by importing every module of its own package (the
built-ins) and then the modules named under its entry-point group, so a plugin package,
or a higher layer of this one (toyworld), adds an entry without the registry importing
it. The groups (``[project.entry-points."<group>"]`` in a plugin's ``pyproject.toml``):

=========================================  =============================================
group                                      kind
=========================================  =============================================
``weightsteer.adapter_families``           adapter family (``adapters/families/``)
``weightsteer.methods``                    intervention method (``methods/``)
``weightsteer.suites``                     eval suite (``evals/suites/``)
``weightsteer.analyses``                   analysis (``analysis/``)
``weightsteer.scorers``                    free-text scorer (``evals/scorers.py``)
``weightsteer.model_sources``              ``--model`` name (``toyworld``, ``smollm2``)
``weightsteer.question_sources``           question pool (``questions.source``)
``weightsteer.prompt_sources``             calibration prompts (``compare.prompts``)
``weightsteer.vignette_sources``           tinymfv vignettes (``eval.tinymfv.source``)
=========================================  =============================================

A name is registered once: a second entry under a taken name is refused (a module
reloaded in place may re-register its own entry).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from weightsteer.core.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered thing: its name, the object (a builder, a function, a record), its
    own config class, and the facts its kind records about it."""

    name: str
    obj: T
    config: type[BaseModel] | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        """``module.qualname`` of the object: where the entry was defined."""
        return f"{getattr(self.obj, '__module__', '?')}.{getattr(self.obj, '__qualname__', '?')}"

    def settings(self, given: Any = None) -> Any:
        """The entry's config: ``given`` (the run's sub-section) or the defaults."""
        if self.config is None:
            return None
        return given if given is not None else self.config()


class Registry(Generic[T]):
    """Entries of one kind, by name. ``package`` holds the built-ins (one per module);
    ``group`` is the entry-point group plugins register under (see the table above)."""

    def __init__(self, kind: str, group: str, package: str | None = None):
        if not group.startswith("weightsteer."):
            raise ValueError(f"entry-point group {group!r} must start with 'weightsteer.'")
        self.kind, self.group, self.package = kind, group, package
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = False

    def register(
        self, name: str, config: type[BaseModel] | None = None, **facts: Any
    ) -> Callable[[T], T]:
        """Decorator: ``@SUITES.register("claims", ClaimsConfig)`` above the entry."""

        def deco(obj: T) -> T:
            self.add(Entry(name, obj, config, facts))
            return obj

        return deco

    def add(self, entry: Entry[T]) -> Entry[T]:
        """Register ``entry``; a name already taken by another entry is refused."""
        old = self._entries.get(entry.name)
        if old is not None and old.origin != entry.origin:
            raise UserError(
                f"{self.kind} {entry.name!r} is registered twice: by {old.origin} and by "
                f"{entry.origin}; rename one of them"
            )
        self._entries[entry.name] = entry
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

    def entry(self, name: str) -> Entry[T]:
        self._load()
        if name not in self._entries:
            raise UserError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self)}")
        return self._entries[name]

    def get(self, name: str) -> T:
        """The registered object (a builder, a function, a record)."""
        return self.entry(name).obj

    def entries(self) -> list[Entry[T]]:
        self._load()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(sorted(self._entries))

    def items(self) -> list[tuple[str, T]]:
        return [(e.name, e.obj) for e in self.entries()]
