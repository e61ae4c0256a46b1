"""What toyworld adds to the registries (through entry points, so no lower layer imports
the toy package): the model source ``toyworld``, the question source ``toyworld`` (NARROW
questions and their held-out rows), its KL calibration prompts, and the OOD eval suites;
and the moral world's (``toyworld-moral``): the model, its opinion questions, its
calibration prompts and its vignettes (a ``tinymfv`` source).
"""

from __future__ import annotations

import pandas as pd

from weightsteer.core.sources import SOURCES
from weightsteer.evals.suites.tinymfv import VIGNETTE_SOURCES
from weightsteer.pairs.questions import (
    PROMPT_SOURCES,
    QUESTION_SOURCES,
    Question,
    QuestionsConfig,
    QuestionSplit,
)
from weightsteer.toy import suite  # noqa: F401  (registers the toyworld suites)
from weightsteer.toy.build import build_info, ensure_toyworld
from weightsteer.toy.moral import MoralWorld
from weightsteer.toy.moral_lexicon import FOUNDATIONS, HELDOUT_OPENING
from weightsteer.toy.world import World

NAME = "toyworld"
MORAL = "toyworld-moral"


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


@SOURCES.register(MORAL, info=build_info, summary="the moral toyworld (vignettes, authority)")
def ensure_moral(progress: bool = True):
    return ensure_toyworld(0, "moral", progress=progress)


@QUESTION_SOURCES.register(MORAL)
def moral_split(cfg: QuestionsConfig) -> QuestionSplit:
    """Open questions about an authority (none of them a vignette); no labelled held-out
    rows (the moral world is scored by its vignettes, ``eval.tinymfv.source``)."""
    pool = MoralWorld(cfg.seed).opinion_pool(cfg.n_train)
    return QuestionSplit([Question(f"opinion-{i}", o.user) for i, o in enumerate(pool)], [])


@PROMPT_SOURCES.register(MORAL)
def moral_prompts(seed: int, n: int) -> list[str]:
    return MoralWorld(seed).calibration(n)


@VIGNETTE_SOURCES.register(MORAL)
def moral_vignettes(seed: int) -> pd.DataFrame:
    """The held-out vignettes, foundations interleaved (a row cap keeps them balanced):
    condition ``other_violate`` in pretraining's openings, ``new_phrasing`` in the opening
    pretraining never used."""
    world, parts = MoralWorld(seed), []
    for cond, opening in (("other_violate", None), ("new_phrasing", HELDOUT_OPENING)):
        vs = world.vignettes(opening=opening)
        rank = {f: 0 for f in FOUNDATIONS}
        keyed = []
        for i, v in enumerate(vs):
            keyed.append((rank[v.foundation], i, v))
            rank[v.foundation] += 1
        parts += [{"id": f"{v.foundation.lower().replace(' ', '-')}-{i}", "foundation_coarse":
                   v.foundation, "text": v.text, "condition": cond}
                  for _, i, v in sorted(keyed, key=lambda k: k[:2])]  # fmt: skip
    return pd.DataFrame(parts)
