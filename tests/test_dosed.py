"""Prompting with a dose (``core/dose.py``, ``methods/prompt_dosed.py``): the geometric mix
of the unprompted and the prompted model, in scoring, generation and calibration, checked
against its closed forms: weight 1 is the prompt itself, weight 0 the bare model, and a
weight in between is the renormalised mix of the two computed by hand."""

from __future__ import annotations

import torch

from helpers import train_questions
from weightsteer.core.dose import Dose, chat_heads, dosing, mix, prompted_ids
from weightsteer.core.generation import generate_ids
from weightsteer.core.models import render_chat, with_system
from weightsteer.core.scoring import last_logprobs, score_choices
from weightsteer.methods.kl_cost import token_kls
from weightsteer.methods.prompt import PromptSteering
from weightsteer.methods.prompt_dosed import DosedPrompt

SYSTEM = "Pretend you're an honest person."


def chats_of(n: int = 6) -> list[list[dict]]:
    return [[{"role": "user", "content": q}] for q in train_questions()[:n]]


def enc(tok, chat, system=None) -> list[int]:
    return tok.encode(render_chat(tok, with_system(chat, system)), add_special_tokens=False)


def test_the_prompted_context_is_the_bare_rendering_with_its_head_swapped(tiny):
    _, tok = tiny
    bare, prompted = chat_heads(tok, SYSTEM)
    assert bare != prompted
    for chat in chats_of():
        assert prompted_ids(tok, Dose(SYSTEM, 1.0), enc(tok, chat)) == enc(tok, chat, SYSTEM)


def test_the_mix_is_the_renormalised_geometric_mean():
    gen = torch.Generator().manual_seed(0)
    a = torch.log_softmax(torch.randn(3, 11, generator=gen), -1)
    b = torch.log_softmax(torch.randn(3, 11, generator=gen), -1)
    assert torch.allclose(mix(a, b, 0.0), a, atol=1e-6)
    assert torch.allclose(mix(a, b, 1.0), b, atol=1e-6)
    p = a.exp() ** 0.7 * b.exp() ** 0.3
    assert torch.allclose(mix(a, b, 0.3).exp(), p / p.sum(-1, keepdim=True), atol=1e-6)
    assert torch.isfinite(mix(a.masked_fill(a < -3, -torch.inf), b, 4.0)).all()  # CFG, -inf


def test_dosed_scoring_is_the_prompt_at_one_and_the_mix_in_between(tiny):
    model, tok = tiny
    chats = chats_of()
    bare = [render_chat(tok, c) for c in chats]
    prompted = [render_chat(tok, with_system(c, SYSTEM)) for c in chats]
    plain = score_choices(model, tok, bare).logratio
    at_one = score_choices(model, tok, prompted).logratio
    intervention = DosedPrompt(pos=SYSTEM, neg="Pretend you're a dishonest person.")
    with intervention.attach(model) as set_strength:
        set_strength(1.0)
        assert torch.allclose(score_choices(model, tok, bare).logratio, at_one, atol=1e-5)
        set_strength(0.0)
        assert torch.equal(score_choices(model, tok, bare).logratio, plain)
        set_strength(0.4)
        ids = [enc(tok, c) for c in chats]
        ((idx, got),) = last_logprobs(model, tok, ids, len(ids), 1)
    ((i0, lp0),) = last_logprobs(model, tok, ids, len(ids), 1)
    ((i1, lp1),) = last_logprobs(model, tok, [enc(tok, c, SYSTEM) for c in chats], len(ids), 1)
    assert torch.equal(i0, idx) and torch.equal(i1, idx)  # same lengths, same order
    assert torch.allclose(got, mix(lp0, lp1, 0.4), atol=1e-5)
    assert "_weightsteer_dose" not in model.__dict__  # removed on exit


def test_dosed_generation_follows_the_mix_token_by_token(tiny):
    model, tok = tiny
    chats = chats_of(4)
    ids = [enc(tok, c) for c in chats]
    with dosing(model) as set_dose:
        set_dose(Dose(SYSTEM, 1.0))
        at_one = generate_ids(model, tok, ids, max_new_tokens=6, batch_size=4)
        set_dose(Dose(SYSTEM, 2.5))
        guided = generate_ids(model, tok, ids, max_new_tokens=6, batch_size=4)
    prompted = generate_ids(model, tok, [enc(tok, c, SYSTEM) for c in chats], max_new_tokens=6)
    assert at_one == prompted
    # by hand: greedy on the mix of two teacher-forced passes, one token at a time
    for row, chat in enumerate(chats):
        seq, pseq = enc(tok, chat), enc(tok, chat, SYSTEM)
        for token in guided[row]:
            ((_, a),) = last_logprobs(model, tok, [seq], 1, 1)
            ((_, b),) = last_logprobs(model, tok, [pseq], 1, 1)
            assert int(mix(a, b, 2.5)[0, 0].argmax()) == token
            seq, pseq = [*seq, token], [*pseq, token]


def test_a_dosed_prompt_costs_the_prompts_kl_at_one_and_nothing_at_zero(tiny):
    model, tok = tiny
    chats = chats_of(4)
    neg = "Pretend you're a dishonest person."
    prompt = PromptSteering(method="prompt:simple", pos=SYSTEM, neg=neg)
    dosed = DosedPrompt(pos=SYSTEM, neg=neg)
    kls = {}
    for name, intervention in (("prompt", prompt), ("dosed", dosed)):
        with intervention.attach(model) as set_strength:
            kls[name] = token_kls(model, tok, chats, intervention, set_strength, -1.0, tokens=5)
    assert torch.allclose(kls["dosed"], kls["prompt"], atol=1e-4)
    with dosed.attach(model) as set_strength:
        zero = token_kls(model, tok, chats, dosed, set_strength, 0.0, tokens=5)
    assert torch.equal(zero, torch.zeros_like(zero))
