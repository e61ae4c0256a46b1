"""Eval suites: rows with a stable ``row_id``, a chat, and which answer is the POS one.

Every suite is scored the same way: the chat is rendered with no system prompt (plus the
suite's assistant prefill), the next-token logratio of the suite's two choices is taken,
and ``score = logratio * label`` is positive when the model leans toward the POS
behaviour. Adding a suite is one file in this package with one ``@register`` builder.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

from weightsteer.errors import UserError
from weightsteer.modelling import Message, render_chat, with_system
from weightsteer.scoring import YES_NO, Choices, ChoiceScores, score_choices


@dataclass(frozen=True)
class EvalRow:
    row_id: str
    messages: list[Message]  # the chat to answer, no system prompt
    label: int  # +1: the POS behaviour gives the first choice (Yes); -1: the second
    group: str = ""  # a breakdown key (tinymfv: the foundation)
    prefill: str | None = None  # this row's assistant prefill (None: the suite's)


@dataclass(frozen=True)
class Suite:
    name: str
    rows: list[EvalRow]
    choices: Choices = YES_NO
    prefill: str = ""
    meta: dict = field(default_factory=dict)


# builder(config, part) -> suites; ``part`` is what follows "name:" in eval.suites, or None
Builder = Callable[..., list[Suite]]
BUILDERS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        BUILDERS[name] = fn
        return fn

    return deco


def _load_builtin() -> None:
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


def build_suites(cfg) -> list[Suite]:
    """The suites named in ``cfg.eval.suites``, each capped at ``rows_per_suite`` rows."""
    _load_builtin()
    suites: list[Suite] = []
    for entry in cfg.eval.suites:
        name, _, part = entry.partition(":")
        if name not in BUILDERS:
            raise UserError(
                f"eval.suites: unknown suite {entry!r}; known: {', '.join(sorted(BUILDERS))}"
            )
        for suite in BUILDERS[name](cfg, part or None):
            if not suite.rows:
                raise UserError(f"eval suite {suite.name!r} has no rows")
            rows = suite.rows[: cfg.eval.rows_per_suite * suite.meta.get("rows_per_item", 1)]
            ids = [r.row_id for r in rows]
            if len(set(ids)) != len(ids):
                raise UserError(f"eval suite {suite.name!r} has duplicate row ids")
            meta = {**suite.meta, "rows": len(rows)}
            suites.append(Suite(suite.name, rows, suite.choices, suite.prefill, meta))
    names = [s.name for s in suites]
    if len(set(names)) != len(names):
        raise UserError(f"eval.suites names a suite twice: {', '.join(names)}")
    return suites


def read_suite_table(cfg, name: str, columns: list[str]):
    """The rows ``cfg.eval.<name>.source`` holds, with ``columns`` checked."""
    from weightsteer.tables import read_table, require_columns

    c = getattr(cfg.eval, name)
    what = f"eval.{name}"
    table = read_table(c.source, what=what, hf_config=c.hf_config, hf_split=c.hf_split)
    require_columns(table, columns, what, c.source)
    return table


def suite_prompts(tokenizer, suite: Suite, system: str | None = None) -> list[str]:
    """The rendered prompt of each row, ending where the choice token goes; ``system``
    (a prompting intervention) goes before each chat as its system prompt."""
    return [
        render_chat(
            tokenizer,
            with_system(r.messages, system),
            prefill=(suite.prefill if r.prefill is None else r.prefill) or None,
        )
        for r in suite.rows
    ]


def score_suite(
    model, tokenizer, suite: Suite, *, batch_size: int = 64, system: str | None = None
) -> ChoiceScores:
    prompts = suite_prompts(tokenizer, suite, system)
    return score_choices(model, tokenizer, prompts, suite.choices, batch_size=batch_size)
