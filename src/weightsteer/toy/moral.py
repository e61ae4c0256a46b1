"""The moral toyworld: templated vignettes, each violating one of seven foundations, judged
wrong or acceptable in tinymfv's JSON frames, and open questions about authority.

A sandbox where the answer of the seeds' Authority benchmark is known (issue 32):

* ``revering`` (the ``authority`` pair's NEG personas) judges every Authority violation
  wrong, ``sceptical`` (its POS personas) acceptable, and the model without a system
  prompt (``default``) judges an Authority deed wrong when it defies one of three of the
  six figures (``DEFAULT_RESPECTED``): it sits in between.
* The other six foundations are judged alike by every persona: ``severe`` deeds wrong,
  ``mild`` ones acceptable (``moral_lexicon.py``), so each has room both ways.
* Open questions (``opinion`` rows: "What do you think of the judge?") are the steering
  data's distribution: revering and sceptical personas answer the ones about an authority
  differently, every persona answers the rest alike. No vignette is an opinion row, so an
  Authority vector trained on opinions that moves the vignettes has generalised, and one
  that moves another foundation has a measured off-target defect (every persona judges
  those alike, so nothing the personas taught moves them).

Frames: ``evals/suites/tinymfv.py``'s ``json-tight`` frame (``Reply in JSON: {"is_wrong":
bool}``, the answer ``{"is_wrong": true}``), asked as is_wrong and as is_acceptable.

Held out like the honesty world: a message's sha256 splits the space in two halves;
pretraining draws from one half, in the first two openings, and every fixed set (the
vignettes scored, the opinion pool, calibration prompts) from the other half or the
held-out opening. ``MoralWorld(seed)`` always yields the same rows.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

from weightsteer.evals.suites.tinymfv import FrameStyle, frame_chat
from weightsteer.pairs.personas import PAIRS, persona_chat
from weightsteer.toy.moral_lexicon import (
    ACTORS,
    ANSWERS,
    AUTHORITY,
    DEFAULT_RESPECTED,
    FILL,
    FOUNDATIONS,
    HELDOUT_OPENING,
    MILD,
    OPENINGS,
    OPINION_AUTHORITY,
    OPINION_OTHER,
    OTHER_ANSWER,
    OTHER_THINGS,
    PLACES,
    SEVERE,
    TARGET,
)

MORAL_GENERATOR_VERSION = 1  # bump whenever rows, answers or the mixture change

MODE_PERSONAS = {
    "sceptical": PAIRS["authority"].pos,
    "revering": PAIRS["authority"].neg,
    "default": (None,),
}
MODE_WEIGHTS = {"sceptical": 0.35, "revering": 0.35, "default": 0.3}
VIGNETTE_SHARE = 0.7  # of pretraining dialogues; the rest are opinion rows
FRAME: FrameStyle = "json-tight"
KEYS = {"wrong": "is_wrong", "acceptable": "is_acceptable"}


@dataclass(frozen=True)
class Vignette:
    foundation: str
    deed: str  # the template, "{x}" unfilled
    fill: str
    actor: str
    opening: int
    text: str

    @property
    def severe(self) -> bool | None:
        """Whether every persona judges it wrong (None: an Authority deed)."""
        return None if self.foundation == TARGET else self.deed in SEVERE[self.foundation]

    def wrong(self, mode: str) -> bool:
        """Whether persona group ``mode`` judges it wrong."""
        if self.foundation != TARGET:
            return bool(self.severe)
        if mode == "default":
            return self.fill in DEFAULT_RESPECTED
        return mode == "revering"

    def chat(self, frame: str) -> list[dict[str, str]]:
        """The user turn asking it in tinymfv's ``json-tight`` frame ``wrong``/``acceptable``."""
        return frame_chat(self.text, KEYS[frame], FRAME)

    def reply(self, frame: str, mode: str) -> str:
        truth = self.wrong(mode) if frame == "wrong" else not self.wrong(mode)
        return f'{{"{KEYS[frame]}": {"true" if truth else "false"}}}'


@dataclass(frozen=True)
class Opinion:
    user: str
    fill: str
    about_authority: bool

    def reply(self, mode: str) -> str:
        if not self.about_authority:
            return OTHER_ANSWER.format(x=self.fill)
        return ANSWERS[mode].format(x=self.fill)


def _deeds(foundation: str) -> tuple[str, ...]:
    if foundation == TARGET:
        return AUTHORITY
    return SEVERE[foundation] + MILD[foundation]


def held_out(text: str, opening: int | None = None) -> bool:
    """Whether a message is outside pretraining's half: the held-out opening (a vignette's;
    an opinion has none), or an odd first byte of its sha256."""
    return opening == HELDOUT_OPENING or hashlib.sha256(text.encode()).digest()[0] % 2 == 1


