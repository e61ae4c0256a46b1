"""Choice scoring: matches the closed form, independent of batching and padding."""

from __future__ import annotations

import pytest
import torch

from weightsteer.errors import UserError
from weightsteer.modelling import render_chat
from weightsteer.scoring import TRUE_FALSE, YES_NO, Choices, choice_token_ids, score_choices


def prompts(tok):
    qs = [
        "Is the cat red?",
        "Is the big old dog made of wood and heavy today?",
        "Is it?",
        "Is the owl blue?",
    ]
    return [render_chat(tok, [{"role": "user", "content": q}]) for q in qs]


def test_variants_are_found_and_single_tokens(tiny):
    _, tok = tiny
    pos, neg = choice_token_ids(tok, YES_NO)
    assert {tok.decode([i]) for i in pos} >= {"Yes", " Yes"}
    assert {tok.decode([i]) for i in neg} >= {"No", " No"}


def test_logratio_and_pmass_match_full_forward(tiny):
    model, tok = tiny
    pos, neg = choice_token_ids(tok, YES_NO)
    ps = prompts(tok)
    got = score_choices(model, tok, ps)
    for i, p in enumerate(ps):
        ids = torch.tensor([tok.encode(p, add_special_tokens=False)])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, -1].float(), -1)
        lr = torch.logsumexp(logp[pos], 0) - torch.logsumexp(logp[neg], 0)
        pm = logp[pos].exp().sum() + logp[neg].exp().sum()
        assert got.logratio[i] == pytest.approx(float(lr), abs=1e-5)
        assert got.pmass[i] == pytest.approx(float(pm), abs=1e-6)


def test_batched_equals_unbatched_under_left_padding(tiny):
    model, tok = tiny
    ps = prompts(tok)
    batched = score_choices(model, tok, ps, batch_size=4)
    for i, p in enumerate(ps):
        alone = score_choices(model, tok, [p])
        assert batched.logratio[i] == pytest.approx(float(alone.logratio[0]), abs=1e-5)
        assert batched.pmass[i] == pytest.approx(float(alone.pmass[0]), abs=1e-6)
    # Order and batch composition do not matter either.
    rev = score_choices(model, tok, ps[::-1], batch_size=3)
    assert torch.allclose(rev.logratio.flip(0), batched.logratio, atol=1e-5)


def test_choice_without_single_token_is_an_error(tiny):
    _, tok = tiny
    with pytest.raises(UserError, match="single token"):
        score_choices(tiny[0], tok, prompts(tok), Choices("x", ("supercalifragilistic",), ("no",)))
    # true/false are in the tiny corpus, so this set works.
    assert choice_token_ids(tok, TRUE_FALSE)[0]


def test_empty_prompt_list_is_an_error(tiny):
    with pytest.raises(UserError, match="empty"):
        score_choices(tiny[0], tiny[1], [])
