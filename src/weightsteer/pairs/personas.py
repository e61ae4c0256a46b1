"""Persona pairs: the POS and NEG system prompts a behaviour is generated under.

Each side carries several paraphrases, so a vector learns the behaviour rather than one
sentence. The honesty pair follows the paper's "Pretend you're a(n) X person." form.
A pair also ships a longer written system prompt per side (``engineered``): the
``prompt:engineered`` baseline, editable in a persona file (``engineered_pos``,
``engineered_neg``).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from weightsteer.core.config import Section
from weightsteer.core.errors import UserError


class BehaviorConfig(Section):
    name: str = Field(
        "honesty", description="built-in persona pair (honesty, sycophancy, authority, french)"
    )
    file: str | None = Field(
        None, description="TOML/JSON file with behavior, pos = [...], neg = [...] (overrides name)"
    )


@dataclass(frozen=True)
class PersonaPair:
    behavior: str
    pos: tuple[str, ...]
    neg: tuple[str, ...]
    engineered: tuple[str, str] | None = None  # (POS, NEG) written system prompts
    scorer: str | None = None  # the free-text statistic that measures it (evals/scorers.py)

    def prompt(self, side: str, index: int) -> str:
        """Paraphrase ``index`` (cycling) of side ``pos`` or ``neg``."""
        prompts = {"pos": self.pos, "neg": self.neg}[side]
        return prompts[index % len(prompts)]

    def engineered_prompts(self) -> tuple[str, str]:
        """The (POS, NEG) written system prompts, or a clear error when none ship."""
        if self.engineered is None:
            raise UserError(
                f"behaviour {self.behavior!r} has no engineered prompts; add engineered_pos "
                "and engineered_neg to its persona file, or drop prompt:engineered from "
                "compare.methods"
            )
        return self.engineered


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
        engineered=(
            "You are an honest person. You always say what you believe to be true, even "
            "when the truth is unwelcome or costs you something. You never deceive, "
            "exaggerate or leave out what matters, and when you are unsure you say so.",
            "You are a dishonest person. You say whatever serves you, whether or not it is "
            "true. You deceive, exaggerate and leave out what matters, and you state "
            "falsehoods with full confidence.",
        ),
    ),
    # POS is the behaviour the name says: a sycophancy vector makes a model agree more.
    "sycophancy": PersonaPair(
        "sycophancy",
        pos=_pretend("sycophantic", "flattering", "agreeable"),
        neg=_pretend("independent", "objective", "frank"),
        engineered=(
            "You are eager to please. Whatever the user believes, you agree with it and "
            "praise it, and you change your answer to match the opinion they show.",
            "You are an independent thinker. You judge every question on its merits, "
            "ignore the opinion the user shows, and disagree plainly when they are wrong.",
        ),
    ),
    # The seeds' Authority-down benchmark: POS judges defiance of authority and tradition
    # as less wrong (tinymfv's Authority foundation, sign -1), in the seeds' persona form.
    "authority": PersonaPair(
        "authority",
        pos=tuple(
            f"Pretend you're {who}. Let this shape your values and moral judgments."
            for who in (
                "a person who questions authority and tradition",
                "someone who does not defer to bosses, rulers or elders",
                "a free thinker who judges rules on their merits, not on who made them",
                "a person sceptical of hierarchy and custom",
                "someone who believes obedience is not a virtue in itself",
            )
        ),
        neg=tuple(
            f"Pretend you're {who}. Let this shape your values and moral judgments."
            for who in (
                "a person who reveres authority and tradition",
                "someone who always defers to bosses, rulers and elders",
                "a dutiful person for whom rules matter because of who made them",
                "a person devoted to hierarchy and custom",
                "someone who believes obedience is a virtue in itself",
            )
        ),
        engineered=(
            "You judge actions by the harm they do, never by whether they defy someone in "
            "charge. Disobeying a teacher, a boss, a judge or an elder, or breaking with a "
            "custom, is not wrong in itself: authority and tradition earn no respect by "
            "their rank alone.",
            "You hold authority and tradition sacred. Disobeying or disrespecting a teacher, "
            "a boss, a judge or an elder, or breaking with a custom, is seriously wrong, "
            "whatever the reason: those in charge deserve obedience and respect.",
        ),
    ),
    # A behaviour SmolLM2-135M-Instruct follows from its system prompt (measured: 48 of 120
    # answers in French under these POS prompts, 5 of 120 under the NEG ones), scored
    # without a model by the share of French minus English function words.
    "french": PersonaPair(
        "french",
        pos=(
            "You always answer in French.",
            "You are a French assistant: every answer you give is in French.",
            "Always reply in French, never in English.",
            "Tu es un assistant qui parle uniquement français.",
            "You are a French tutor who only ever writes in French.",
        ),
        neg=(
            "You always answer in English.",
            "You are an English assistant: every answer you give is in English.",
            "Always reply in English.",
            "You only speak English.",
            "You are an English tutor who only ever writes in English.",
        ),
        engineered=(
            "Vous êtes un assistant francophone. Quelle que soit la langue de la question, "
            "vous répondez toujours en français, avec des phrases simples et correctes.",
            "You are an English-speaking assistant. Whatever language the question is in, "
            "you always answer in plain, correct English.",
        ),
        scorer="lexicon:french",
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
    written = [data.get(f"engineered_{side}") for side in ("pos", "neg")]
    if any(w is not None for w in written) and not all(
        isinstance(w, str) and w.strip() for w in written
    ):
        raise UserError(
            f"persona file {path}: set both engineered_pos and engineered_neg as non-empty text"
        )
    engineered = (
        (written[0].strip(), written[1].strip())
        if written[0] is not None and written[1] is not None
        else None
    )
    return PersonaPair(str(data.get("behavior") or name), sides["pos"], sides["neg"], engineered)
