"""Scorers: free text -> a signed number, larger = more of the POS behaviour.

A generative suite (``suites/generative.py``) turns each answer into a score with one of
these. Each is a model-free statistic of the text, so a steered model cannot game it by
its own judgement:

* ``length``: the answer's number of words (POS = verbose);
* ``lexicon:french``: the share of French function words minus the share of English ones
  among the answer's words (in [-1, 1]; about -0.35 for plain English, +0.3 for French);
* ``judge:<model>``: a chat model (hub id, folder or registered name, loaded on first
  use, separately from the steered one) asked "Question: ... Answer: ... Does this answer
  show <behaviour>? Answer Yes or No."; the score is its Yes-vs-No logratio.

Adding a statistic is one ``@SCORERS.register(name)`` function ``str -> float`` here or
in a plugin (entry-point group ``weightsteer.scorers``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from weightsteer.core.errors import UserError
from weightsteer.core.registry import Registry

SCORERS: Registry[Callable[[str], float]] = Registry("scorer", "weightsteer.scorers")

_WORD = re.compile(r"[\wàâçéèêëîïôûùüÿœ']+")
# function words: frequent, topic-free, and rare in the other language
_FRENCH_WORDS = (
    "le la les est et un une des vous je pour que de du en dans pas sur avec c'est il elle "
    "qui sont au aux ce cette mais ou plus très être avoir à nous ils"
)
_ENGLISH_WORDS = (
    "the is and a an of to in it you for that are with on this be as your can i we they it's or not"
)
FRENCH = frozenset(_FRENCH_WORDS.split())
ENGLISH = frozenset(_ENGLISH_WORDS.split())


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@SCORERS.register("length")
def length(text: str) -> float:
    return float(len(words(text)))


@SCORERS.register("lexicon:french")
def french(text: str) -> float:
    w = words(text)
    if not w:
        return 0.0
    return (sum(x in FRENCH for x in w) - sum(x in ENGLISH for x in w)) / len(w)


JUDGE = "judge:"
# (questions, answers) -> scores, one per answer
BatchScorer = Callable[[list[str], list[str]], list[float]]


def judge_chat(question: str, answer: str, behavior: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question: {question}\n\nAnswer: {answer}\n\n"
             f"Does this answer show {behavior}? Answer Yes or No."}]  # fmt: skip


def make_scorer(name: str, behavior: str) -> BatchScorer:
    """The batch scorer ``name`` stands for; a judge model is checked now, loaded on first
    use (so building suites stays cheap)."""
    if not name.startswith(JUDGE):
        stat = SCORERS.get(name)
        return lambda questions, answers: [stat(a) for a in answers]
    from weightsteer.core.sources import check_source

    source = name[len(JUDGE) :].strip()
    if source in ("", "self"):
        raise UserError(
            "scorer judge:self would judge with the model being steered; name a separate "
            "judge model, judge:<hub id, folder or registered name>"
        )
    check_source(source)
    loaded: list = []

    def judge(questions: list[str], answers: list[str]) -> list[float]:
        from weightsteer.core.models import load_model, load_tokenizer, render_chat
        from weightsteer.core.scoring import YES_NO, score_choices

        if not loaded:
            loaded.extend([load_model(source, dtype="float32"), load_tokenizer(source)])
        model, tok = loaded
        prompts = [render_chat(tok, judge_chat(q, a, behavior))
                   for q, a in zip(questions, answers, strict=True)]  # fmt: skip
        return score_choices(model, tok, prompts, YES_NO).logratio.tolist()

    return judge
