"""Prompting with a dose: a persona prompt's effect scaled like any other method's, so
prompting enters the comparison at the same KL as the rest.

At strength ``s`` the next-token distribution is the geometric mix of the unprompted
model and the model under the prompt (``core/dose.py``)::

    log p = (1 - |s|) log p(. | chat) + |s| log p(. | prompt + chat) - log Z

with the POS prompt for ``s > 0`` and the NEG prompt for ``s < 0``. ``|s| = 1`` is the
prompt itself (``prompt:simple`` or ``prompt:engineered``, which stay as they are, at
their one fixed dose), ``|s| < 1`` part of its effect, ``|s| > 1`` classifier-free
guidance (Sanchez et al. 2023). Generation and scoring both read the mix, so its
strength is calibrated to every budget like a steering vector's. Strength 0 is the
unprompted model bit for bit (no second forward is run). Each dosed forward costs two.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from weightsteer.core.config import Section, entry_settings
from weightsteer.core.dose import Dose, dosing
from weightsteer.core.served import BASE, ServedAs
from weightsteer.methods import (
    METHODS,
    Candidate,
    Intervention,
    MethodInputs,
    SetStrength,
    register,
)


class DosedConfig(Section):
    prompt: Literal["simple", "engineered"] = Field(
        "simple", description="the persona prompt dosed: prompt:simple's or prompt:engineered's"
    )


@dataclass(frozen=True, kw_only=True)
class DosedPrompt(Intervention):
    method: str = "prompt:dosed"
    pos: str
    neg: str

    def served(self, strength: float) -> ServedAs:
        if strength == 0:
            return BASE
        return ServedAs(why_not="prompt:dosed mixes two contexts' logits at every token, "
                        "which stock vLLM cannot")  # fmt: skip

    @contextmanager
    def attach(self, model: Any) -> Iterator[SetStrength]:
        with dosing(model) as set_dose:

            def set_strength(s: float) -> None:
                s = float(s)
                set_dose(None if s == 0 else Dose(self.pos if s > 0 else self.neg, abs(s)))

            yield set_strength


def _check(pair: Any, run: Any) -> None:
    if entry_settings(run.compare, METHODS, "prompt:dosed").prompt == "engineered":
        pair.engineered_prompts()  # refuses a behaviour with no engineered prompt


@register("prompt:dosed", DosedConfig, check=_check)
def dosed_prompt(inputs: MethodInputs, cfg: DosedConfig) -> list[Candidate]:
    if cfg.prompt == "engineered":
        pos, neg = inputs.pair.engineered_prompts()
    else:
        pos, neg = inputs.pair.pos[0], inputs.pair.neg[0]
    build = lambda: DosedPrompt(pos=pos, neg=neg)  # noqa: E731
    return [Candidate("prompt:dosed", "", 0, {"pos": pos, "neg": neg, "dosed": True}, build)]
