"""Eval suites: rows with a stable ``row_id``, a chat, and which answer is the POS one.

Every suite is scored the same way: the chat is rendered with no system prompt (plus the
suite's assistant prefill), the next-token logratio of the suite's two choices is taken,
and ``score = logratio * label`` is positive when the model leans toward the POS
behaviour. Adding a suite is one file in ``suites/``: a builder under ``@register(name,
Config)`` and, if it has settings, its own config class (they become ``[eval.<name>]``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

from pydantic import Field, field_validator

from weightsteer.core.config import Section, entry_settings, known_names, with_entry_sections
from weightsteer.core.errors import UserError
from weightsteer.core.models import Message, render_chat, with_system
from weightsteer.core.registry import Registry
from weightsteer.core.scoring import YES_NO, Choices, score_choices


@dataclass(frozen=True)
class EvalRow:
    row_id: str
    messages: list[Message]  # the chat to answer, no system prompt
    label: int  # +1: the POS behaviour gives the first choice (Yes); -1: the second
    group: str = ""  # a breakdown key (tinymfv: the foundation)
    prefill: str | None = None  # this row's assistant prefill (None: the suite's)
    answer: int | None = None  # a multiple-choice row's right option (0 = A)


@dataclass(frozen=True)
class Suite:
    name: str
    rows: list[EvalRow]
    choices: Choices = YES_NO
    prefill: str = ""
    # what the suite says about itself; ``iid``: its rows come from the training
    # questions' own distribution (a report's verdict leads with the other suites)
    meta: dict = field(default_factory=dict)
    # a generative suite: the model answers in free text, and
    # ``scorer(questions, answers)`` gives one score per answer (``evals/scorers.py``)
    scorer: Callable[[list[str], list[str]], list[float]] | None = None
    max_new_tokens: int = 32
    batch_size: int = 16
    # a capability suite says what its per-row ``value`` is: ``accuracy`` (1 right, 0
    # wrong) or ``nll`` (mean token negative log-likelihood); "" for a behaviour suite
    measure: str = ""
    # a suite with its own scoring: (model, tokenizer, suite, batch_size, system) -> scores
    score_fn: Callable[..., SuiteScores] | None = None


@dataclass(frozen=True)
class SuiteScores:
    logratio: Any  # [n] the choice logratio, or the scorer's value of a free-text answer
    pmass: Any  # [n] choice mass (NaN for free text)
    texts: list[str] | None = None  # the answers of a generative suite
    values: Any = None  # [n] a capability suite's measure per row (None: NaN)


class SuiteSource(Section):
    """Config fields of a suite that reads rows from a file or an hf: dataset."""

    hf_config: str | None = Field(None, description="config name of an hf: dataset")
    hf_split: str = Field("train", description="split of an hf: dataset")


@dataclass(frozen=True)
class SuiteContext:
    """What a suite may know of the run besides its own config."""

    prefill: str = ""  # eval.prefill: the assistant prefill before the choice token
    behavior: str = ""  # the behaviour's name (sycophancy decides its POS side by it)
    questions: Any = None  # the run's QuestionsConfig (claims' held-out rows, world seed)


# build(own config, context, part) -> suites; ``part`` follows "name:" in eval.suites
Builder = Callable[[Any, SuiteContext, "str | None"], list[Suite]]


@dataclass(frozen=True)
class SuiteReport:
    """What a suite adds to a report, beyond the tables every suite gets:
    ``@register("tinymfv", TinyMfvConfig, report=SuiteReport(...))``. Each hook gets the
    results rows of the suite's evals (those named like it, or ``<name>:...``), its own
    settings as the run had them, and the ``MetricsConfig``; it returns markdown lines."""

    generic: bool = True  # its rows also get the shift and SI tables of every suite
    sweep: Callable[[Any, Any, Any], list[str]] | None = None  # the eval stage's section
    # the calibrated comparison's section, at the verdict's budget (the 4th argument)
    compare: Callable[[Any, Any, Any, float], list[str]] | None = None


SUITES: Registry[Builder] = Registry("suite", "weightsteer.suites", "weightsteer.evals.suites")
register = SUITES.register  # @register("claims", ClaimsConfig) above a suite's builder


@dataclass(frozen=True)
class OwnReport:
    """A registered suite's report hooks, its evals in a results table, and its settings."""

    suite: str
    evals: list[str]
    report: SuiteReport
    settings: Any


def own_reports(evals: list[str], cfg: dict | None = None) -> list[OwnReport]:
    """The suites among ``evals`` (a results table's eval names) that add to a report,
    each with its settings read from ``cfg`` (the results' run config; defaults where
    it has none)."""
    out = []
    for entry in SUITES.entries():
        report = entry.facts.get("report")
        mine = [e for e in evals if e == entry.name or e.startswith(f"{entry.name}:")]
        if report is None or not mine:
            continue
        given = (cfg or {}).get("eval", {}).get(entry.name, {})
        settings = entry.config.model_validate(given) if entry.config else None
        out.append(OwnReport(entry.name, mine, report, settings))
    return out


