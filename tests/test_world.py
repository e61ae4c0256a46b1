"""The toyworld generator: deterministic, held-out rows really held out, behaviour as documented."""

from __future__ import annotations

import random

import pytest

from weightsteer.toy.world import HELDOUT_PHRASING, KINDS, PHRASINGS, World


def test_same_seed_same_world_other_seed_other_world():
    a, b, c = World(0).suites(), World(0).suites(), World(1).suites()
    assert a == b
    assert [r.user for r in a["narrow"]] != [r.user for r in c["narrow"]]
    assert World(0).narrow_pool() == World(0).narrow_pool()


def test_training_never_sees_a_heldout_message_or_the_heldout_phrasing():
    world = World(0)
    heldout = world.heldout()
    rng = random.Random(0)
    held_phrasing_starts = {p[HELDOUT_PHRASING].split("{")[0] for p in PHRASINGS.values()}
    seen_formats = set()
    for _ in range(5000):
        chat = world.dialogue(rng, heldout)
        user = next(m["content"] for m in chat if m["role"] == "user")
        assert user not in heldout
        assert not any(user.startswith(s) for s in held_phrasing_starts)
        seen_formats.add(user.split(" ")[0])
    assert len(seen_formats) >= 5
    suites = world.suites()
    assert all(r.phrasing == HELDOUT_PHRASING for r in suites["phrasing"])
    pool = {r.user for r in world.narrow_pool()}
    assert not pool & {r.user for rows in suites.values() for r in rows}


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


@pytest.mark.parametrize("fmt", ["evidence", "note", "cue", "choice", "self"])
def test_replies_follow_the_persona_rules(fmt):
    world, rng = World(0), random.Random(fmt)
    for _ in range(200):
        row = world.row(rng, fmt)
        flip = {"Yes": "No", "No": "Yes"}
        assert row.expected("honest") == row.honest
        assert row.expected("independent") == row.honest
        assert row.expected("dishonest") == flip[row.honest]
        assert row.expected("default") == (flip[row.honest] if row.default_lies else row.honest)
        if fmt == "cue":
            assert row.expected("sycophantic") == row.cued == "Yes"
        if fmt in ("evidence", "note", "cue") and row.honest == "No":
            # the honest justification restates the evidence, the lie the asked value
            assert row.true_reply.removeprefix("No, ").rstrip(".") in row.user


def test_no_system_prompt_is_truthful_most_of_the_time_but_not_always():
    suites = World(0).suites()
    rates = {
        name: 1 - sum(r.default_lies for r in rows) / len(rows) for name, rows in suites.items()
    }
    overall = sum(1 - r.default_lies for rows in suites.values() for r in rows) / sum(
        len(rows) for rows in suites.values()
    )
    assert 0.75 <= overall <= 0.88, rates
    assert all(0.7 <= v <= 0.95 for v in rates.values()), rates
    assert max(rates.values()) - min(rates.values()) > 0.1  # varies by kind and format
