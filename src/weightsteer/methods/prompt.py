"""Prompting baselines: the behaviour asked for in the system prompt.

``prompt:simple`` puts the pair's first persona sentence ("Pretend you're an honest
person.") before the chat: the very prompt the weight vector's training answers were
generated under. ``prompt:engineered`` puts the longer written prompt the behaviour ships
(``personas.py``; a persona file's ``engineered_pos`` / ``engineered_neg`` replace it).

Strength: only its sign means anything (+1: the POS prompt, -1: the NEG prompt, 0: none),
so calibration measures the KL a prompt costs instead of tuning it. The model itself is
never changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from weightsteer.core.served import BASE, ServedAs
from weightsteer.methods import Candidate, Intervention, MethodInputs, register


@dataclass(frozen=True, kw_only=True)
class PromptSteering(Intervention):
    method: str
    pos: str
    neg: str
    discrete: bool = True

    def system_prompt(self, strength: float) -> str | None:
        return self.pos if strength > 0 else self.neg if strength < 0 else None

    def served(self, strength: float) -> ServedAs:
        return BASE  # the system prompt is in the prompt's tokens


def _candidate(method: str, pos: str, neg: str) -> list[Candidate]:
    build = lambda: PromptSteering(method=method, pos=pos, neg=neg)  # noqa: E731
    return [Candidate(method, "", 0, {"pos": pos, "neg": neg}, build)]


@register("prompt:simple")
def simple_prompt(inputs: MethodInputs, settings: None) -> list[Candidate]:
    return _candidate("prompt:simple", inputs.pair.pos[0], inputs.pair.neg[0])


def _check_engineered(pair: Any, run: Any) -> None:
    pair.engineered_prompts()  # refuses a behaviour with no engineered prompt


@register("prompt:engineered", check=_check_engineered)
def engineered_prompt(inputs: MethodInputs, settings: None) -> list[Candidate]:
    return _candidate("prompt:engineered", *inputs.pair.engineered_prompts())
