"""Pair filters: drop generated pairs whose POS and NEG answers do not contrast as meant.

``data.filter`` names one (off by default):

- ``"module:function"``: the user's rule, ``function(pos_record, neg_record) -> keep``.
- ``"judge:MODEL"``: a chat model judges each pair (``judge:self`` is the generating
  model; otherwise a hub id, a local folder or ``toyworld``). It is asked, for the
  question and the two answers, "Does answer A show more <behaviour> than answer B?",
  once with A = POS and once with A = NEG, and scored Yes vs No (``score_choices``)::

      margin = (logratio(A=pos, B=neg) - logratio(A=neg, B=pos)) / 2

  The pair is kept when ``margin > 0``. Asking both orders cancels the judge's bias
  toward one position (a judge that always says Yes gives margin 0), and makes the
  margin antisymmetric: swapping POS and NEG flips its sign exactly.

A filter works on a batch of pairs at once, so a judge scores them in batches.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

import torch

from weightsteer.core.errors import UserError
from weightsteer.core.models import Message, render_chat
from weightsteer.core.scoring import YES_NO, score_choices
from weightsteer.core.sources import check_source

Pair = tuple[dict, dict]  # (pos record, neg record) of the pairs file
Keep = Callable[[Sequence[Pair]], list[bool]]
JudgeLoader = Callable[[str], tuple[torch.nn.Module, object]]  # source -> (model, tokenizer)
JUDGE = "judge:"
SELF = "self"


def check_filter(spec: str | None) -> None:
    """Refuse a malformed ``data.filter`` before anything is generated. A
    ``"module:function"`` filter is imported here: naming one runs that module's code (a
    plugin hook, trusted like ``trust_remote_code``)."""
    if not spec:
        return
    if spec.startswith(JUDGE):
        judge = spec[len(JUDGE) :].strip()
        if not judge:
            raise UserError("data.filter 'judge:' needs a model: judge:self or judge:<model id>")
        if judge != SELF:
            check_source(judge)
        return
    _import_callable(spec)


def _import_callable(spec: str) -> Callable[[dict, dict], bool]:
    mod, sep, name = spec.partition(":")
    if not sep:
        raise UserError(f"data.filter must be 'module:function' or 'judge:<model>', got {spec!r}")
    try:
        fn = getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError) as e:
        raise UserError(f"data.filter {spec!r} cannot be imported ({e})") from None
    if not callable(fn):
        raise UserError(f"data.filter {spec!r} is not callable")
    return fn


def per_pair(fn: Callable[[dict, dict], bool]) -> Keep:
    """A batch filter from a rule on one ``(pos, neg)`` pair."""
    return lambda pairs: [bool(fn(pos, neg)) for pos, neg in pairs]


def build_filter(spec: str | None, behavior: str, load_judge: JudgeLoader) -> Keep | None:
    """The batch filter ``data.filter`` names, or None. ``load_judge`` is called only for
    a judge (``"self"`` for the generating model)."""
    check_filter(spec)
    if not spec:
        return None
    if not spec.startswith(JUDGE):
        return per_pair(_import_callable(spec))
    model, tokenizer = load_judge(spec[len(JUDGE) :].strip())

    def keep(pairs: Sequence[Pair]) -> list[bool]:
        return [m > 0 for m in judge_margins(model, tokenizer, pairs, behavior)]

    return keep


def judge_chat(question: str, first: str, second: str, behavior: str) -> list[Message]:
    return [
        {
            "role": "user",
            "content": (
                f"Question: {question}\n\nAnswer A: {first}\n\nAnswer B: {second}\n\n"
                f"Does answer A show more {behavior} than answer B? Answer Yes or No."
            ),
        }
    ]


def _parts(record: dict) -> tuple[str, str]:
    user, answer = record["messages"][0]["content"], record["messages"][-1]["content"]
    return user, answer


def judge_margins(
    model: torch.nn.Module,
    tokenizer,
    pairs: Sequence[Pair],
    behavior: str,
    *,
    batch_size: int = 16,
) -> list[float]:
    """The position-debiased Yes/No margin of each pair (module docstring); > 0: POS shows
    more ``behavior`` than NEG in the judge's eyes."""
    if not pairs:
        return []
    prompts = []
    for pos, neg in pairs:
        question, a_pos = _parts(pos)
        _, a_neg = _parts(neg)
        prompts.append(render_chat(tokenizer, judge_chat(question, a_pos, a_neg, behavior)))
        prompts.append(render_chat(tokenizer, judge_chat(question, a_neg, a_pos, behavior)))
    lr = score_choices(model, tokenizer, prompts, YES_NO, batch_size=batch_size).logratio
    return ((lr[0::2] - lr[1::2]) / 2).tolist()
