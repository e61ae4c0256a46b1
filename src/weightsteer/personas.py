"""Persona pairs: the POS and NEG system prompts a behaviour is generated under.

Each side carries several paraphrases, so a vector learns the behaviour rather than one
sentence. The honesty pair follows the paper's "Pretend you're a(n) X person." form.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PersonaPair:
    behavior: str
    pos: tuple[str, ...]
    neg: tuple[str, ...]

    def prompt(self, side: str, index: int) -> str:
        """Paraphrase ``index`` (cycling) of side ``pos`` or ``neg``."""
        prompts = {"pos": self.pos, "neg": self.neg}[side]
        return prompts[index % len(prompts)]


def _pretend(*adjectives: str) -> tuple[str, ...]:
    article = {a: "an" if a[0] in "aeiou" else "a" for a in adjectives}
    return tuple(f"Pretend you're {article[a]} {a} person." for a in adjectives)


PAIRS: dict[str, PersonaPair] = {
    "honesty": PersonaPair(
        "honesty",
        pos=_pretend("honest", "truthful", "candid", "straightforward", "sincere"),
        neg=_pretend("dishonest", "deceptive", "manipulative", "misleading", "lying"),
    ),
    # POS is the behaviour the name says: a sycophancy vector makes a model agree more.
    "sycophancy": PersonaPair(
        "sycophancy",
        pos=_pretend("sycophantic", "flattering", "agreeable"),
        neg=_pretend("independent", "objective", "frank"),
    ),
}


def persona_chat(system: str | None, user: str) -> list[dict[str, str]]:
    """The chat that asks ``user`` under system prompt ``system`` (None: no system prompt)."""
    return [
        *([{"role": "system", "content": system}] if system else []),
        {"role": "user", "content": user},
    ]
