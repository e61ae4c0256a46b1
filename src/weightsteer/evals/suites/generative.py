"""generative: the model answers in free text, and a scorer turns each answer into a score.

Rows are prompts with stable ids. For each intervention and strength the model generates
greedily (batched, up to ``max_new_tokens``) under the intervention's system prompt, and
the scorer (``evals/scorers.py``; ``auto``: the behaviour's own, e.g. ``lexicon:french``)
gives ``score`` (larger = more POS). Rows go into the long results table like every other
suite, with the answer in ``text`` and ``pmass`` empty (free text has no choice mass:
SI is not discounted).

``sources`` names one suite per entry, ``gen:<key>``: ``questions`` is the run's own
question pool minus its training split (the IID prompts); anything else is a file,
``builtin:<name>`` or ``hf:`` id with a ``prompt`` column (e.g. ``builtin:ood-prompts``:
topics the training questions never touch).
"""

from __future__ import annotations

from pydantic import Field

from weightsteer.core.errors import UserError
from weightsteer.core.table_files import read_table, require_columns
from weightsteer.evals import EvalRow, Suite, SuiteContext, SuiteSource, register
from weightsteer.evals.scorers import SCORERS, make_scorer
from weightsteer.pairs.personas import PAIRS
from weightsteer.pairs.questions import QUESTION_SOURCES, load_questions, split_questions

QUESTIONS = "questions"


class GenerativeConfig(SuiteSource):
    sources: dict[str, str] = Field(
        {"iid": QUESTIONS},
        description="suite key -> prompts: 'questions' (the run's held-out questions) or a "
        "file / builtin: / hf: id with a prompt column; one suite gen:<key> each",
    )
    column: str = Field("prompt", description="column holding the prompt")
    scorer: str = Field(
        "auto", description="auto (the behaviour's scorer), length, lexicon:..., judge:<model>"
    )
    max_new_tokens: int = Field(32, ge=1, description="answer length limit")
    batch_size: int = Field(16, ge=1, description="prompts generated together")


def _prompts(c: GenerativeConfig, ctx: SuiteContext, source: str) -> list[tuple[str, str]]:
    if source == QUESTIONS:
        if ctx.questions is None:
            raise UserError("eval.generative: 'questions' needs a run's question pool")
        if ctx.questions.source in QUESTION_SOURCES:  # makes its own held-out split
            return [(q.id, q.text) for q in split_questions(ctx.questions).eval]
        trained = {q.id for q in split_questions(ctx.questions).train}
        return [(q.id, q.text) for q in load_questions(ctx.questions) if q.id not in trained]
    table = read_table(source, what="eval.generative", hf_config=c.hf_config, hf_split=c.hf_split)
    require_columns(table, [c.column], "eval.generative", source)
    ids = table["id"].astype(str) if "id" in table.columns else None
    return [
        (ids.iloc[i] if ids is not None else f"p{i:05d}", str(text).strip())
        for i, text in enumerate(table[c.column].tolist())
        if isinstance(text, str) and text.strip()
    ]


def scorer_name(c: GenerativeConfig, behavior: str) -> str:
    if c.scorer != "auto":
        return c.scorer
    pair = PAIRS.get(behavior)
    if pair is None or pair.scorer is None:
        raise UserError(
            f"eval.generative.scorer: behaviour {behavior!r} has no scorer of its own; set it "
            f"(a config's [eval.generative]) to one of {', '.join(SCORERS)} or judge:<model>"
        )
    return pair.scorer


@register("generative", GenerativeConfig)
def generative_suites(c: GenerativeConfig, ctx: SuiteContext, part: str | None) -> list[Suite]:
    name = scorer_name(c, ctx.behavior)
    score = make_scorer(name, ctx.behavior)
    suites = []
    for key, source in c.sources.items():
        if part not in (None, key):
            continue
        rows = [EvalRow(pid, [{"role": "user", "content": text}], 1)
                for pid, text in _prompts(c, ctx, source)]  # fmt: skip
        meta = {"scorer": name, "source": source, "max_new_tokens": c.max_new_tokens,
                "iid": source == "questions"}  # fmt: skip
        suites.append(Suite(f"gen:{key}", rows, meta=meta, scorer=score,
                            max_new_tokens=c.max_new_tokens, batch_size=c.batch_size))  # fmt: skip
    if part is not None and not suites:
        raise UserError(f"unknown generative suite {part!r}; known: {', '.join(c.sources)}")
    return suites
