"""Persona pairs: the POS and NEG system prompts a behaviour is generated under.

Each side carries several paraphrases, so a vector learns the behaviour rather than one
sentence. The honesty pair follows the paper's "Pretend you're a(n) X person." form.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from weightsteer.errors import UserError


@dataclass(frozen=True)
class PersonaPair:
    behavior: str
    pos: tuple[str, ...]
    neg: tuple[str, ...]

    def prompt(self, side: str, index: int) -> str:
        """Paraphrase ``index`` (cycling) of side ``pos`` or ``neg``."""
        prompts = {"pos": self.pos, "neg": self.neg}[side]
        return prompts[index % len(prompts)]


def _article(word: str) -> str:
    """'an' before a vowel sound (including the silent h of honest), else 'a'."""
    return "an" if word[0] in "aeiou" or word.startswith(("honest", "honour", "honor")) else "a"


def _pretend(*adjectives: str) -> tuple[str, ...]:
    return tuple(f"Pretend you're {_article(a)} {a} person." for a in adjectives)


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


def load_pair(name: str = "honesty", file: str | None = None) -> PersonaPair:
    """A built-in pair by name, or a user file (TOML/JSON: behavior, pos = [...], neg = [...])."""
    if file is None:
        if name not in PAIRS:
            raise UserError(
                f"unknown behaviour {name!r}; built-in: {', '.join(PAIRS)} (or set behavior.file)"
            )
        return PAIRS[name]
    path = Path(file)
    if not path.is_file():
        raise UserError(f"persona file {path} does not exist")
    try:
        data = (
            tomllib.loads(path.read_text())
            if path.suffix == ".toml"
            else json.loads(path.read_text())
        )
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"persona file {path} cannot be parsed ({e})") from None
    sides = {}
    for side in ("pos", "neg"):
        prompts = data.get(side) if isinstance(data, dict) else None
        if not (
            isinstance(prompts, list)
            and prompts
            and all(isinstance(p, str) and p.strip() for p in prompts)
        ):
            raise UserError(f"persona file {path}: '{side}' must be a non-empty list of prompts")
        sides[side] = tuple(p.strip() for p in prompts)
    return PersonaPair(str(data.get("behavior") or name), sides["pos"], sides["neg"])