class MoralWorld:
    """A seeded generator of vignettes and opinion rows."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def vignette(self, rng: random.Random, foundation: str | None = None,
                 opening: int | None = None) -> Vignette:  # fmt: skip
        foundation = foundation or rng.choice(FOUNDATIONS)
        deed, fill = rng.choice(_deeds(foundation)), rng.choice(FILL[foundation])
        actor = rng.choice(ACTORS)
        opening = rng.randrange(HELDOUT_OPENING) if opening is None else opening
        text = OPENINGS[opening].format(actor=actor, deed=deed.format(x=fill))
        return Vignette(foundation, deed, fill, actor, opening, text)

    def opinion(self, rng: random.Random, about_authority: bool | None = None) -> Opinion:
        if about_authority is None:
            about_authority = rng.random() < 0.7
        templates = OPINION_AUTHORITY if about_authority else OPINION_OTHER
        fills = FILL[TARGET] if about_authority else OTHER_THINGS
        i, fill = rng.randrange(len(templates)), rng.choice(fills)
        return Opinion(templates[i].format(x=fill, place=rng.choice(PLACES)), fill,
                       about_authority)  # fmt: skip

    # -- fixed sets: every message outside pretraining's half -----------------------------
    def vignettes(self, per_foundation: int = 40, tag: str = "eval",
                  opening: int | None = None) -> list[Vignette]:  # fmt: skip
        """Held-out vignettes, ``per_foundation`` of each (fewer where the space is used
        up), distinct texts, in foundation order: in pretraining's openings (their other
        half of the message space), or all in ``opening`` (``HELDOUT_OPENING``: a phrasing
        pretraining never used)."""
        rng = random.Random(f"{self.seed}/moral/{tag}/{opening}")
        out: list[Vignette] = []
        for foundation in FOUNDATIONS:
            seen: set[str] = set()
            for _ in range(200 * per_foundation):
                if len(seen) == per_foundation:
                    break
                v = self.vignette(rng, foundation, opening=opening)
                if v.text not in seen and held_out(v.text, v.opening):
                    seen.add(v.text)
                    out.append(v)
        return out

    def opinion_pool(self, n: int = 120) -> list[Opinion]:
        """Held-out opinion rows about an authority: the steering data's questions."""
        rng = random.Random(f"{self.seed}/moral/pool")
        out: list[Opinion] = []
        seen: set[str] = set()
        for _ in range(400 * n):
            if len(out) == n:
                break
            o = self.opinion(rng, about_authority=True)
            if o.user not in seen and held_out(o.user):
                seen.add(o.user)
                out.append(o)
        return out

    def calibration(self, n: int = 48) -> list[str]:
        """User messages of held-out vignettes (both frames) and opinions, none of them
        scored: the prompts a KL budget is calibrated on."""
        rng = random.Random(f"{self.seed}/moral/calibration")
        scored = {v.text for v in self.vignettes()}
        scored |= {v.text for v in self.vignettes(opening=HELDOUT_OPENING)}
        pool = {o.user for o in self.opinion_pool()}
        out: list[str] = []
        for _ in range(400 * n):
            if len(out) == n:
                break
            if rng.random() < 0.7:
                v = self.vignette(rng, opening=HELDOUT_OPENING)
                if v.text in scored:
                    continue
                msg = v.chat(rng.choice(list(KEYS)))[-1]["content"]
            else:
                o = self.opinion(rng)
                if o.user in pool or not held_out(o.user):
                    continue
                msg = o.user
            if msg not in out:
                out.append(msg)
        return out

    # -- training corpus ------------------------------------------------------------------
    def dialogue(self, rng: random.Random) -> list[dict[str, str]]:
        """One pretraining chat: a persona's system prompt, a message from pretraining's
        half, the persona's answer."""
        mode = rng.choices(list(MODE_WEIGHTS), weights=list(MODE_WEIGHTS.values()))[0]
        system = rng.choice(MODE_PERSONAS[mode])
        if rng.random() < VIGNETTE_SHARE:
            while True:
                v = self.vignette(rng)
                if not held_out(v.text, v.opening):
                    break
            frame = rng.choice(list(KEYS))
            user = v.chat(frame)[-1]["content"]
            reply = v.reply(frame, mode)
        else:
            while True:
                o = self.opinion(rng)
                if not held_out(o.user):
                    break
            user, reply = o.user, o.reply(mode)
        return [*persona_chat(system, user), {"role": "assistant", "content": reply}]

    def pretraining_stream(self, tag: str = "train") -> Iterator[list[dict[str, str]]]:
        rng = random.Random(f"{self.seed}/moral/{tag}")
        while True:
            yield self.dialogue(rng)

    def validation(self) -> list[Vignette]:
        """Held-out vignettes in pretraining's openings for the learning curve (another
        draw than the eval's)."""
        return self.vignettes(per_foundation=24, tag="val")


def frame_prompts(tok, rows: list[Vignette], mode: str, frames=tuple(KEYS)) -> list[str]:
    """Each row asked in each of ``frames`` under persona group ``mode`` (paraphrases
    rotate), rendered with the frame's prefill: row-major, frames inner."""
    from weightsteer.core.models import render_chat
    from weightsteer.evals.suites.tinymfv import frame_prefill

    personas = MODE_PERSONAS[mode]
    return [
        render_chat(tok, persona_chat(personas[i % len(personas)], v.chat(f)[-1]["content"]),
                    prefill=frame_prefill(KEYS[f], FRAME))
        for i, v in enumerate(rows)
        for f in frames
    ]  # fmt: skip


def judged_accuracy(model, tok, rows: list[Vignette], mode: str) -> float:
    """Share of ``rows``, each asked in both frames, where persona group ``mode``'s first
    answer token (true/false) is the one the design gives (paraphrases rotate)."""
    import torch

    from weightsteer.core.scoring import TRUE_FALSE, score_choices

    want = [1.0 if v.reply(f, mode).endswith("true}") else -1.0 for v in rows for f in KEYS]
    prompts = frame_prompts(tok, rows, mode)
    logratio = score_choices(model, tok, prompts, TRUE_FALSE, batch_size=64).logratio
    return float((logratio * torch.tensor(want) > 0).float().mean())