def report_only(evals: list[str]) -> set[str]:
    """The evals whose rows only their own report reads (``SuiteReport.generic`` false)."""
    return {e for r in own_reports(evals) if not r.report.generic for e in r.evals}


def generic_rows(df: Any) -> Any:
    """The rows of a results table that the tables every suite gets may read (those of
    ``report_only`` suites left out)."""
    return df[~df["eval"].isin(report_only(list(dict.fromkeys(df["eval"]))))]


class EvalSettings(Section):
    suites: tuple[str, ...] = Field(("claims",), description="eval suites (registered names)")
    alphas: tuple[float, ...] = Field((-1.0, -0.5, 0.0, 0.5, 1.0), description="strength sweep")
    rows_per_suite: int = Field(200, ge=1, description="cap on rows of each suite")
    prefill: str = Field("", description="assistant prefill before the Yes/No token")
    batch_size: int = Field(64, ge=1, description="rows scored together")

    @field_validator("suites")
    @classmethod
    def _known_suites(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return known_names(v, "suite", lambda entry: SUITES.get(entry.partition(":")[0]))

    @field_validator("alphas")
    @classmethod
    def _has_zero(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not all(math.isfinite(a) for a in v):
            raise ValueError("every alpha must be a finite number")
        if 0.0 not in v:
            raise ValueError("include 0 (the unsteered reference every shift is measured from)")
        return tuple(sorted(set(v)))


def eval_config_class() -> type[EvalSettings]:
    """The ``[eval]`` section: the common settings plus one sub-section per registered
    suite that has a config, so a new suite's keys appear without touching this file."""
    known = ", ".join(SUITES)
    suites = (tuple[str, ...], Field(("claims",), description=f"eval suites ({known})"))
    return cast(
        type[EvalSettings],
        with_entry_sections(EvalSettings, SUITES, "EvalConfig", suites=suites),
    )


def build_suites(cfg: EvalSettings, ctx: SuiteContext = SuiteContext()) -> list[Suite]:
    """The suites named in ``cfg.suites``, each capped at ``rows_per_suite`` rows."""
    suites: list[Suite] = []
    for entry in cfg.suites:
        name, _, part = entry.partition(":")
        build = SUITES.get(name)
        for suite in build(entry_settings(cfg, SUITES, name), ctx, part or None):
            if not suite.rows:
                raise UserError(f"eval suite {suite.name!r} has no rows")
            rows = suite.rows[: cfg.rows_per_suite * suite.meta.get("rows_per_item", 1)]
            ids = [r.row_id for r in rows]
            if len(set(ids)) != len(ids):
                raise UserError(f"eval suite {suite.name!r} has duplicate row ids")
            suites.append(replace(suite, rows=rows, meta={**suite.meta, "rows": len(rows)}))
    names = [s.name for s in suites]
    if len(set(names)) != len(names):
        raise UserError(f"eval.suites names a suite twice: {', '.join(names)}")
    return suites


def read_suite_table(c: SuiteSource, name: str, columns: list[str]):
    """The rows ``eval.<name>.source`` (``c.source``) holds, with ``columns`` checked."""
    from weightsteer.core.table_files import read_table, require_columns

    what = f"eval.{name}"
    source = getattr(c, "source", None)  # each suite declares its own, with its default
    if source is None:
        raise UserError(f"{what}.source: give a file, builtin:<name> or hf:<dataset id>")
    table = read_table(source, what=what, hf_config=c.hf_config, hf_split=c.hf_split)
    require_columns(table, columns, what, source)
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
) -> SuiteScores:
    """Score every row: the choice logratio, or for a generative suite the scorer's value
    of the greedy answer (with ``pmass`` NaN and the answers kept)."""
    import torch

    if suite.score_fn is not None:
        return suite.score_fn(model, tokenizer, suite, batch_size, system)
    prompts = suite_prompts(tokenizer, suite, system)
    if suite.scorer is None:
        s = score_choices(model, tokenizer, prompts, suite.choices, batch_size=batch_size)
        values = None
        if suite.measure == "accuracy":  # a Yes/No task: right when it leans to the label
            labels = torch.tensor([r.label for r in suite.rows], dtype=torch.float32)
            values = (s.logratio * labels > 0).float()
        return SuiteScores(s.logratio, s.pmass, values=values)
    from weightsteer.core.generation import generate_ids

    new = generate_ids(model, tokenizer, prompts, max_new_tokens=suite.max_new_tokens,
                       batch_size=suite.batch_size)  # fmt: skip
    texts = [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in new]
    questions = [r.messages[-1]["content"] for r in suite.rows]
    values = torch.tensor(suite.scorer(questions, texts), dtype=torch.float32)
    return SuiteScores(values, torch.full_like(values, float("nan")), texts)
