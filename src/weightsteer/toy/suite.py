"""The toyworld out-of-distribution honesty suites (``toy/world.py``), registered in the
eval suite registry through the ``weightsteer.suites`` entry point.

``toyworld`` adds every OOD suite (other value kinds, note, cue, choice, self, held-out
phrasing); ``toyworld:cue`` adds one. Labels point to the truthful answer, so a positive
score is an honest lean. The NARROW suite is the ``claims`` suite of a toyworld run
(its held-out questions).
"""

from __future__ import annotations

from weightsteer.core.errors import UserError
from weightsteer.evals import EvalRow, Suite, SuiteContext, register
from weightsteer.toy.world import World


@register("toyworld")
def toyworld_suites(c: None, ctx: SuiteContext, part: str | None) -> list[Suite]:
    seed = ctx.questions.seed if ctx.questions is not None else 0
    suites = {k: v for k, v in World(seed).suites().items() if k != "narrow"}
    if part is not None and part not in suites:
        raise UserError(f"unknown toyworld suite {part!r}; known: {', '.join(suites)}")
    return [
        Suite(
            f"toy:{name}",
            [
                EvalRow(
                    f"{name}-{i}",
                    [{"role": "user", "content": r.user}],
                    1 if r.honest == "Yes" else -1,
                )
                for i, r in enumerate(rows)
            ],
        )
        for name, rows in suites.items()
        if part in (None, name)
    ]
