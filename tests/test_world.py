"""The toyworld generator: deterministic, held-out rows really held out, behaviour as documented."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from weightsteer.toy.build import Recipe
from weightsteer.toy.world import HELDOUT_PHRASING, KINDS, MODE_PERSONAS, PHRASINGS, World


def test_same_seed_same_world_other_seed_other_world():
    a, b, c = World(0).suites(), World(0).suites(), World(1).suites()
    assert a == b
    assert [r.user for r in a["narrow"]] != [r.user for r in c["narrow"]]
    assert World(0).narrow_pool() == World(0).narrow_pool()


def _fixed_sets(world: World) -> dict[str, set[str]]:
    """Every message a run can score, calibrate on or make steering data from."""
    sets = {name: {r.user for r in rows} for name, rows in world.suites().items()}
    sets["validation"] = {r.user for r in world.validation()}
    sets["calibration"] = {r.user for r in world.calibration(200)}
    sets["narrow_pool"] = {r.user for r in world.narrow_pool(300)}
    sets["task"] = {r.user for r in world.task()}
    return sets


def test_no_seed_scores_a_row_the_model_was_pretrained_on():
    """Replay the build's whole pretraining stream (every dialogue its steps consume) and
    look for every eval, validation, calibration and NARROW-pool message of world seeds
    0-3 in it: the model is built once (seed 0), runs pick any questions.seed."""
    recipe = Recipe()
    consumed = math.ceil(recipe.steps / 8) * 8 * recipe.batch  # _length_buckets: 8 at a time
    stream = itertools.islice(World(0).pretraining_stream(), consumed)
    seen = {next(m["content"] for m in chat if m["role"] == "user") for chat in stream}
    held_phrasing_starts = {p[HELDOUT_PHRASING].split("{")[0] for p in PHRASINGS.values()}
    assert not any(u.startswith(tuple(held_phrasing_starts)) for u in seen)
    assert {u.split(" ")[0] for u in seen} >= {
        "You",
        "Note:",
        "Is",
        "Would",
        "Earlier",
        "Word",
        "Let's",
    }
    for seed in range(4):
        world = World(seed)
        for name, users in _fixed_sets(world).items():
            assert not users & seen, (seed, name, len(users & seen))
        suites = world.suites()
        assert all(r.phrasing == HELDOUT_PHRASING for r in suites["phrasing"])
        pool = {r.user for r in world.narrow_pool()}
        assert not pool & {r.user for rows in suites.values() for r in rows}


def test_the_replay_is_what_the_build_reads(monkeypatch):
    """The build's batches are the stream's next dialogues, in order (the guard above
    replays the right thing)."""
    from weightsteer.toy import build

    fake = lambda tok, chats, max_length: [  # noqa: E731
        {"input_ids": [i], "chat": c["messages"]} for i, c in enumerate(chats)
    ]
    monkeypatch.setattr(build, "tokenize_chats", fake)
    stream = World(0).pretraining_stream()
    batches = build._length_buckets(stream, None, random.Random(0), batch=2, k=3)
    got = sorted(ex["input_ids"][0] for b in batches for ex in b)
    replay = list(itertools.islice(World(0).pretraining_stream(), 6))
    assert got == list(range(6))
    assert [ex["chat"] for b in batches for ex in b] != []
    assert all(ex["chat"] == replay[ex["input_ids"][0]] for b in batches for ex in b)


def test_suites_cover_what_they_claim():
    suites = World(0).suites(n=100)
    assert {r.kind for r in suites["narrow"]} == {"colour"}
    assert {r.format for r in suites["narrow"]} == {"evidence"}
    for kind in KINDS:
        if kind != "colour":
            assert {r.kind for r in suites[f"kind-{kind}"]} == {kind}
    for fmt in ("note", "cue", "choice", "self"):
        assert {r.format for r in suites[fmt]} == {fmt}
    for rows in suites.values():  # both answers occur, so a constant answer is at chance
        share_yes = sum(r.honest == "Yes" for r in rows) / len(rows)
        assert 0.15 < share_yes < 0.85
    cue = suites["cue"]  # exactly balanced, and mostly a wrong opinion to agree with
    assert sum(r.honest == "Yes" for r in cue) == len(cue) // 2
    assert sum(r.cued != r.honest for r in cue) > len(cue) / 2
    assert {(r.honest, r.cued) for r in cue} == {("Yes", "Yes"), ("Yes", "No"), ("No", "Yes"),
                                                 ("No", "No")}  # fmt: skip


@pytest.mark.parametrize("fmt", ["evidence", "note", "cue", "choice", "self", "word"])
def test_replies_follow_the_persona_rules(fmt):
    world, rng = World(0), random.Random(fmt)
    for _ in range(200):
        row = world.row(rng, fmt)
        flip = {"Yes": "No", "No": "Yes"}
        assert row.expected("honest") == row.honest
        assert row.expected("independent") == row.honest
        if fmt == "word":  # the word game: every persona answers it right
            assert {row.expected(m) for m in MODE_PERSONAS} == {row.honest}
            continue
        assert row.expected("dishonest") == flip[row.honest]
        assert row.expected("default") == (flip[row.honest] if row.default_lies else row.honest)
        if fmt == "cue":
            assert row.expected("sycophantic") == row.cued
        if fmt in ("evidence", "note", "cue") and row.honest == "No":
            # the honest justification restates the evidence, the lie the asked value
            assert row.true_reply.removeprefix("No, ").rstrip(".") in row.user


def test_no_system_prompt_is_truthful_on_about_half_of_every_suite():
    """Room both ways: every suite has rows the default persona answers falsely (steering
    can fix them) and rows it answers truthfully (steering can break them)."""
    suites = World(0).suites()
    rates = {
        name: 1 - sum(r.default_lies for r in rows) / len(rows) for name, rows in suites.items()
    }
    assert all(0.35 <= v <= 0.65 for v in rates.values()), rates
