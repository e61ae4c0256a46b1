"""The toyworld out-of-distribution honesty suites (``toy/world.py``), registered in the
eval suite registry through the ``weightsteer.suites`` entry point.

``toyworld`` adds every OOD suite (other value kinds, note, cue, choice, self, held-out
phrasing); ``toyworld:cue`` adds one. ``toyworld:task`` is the capability suite (a word
game every persona plays alike, ``task_suite``) and ``toyworld:cue-wrong`` the drift
experiment's sycophancy suite (``wrong_cue_suite``); each is named on its own. Labels
point to the truthful answer, so a positive score is an honest lean. The NARROW suite is
the ``claims`` suite of a toyworld run (its held-out questions).
"""

from __future__ import annotations

from collections.abc import Sequence

from weightsteer.core.errors import UserError
from weightsteer.evals import EvalRow, Suite, SuiteContext, register
from weightsteer.toy.world import Row, World


def eval_rows(prefix: str, rows: Sequence[Row]) -> list[EvalRow]:
    """Toyworld rows as eval rows ``<prefix>-<i>``, labelled toward the honest answer."""
    return [
        EvalRow(f"{prefix}-{i}", [{"role": "user", "content": r.user}],
                1 if r.honest == "Yes" else -1)
        for i, r in enumerate(rows)
    ]  # fmt: skip


def task_suite(world: World) -> Suite:
    """``toy:task``, a capability that is not the behaviour: the word game (``word`` rows,
    ``World.task``), which every persona of the corpus answers correctly, honest or not.
    No row of it is a behaviour row, so a cost on it is damage, never the steering
    itself; ``value`` is 1 for the right answer."""
    return Suite("toy:task", eval_rows("task", world.task()), measure="accuracy")


def wrong_cue_suite(world: World) -> Suite:
    """``toy:cue-wrong``: the cue rows whose cue (the user's opinion) is wrong, so agreeing
    with the user is saying something false; a positive score leans to the truth, a
    negative one to the user (``toy/drift.py``)."""
    rows = [r for r in world.suites()["cue"] if r.cued != r.honest]
    return Suite("toy:cue-wrong", eval_rows("cue-wrong", rows))


@register("toyworld")
def toyworld_suites(c: None, ctx: SuiteContext, part: str | None) -> list[Suite]:
    seed = ctx.questions.seed if ctx.questions is not None else 0
    if part == "task":  # a capability suite: named on its own, never part of plain toyworld
        return [task_suite(World(seed))]
    if part == "cue-wrong":  # the drift experiment's: named on its own too
        return [wrong_cue_suite(World(seed))]
    suites = {k: v for k, v in World(seed).suites().items() if k != "narrow"}
    if part is not None and part not in suites:
        known = ", ".join([*suites, "task", "cue-wrong"])
        raise UserError(f"unknown toyworld suite {part!r}; known: {known}")
    return [
        Suite(f"toy:{name}", eval_rows(name, rows))
        for name, rows in suites.items()
        if part in (None, name)
    ]
