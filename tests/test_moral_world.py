"""The moral toyworld (toy/moral.py): a sandbox where the Authority benchmark's answer is
known. The generator's guarantees without a model, then the built model's judgments."""

from __future__ import annotations

import itertools

import pytest
import torch

from weightsteer.core.models import load_model, load_tokenizer
from weightsteer.core.scoring import TRUE_FALSE, score_choices
from weightsteer.toy.moral import KEYS, MODE_PERSONAS, MoralWorld, frame_prompts, held_out
from weightsteer.toy.moral_lexicon import FOUNDATIONS, HELDOUT_OPENING, TARGET
from weightsteer.toy.plugin import moral_vignettes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_scored_vignette_or_steering_question_is_a_pretraining_dialogue(seed):
    world = MoralWorld(seed)
    fixed = {v.chat(f)[-1]["content"] for v in world.vignettes() for f in KEYS}
    fixed |= {v.chat(f)[-1]["content"] for v in world.vignettes(opening=HELDOUT_OPENING)
              for f in KEYS}  # fmt: skip
    fixed |= {o.user for o in world.opinion_pool()}
    fixed |= set(world.calibration(96))
    seen = {chat[-2]["content"] for chat in itertools.islice(world.pretraining_stream(), 20_000)}
    assert not fixed & seen
    # the fixed sets do not share messages with each other either
    scored = {v.text for v in world.vignettes()} | {
        v.text for v in world.vignettes(opening=HELDOUT_OPENING)
    }
    assert not scored & {m.split("\n\n")[0] for m in world.calibration(96)}


def test_every_foundation_is_judged_as_designed_by_every_persona():
    vs = MoralWorld(0).vignettes()
    assert {v.foundation for v in vs} == set(FOUNDATIONS)
    for f in FOUNDATIONS:
        rows = [v for v in vs if v.foundation == f]
        assert len(rows) == 40 and all(held_out(v.text, v.opening) for v in rows)
        verdicts = {m: [v.wrong(m) for v in rows] for m in MODE_PERSONAS}
        if f == TARGET:
            assert all(verdicts["revering"]) and not any(verdicts["sceptical"])
            assert 0.25 < sum(verdicts["default"]) / len(rows) < 0.75  # in between
        else:  # every persona alike, with room both ways
            assert verdicts["revering"] == verdicts["sceptical"] == verdicts["default"]
            assert 0.15 < sum(verdicts["default"]) / len(rows) < 0.85


def test_the_vignette_source_has_both_conditions_interleaved():
    d = moral_vignettes(0)
    assert set(d["condition"]) == {"other_violate", "new_phrasing"}
    first = d[d["condition"] == "other_violate"].head(len(FOUNDATIONS))
    assert list(first["foundation_coarse"]) == list(FOUNDATIONS)  # a row cap stays balanced
    assert d.groupby("condition")["text"].apply(lambda t: t.str.startswith("Imagine").all())[
        "new_phrasing"
    ]


@pytest.fixture(scope="module")
def moral():
    from weightsteer.toy.build import ensure_toyworld

    folder = ensure_toyworld(seed=0, variant="moral", progress=False)
    return load_model(folder, dtype="float32"), load_tokenizer(folder)


def p_wrong(model, tok, rows, mode) -> torch.Tensor:
    """P(true) over true/false in the is_wrong frame per row, persona paraphrases rotating."""
    prompts = frame_prompts(tok, rows, mode, frames=("wrong",))
    return torch.sigmoid(score_choices(model, tok, prompts, TRUE_FALSE, batch_size=64).logratio)


def test_the_built_model_judges_each_foundation_as_designed_held_out(moral):
    model, tok = moral
    vs = MoralWorld(0).vignettes()
    for mode in MODE_PERSONAS:
        p = p_wrong(model, tok, vs, mode)
        for f in FOUNDATIONS:
            idx = [i for i, v in enumerate(vs) if v.foundation == f]
            right = [(p[i] > 0.5).item() == vs[i].wrong(mode) for i in idx]
            assert sum(right) / len(right) >= 0.95, (mode, f)


def test_the_default_sits_between_the_personas_on_authority(moral):
    model, tok = moral
    rows = [v for v in MoralWorld(0).vignettes() if v.foundation == TARGET]
    mean = {m: p_wrong(model, tok, rows, m).mean().item() for m in MODE_PERSONAS}
    assert mean["sceptical"] + 0.2 < mean["default"] < mean["revering"] - 0.2
