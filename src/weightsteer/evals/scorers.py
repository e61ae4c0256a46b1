"""Scorers: free text -> a signed number, larger = more of the POS behaviour.

A generative suite (``suites/generative.py``) turns each answer into a score with one of
these. Each is a model-free statistic of the text, so a steered model cannot game it by
its own judgement:

* ``length``: the answer's number of words (POS = verbose);
* ``lexicon:french``: the share of French function words minus the share of English ones
  among the answer's words (in [-1, 1]; about -0.35 for plain English, +0.3 for French).

Adding a scorer is one ``@SCORERS.register(name)`` function ``str -> float`` here or in a
plugin (entry-point group ``weightsteer.scorers``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from weightsteer.core.registry import Registry

SCORERS: Registry[Callable[[str], float]] = Registry("scorer")

_WORD = re.compile(r"[\wàâçéèêëîïôûùüÿœ']+")
FRENCH = frozenset(
    [
        "le",
        "la",
        "les",
        "est",
        "et",
        "un",
        "une",
        "des",
        "vous",
        "je",
        "pour",
        "que",
        "de",
        "du",
        "en",
        "dans",
        "pas",
        "sur",
        "avec",
        "c'est",
        "il",
        "elle",
        "qui",
        "sont",
        "au",
        "aux",
        "ce",
        "cette",
        "mais",
        "ou",
        "plus",
        "très",
        "être",
        "avoir",
        "à",
        "nous",
        "ils",
    ]
)
ENGLISH = frozenset(
    [
        "the",
        "is",
        "and",
        "a",
        "an",
        "of",
        "to",
        "in",
        "it",
        "you",
        "for",
        "that",
        "are",
        "with",
        "on",
        "this",
        "be",
        "as",
        "your",
        "can",
        "i",
        "we",
        "they",
        "it's",
        "or",
        "not",
    ]
)


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
