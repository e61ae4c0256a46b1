"""Generation on a vLLM server, steered per request (``[engine] name = "vllm"``).

A stage attaches a ``Served`` to its model (``serving``); from then on
``generation.generate_ids`` on that model asks the server instead of ``model.generate``,
with the same token ids in and the same ids out. What the model is steered by travels
with each request: interventions say how the server gives them at a strength
(``Intervention.served``, a ``ServedAs``):

* the base model (strength 0, a prompt: the system prompt is in the prompt's tokens);
* a LoRA adapter of ``strength * dW`` (weight steering), exported the first time a
  strength is asked for and loaded into the server at runtime, so a sweep's strengths are
  one batch of requests, each naming its own adapter (``prefetch``);
* nothing the server can do (activation steering, the dosed prompt: stock vLLM has no
  hooks and no logit mixing; a dense vector whose LoRA truncation is off by more than
  ``[engine] max_error``): ``generate`` returns None and the caller generates in this
  process, saying so once per method or vector (``[engine] fallback = "hf"``).

Greedy answers asked for before (``prefetch``) are kept by (adapter, prompt, length).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weightsteer.core.engine import (
    SERVED,
    EngineConfig,
    load_adapter,
    served_generate,
    unload_adapter,
)

_ATTR = "_weightsteer_served"
_NAMES = itertools.count(1)  # adapter names on the server


@dataclass(frozen=True)
class ServedAs:
    """How the server gives an intervention at one strength: the base model (no vector),
    a LoRA of ``strength * vector`` (``key`` names the vector), or not at all
    (``why_not``)."""

    vector: Any = None
    strength: float = 0.0
    key: str = ""
    why_not: str = ""


BASE = ServedAs()


class NotServable(Exception):
    """Raised by an ``Exporter``: this vector cannot be served faithfully (the message
    says why); its answers are generated in this process."""


# (vector, strength, folder) -> a one-line description of the adapter written there
Exporter = Callable[[Any, float, Path], str]


class Served:
    """A vLLM server a stage generates on: its URL, the end-of-turn ids, the run's
    ``[engine]`` settings, where adapters go (``folder``), how a vector becomes one
    (``export``) and where one-line notes go (``say``). ``url`` may be a function that
    starts the server: it is called on the first request, so a stage with nothing to
    generate starts none."""

    def __init__(
        self,
        url: str | Callable[[], str],
        ends: Sequence[int],
        cfg: EngineConfig,
        *,
        folder: Path,
        export: Exporter | None = None,
        log: Path | None = None,
        say: Callable[[str], None] = print,
    ):
        self._url, self.ends, self.cfg, self.log = url, list(ends), cfg, log
        self.folder, self.export, self.say = folder, export, say
        self.state = BASE
        self.adapters: dict[tuple[str, float], str] = {}
        self.kept: dict[tuple, list[int]] = {}
        self.said: set[str] = set()
        self.refused: set[str] = set()  # vector keys the exporter refused
        self.on_response: Callable[[int], None] | None = None

    @property
    def url(self) -> str:
        """The server's URL; a server started on demand starts on the first request."""
        if callable(self._url):
            self._url = self._url()
        return self._url

    def _model(self, served: ServedAs) -> str | None:
        """The served name of ``served`` (the base, or its adapter, loaded on first use);
        None for a vector its exporter refused (``NotServable``)."""
        if served.vector is None:
            return SERVED
        key = (served.key, float(served.strength))
        if served.key in self.refused:
            return None
        if key not in self.adapters:
            assert self.export is not None, "a weight vector needs an exporter"
            name = f"steer-{next(_NAMES)}"  # never reused in this process
            path = self.folder / name
            try:
                note = self.export(served.vector, float(served.strength), path)
            except NotServable as e:
                self.refused.add(served.key)
                self.say(f"  engine: {e}")
                return None
            if note and served.key not in self.said:
                self.said.add(served.key)
                self.say(f"  engine: {note}")
            load_adapter(self.url, name, path, self.log)
            self.adapters[key] = name
        return self.adapters[key]

    def servable(self, served: ServedAs) -> bool:
        if not served.why_not:
            return True
        if self.cfg.fallback == "refuse":
            from weightsteer.core.errors import UserError

            raise UserError(
                f'{served.why_not}; [engine] fallback = "refuse" stops here '
                '(fallback = "hf" generates those answers with transformers)'
            )
        if served.why_not not in self.said:
            self.said.add(served.why_not)
            self.say(f"  engine: {served.why_not}: its answers are generated with transformers")
        return False

    def generate(
        self,
        prompts: Sequence[list[int]],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> list[list[int]] | None:
        """``generate_ids``' answer from the server at the current steering; None when
        the server cannot give it (the caller generates in this process)."""
        if not self.servable(self.state):
            return None
        name = self._model(self.state)
        if name is None:
            return None
        keys = [(name, tuple(p), max_new_tokens) for p in prompts]
        if temperature == 0 and all(k in self.kept for k in keys):
            return [list(self.kept[k]) for k in keys]
        return served_generate(
            self.url, prompts, max_new_tokens=max_new_tokens, ends=self.ends,
            temperature=temperature, top_p=top_p, seed=seed, models=[name] * len(prompts),
            cfg=self.cfg, log=self.log, on_done=self.on_response,
        )  # fmt: skip

    def prefetch(self, groups: Sequence[tuple[ServedAs, list[list[int]], int]]) -> None:
        """Greedy answers of every ``(steering, prompts, max_new_tokens)`` group, as one
        batch of requests per length (each request names its adapter), kept for
        ``generate``."""
        by_len: dict[int, list[tuple[str, list[int]]]] = {}
        for served, prompts, n in groups:
            if served.why_not:
                continue
            name = self._model(served)
            if name is not None:
                by_len.setdefault(n, []).extend((name, p) for p in prompts)
        for n, reqs in by_len.items():
            todo = [(m, p) for m, p in reqs if (m, tuple(p), n) not in self.kept]
            if not todo:
                continue
            out = served_generate(
                self.url, [p for _, p in todo], max_new_tokens=n, ends=self.ends,
                models=[m for m, _ in todo], cfg=self.cfg, log=self.log,
                on_done=self.on_response,
            )  # fmt: skip
            for (m, p), ids in zip(todo, out, strict=True):
                self.kept[(m, tuple(p), n)] = ids

    def release(self) -> None:
        """Unload the adapters made so far and forget their answers."""
        import shutil

        for name in self.adapters.values():
            unload_adapter(self.url, name)
            shutil.rmtree(self.folder / name, ignore_errors=True)
        gone = set(self.adapters.values())
        self.kept = {k: v for k, v in self.kept.items() if k[0] not in gone}
        self.adapters.clear()
        self.state = BASE


def active_served(model: Any) -> Served | None:
    """The server attached to ``model`` (None: generation stays in this process)."""
    return getattr(model, "__dict__", {}).get(_ATTR)  # a stand-in model may be None


@contextmanager
def serving(model: Any, served: Served | None) -> Iterator[Served | None]:
    """Generation on ``model`` goes to ``served`` inside the block (None: nothing
    changes); its adapters are unloaded on exit."""
    if served is None:
        yield None
        return
    model.__dict__[_ATTR] = served
    try:
        yield served
    finally:
        model.__dict__.pop(_ATTR, None)
        served.release()


@contextmanager
def steering_served(
    model: Any, intervention: Any, set_strength: Callable[[float], None]
) -> Iterator[Callable[[float], None]]:
    """``set_strength`` that also tells the attached server (if any) how
    ``intervention`` is served at each strength; the adapters it made are unloaded on
    exit."""
    served = active_served(model)
    if served is None:
        yield set_strength
        return

    def both(strength: float) -> None:
        set_strength(strength)
        served.state = intervention.served(strength)

    try:
        yield both
    finally:
        served.release()
