"""What toyworld adds to the registries (through entry points, so no lower layer imports
the toy package): the model source ``toyworld``, the question source ``toyworld`` (NARROW
questions and their held-out rows), its KL calibration prompts, and the OOD eval suites.
"""

from __future__ import annotations

from weightsteer.core.sources import SOURCES
from weightsteer.pairs.questions import (
    PROMPT_SOURCES,
    QUESTION_SOURCES,
    Question,
    QuestionsConfig,
    QuestionSplit,
)
from weightsteer.toy import suite  # noqa: F401  (registers the toyworld suites)
from weightsteer.toy.build import build_info, ensure_toyworld
from weightsteer.toy.world import World

NAME = "toyworld"


SOURCES.register(NAME, info=build_info, summary="the embedded 0.88M model, trained here once")(
    ensure_toyworld
)


@QUESTION_SOURCES.register(NAME)
def toyworld_split(cfg: QuestionsConfig) -> QuestionSplit:
    """NARROW training questions and the held-out NARROW rows (labelled) of world ``seed``."""
    world = World(cfg.seed)
    train = [Question(f"pool-{i}", r.user) for i, r in enumerate(world.narrow_pool(cfg.n_train))]
    held = world.suites()["narrow"][: cfg.n_eval]
    return QuestionSplit(
        train, [Question(f"narrow-{i}", r.user, r.honest) for i, r in enumerate(held)]
    )


@PROMPT_SOURCES.register(NAME)
def toyworld_prompts(seed: int, n: int) -> list[str]:
    return [r.user for r in World(seed).calibration(n)]
