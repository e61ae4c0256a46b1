"""Choice scoring: matches the closed form, independent of batching and padding."""

from __future__ import annotations

import pytest
import torch

from weightsteer.core.errors import UserError
from weightsteer.core.models import render_chat
from weightsteer.core.scoring import TRUE_FALSE, YES_NO, Choices, choice_token_ids, score_choices


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
    assert all(len(t) == 1 for t in pos + neg)
    assert {tok.decode(t) for t in pos} >= {"Yes", " Yes"}
    assert {tok.decode(t) for t in neg} >= {"No", " No"}


def test_logratio_and_pmass_match_full_forward(tiny):
    model, tok = tiny
    pos, neg = ([t[0] for t in side] for side in choice_token_ids(tok, YES_NO))
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


def test_a_word_without_single_token_is_scored_as_its_token_sequence(tiny):
    model, tok = tiny
    word = Choices("x", ("supercalifragilistic",), ("no",))
    pos, neg = choice_token_ids(tok, word)
    assert all(len(t) > 1 for t in pos) and all(len(t) == 1 for t in neg)
    ps = prompts(tok)
    got = score_choices(model, tok, ps, word, batch_size=3)
    for i, p in enumerate(ps):
        ids = tok.encode(p, add_special_tokens=False)
        lp_pos = []
        for seq in pos:  # closed form: the chain rule over one full forward
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([ids + seq])).logits[0].float(), -1)
            lp_pos.append(sum(logp[len(ids) - 1 + j, t] for j, t in enumerate(seq)))
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].float(), -1)
        want = torch.logsumexp(torch.stack(lp_pos), 0) - torch.logsumexp(
            logp[[t[0] for t in neg]], 0
        )
        assert got.logratio[i] == pytest.approx(float(want), abs=1e-4)
    # true/false are in the tiny corpus: single tokens, the fast path.
    assert all(len(t) == 1 for side in choice_token_ids(tok, TRUE_FALSE) for t in side)


def test_empty_prompt_list_is_an_error(tiny):
    with pytest.raises(UserError, match="empty"):
        score_choices(tiny[0], tiny[1], [])
