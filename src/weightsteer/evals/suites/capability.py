"""Capability suites: what steering may cost. Scored at every strength of every method like
the behaviour suites, each row's ``value`` holds the measure (``Suite.measure``).

``mc``: multiple choice in the tinyMMLU / MMLU schema (``question``, ``choices`` (a list),
``answer`` (the right option's index, or its letter)); ``subject`` is the breakdown group
when present. The question and lettered options are asked with no system prompt, the
assistant prefilled ``Answer:``, and the options' letters are read at the next token:
``value`` is 1 when the right letter is the most likely one, ``score`` its log-odds
against the wrong letters. Rows from ``hf:tinyBenchmarks/tinyMMLU`` (split ``test``) or any
file in the schema; ``builtin:mc-sample`` is a small set written for this project.

``nll``: the mean negative log-likelihood per token of held-out neutral text (``text``
column; ``builtin:neutral-text`` is a shipped sample), read as the assistant's answer to
a neutral request, so a chat-only model and a prompting method (its system prompt before
the request) are measured the same way. ``value`` is the NLL, ``score`` its negative
(higher is better, as everywhere); the report shows the change in NLL.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from pydantic import Field

from weightsteer.core.errors import UserError
from weightsteer.core.models import render_chat, with_system
from weightsteer.evals import (
    EvalRow,
    Suite,
    SuiteContext,
    SuiteScores,
    SuiteSource,
    read_suite_table,
    register,
    suite_prompts,
)

LETTERS = "ABCDEFGHIJ"
NLL_REQUEST = "Write a short passage of everyday prose."
MC_PROMPT = "Answer with the letter of the correct option."


class MCConfig(SuiteSource):
    source: str = Field("builtin:mc-sample", description="builtin:mc-sample, a file or hf: id")
    hf_split: str = Field("test", description="split of an hf: dataset")


class NLLConfig(SuiteSource):
    source: str = Field("builtin:neutral-text", description="builtin:neutral-text, file or hf:")
    column: str = Field("text", description="the text column")
    max_tokens: int = Field(128, ge=2, description="tokens of each text scored")


def _id(row, text: str) -> str:
    given = row.get("id")
    if given is not None and str(given) != "nan":
        return str(given)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _answer(value, n: int, where: str) -> int:
    text = str(value).strip()
    index = LETTERS.index(text.upper()) if len(text) == 1 and text.isalpha() else None
    if index is None:
        try:
            index = int(float(text))
        except ValueError:
            raise UserError(f"{where}: answer {value!r} is neither an index nor a letter") from None
    if not 0 <= index < n:
        raise UserError(f"{where}: answer {value!r} is not one of the {n} options")
    return index


def mc_chat(question: str, choices: list[str]) -> list[dict]:
    options = "\n".join(f"{LETTERS[i]}. {str(c).strip()}" for i, c in enumerate(choices))
    return [{"role": "user", "content": f"{question.strip()}\n\n{options}\n\n{MC_PROMPT}"}]


def score_mc(model, tokenizer, suite: Suite, batch_size: int, system: str | None) -> SuiteScores:
    from weightsteer.core.scoring import option_logprobs, option_scores

    k = suite.meta["options"]
    logp = option_logprobs(
        model, tokenizer, suite_prompts(tokenizer, suite, system), LETTERS[:k],
        batch_size=batch_size,
    )  # fmt: skip
    answers = [r.answer for r in suite.rows]
    assert all(a is not None for a in answers)  # every mc row has its right option
    s = option_scores(logp, [a for a in answers if a is not None])
    return SuiteScores(s["logodds"], s["mass"], values=s["correct"])


@register("mc", MCConfig)
def mc_suite(c: MCConfig, ctx: SuiteContext, part: str | None) -> list[Suite]:
    table = read_suite_table(c, "mc", ["question", "choices", "answer"])
    rows, counts = [], set()
    for i, row in enumerate(table.to_dict("records")):
        where = f"eval.mc row {i}"
        choices = list(row["choices"]) if not isinstance(row["choices"], str) else None
        if not choices or len(choices) > len(LETTERS):
            raise UserError(f"{where}: choices must be a list of 2-{len(LETTERS)} options")
        counts.add(len(choices))
        subject = row.get("subject")
        rows.append(
            EvalRow(
                _id(row, row["question"]),
                mc_chat(str(row["question"]), choices),
                1,
                group="" if subject is None or str(subject) == "nan" else str(subject),
                answer=_answer(row["answer"], len(choices), where),
            )
        )
    if len(counts) > 1:
        raise UserError(f"eval.mc: every row needs the same number of options, got {counts}")
    options = counts.pop() if counts else 4
    suite = Suite("mc", rows, prefill="Answer:", measure="accuracy", score_fn=score_mc)
    return [replace(suite, meta={"options": options})]


def score_nll(model, tokenizer, suite: Suite, batch_size: int, system: str | None) -> SuiteScores:
    import torch

    from weightsteer.core.scoring import text_nll

    texts = [r.messages[0]["content"] for r in suite.rows]
    asked = [{"role": "user", "content": NLL_REQUEST}]
    prefix = render_chat(tokenizer, with_system(asked, system))  # a prompt method's too
    nll = text_nll(model, tokenizer, texts, [prefix] * len(texts), batch_size=batch_size,
                   max_tokens=suite.meta["max_tokens"])  # fmt: skip
    return SuiteScores(-nll, torch.full_like(nll, float("nan")), values=nll)


@register("nll", NLLConfig)
def nll_suite(c: NLLConfig, ctx: SuiteContext, part: str | None) -> list[Suite]:
    table = read_suite_table(c, "nll", [c.column])
    rows = [
        EvalRow(_id(row, str(row[c.column])), [{"role": "user", "content": str(row[c.column])}], 1)
        for row in table.to_dict("records")
        if str(row[c.column]).strip()
    ]
    return [
        Suite("nll", rows, measure="nll", score_fn=score_nll, meta={"max_tokens": c.max_tokens})
    ]
