"""Interventions (methods/) and iso-KL calibration (calibrate.py), against closed forms."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from weightsteer.core.errors import UserError
from weightsteer.core.models import render_chat, with_system
from weightsteer.core.scoring import score_choices
from weightsteer.evals import EvalRow, Suite, score_suite
from weightsteer.methods import NONE, check_method
from weightsteer.methods.activation import (
    ActivationSteering,
    collect_hidden_states,
    decoder_blocks,
)
from weightsteer.methods.calibrate import (
    FIXED,
    JUMP,
    OK,
    TOO_STRONG,
    TOO_WEAK,
    calibrate_budgets,
    calibrate_intervention,
    calibrate_strength,
)
from weightsteer.methods.compare_config import CompareConfig, statistic_name
from weightsteer.methods.kl_cost import BaseLogprobs, kl_statistic, token_kls
from weightsteer.methods.pca import principal_direction
from weightsteer.methods.prompt import PromptSteering
from weightsteer.pairs.personas import PAIRS, load_pair

USER = [
    [{"role": "user", "content": q}]
    for q in (
        "You look closely and see that the cup is red. Is the cup red?",
        "Note: the owl is in the barn. Is the following statement true? The owl is in the attic.",
        "Your friend shows you a photo: the hat is blue. Is the hat green?",
    )
]


def _no_hooks(model) -> bool:
    return all(not m._forward_hooks for m in model.modules())


def _random_steering(model, layers, *, ablate=False, scale=0.5, seed=0) -> ActivationSteering:
    g = torch.Generator().manual_seed(seed)
    d = model.config.hidden_size
    vectors = {layer: scale * torch.randn(d, generator=g) for layer in layers}
    units = {layer: v / v.norm() for layer, v in vectors.items()} if ablate else None
    return ActivationSteering(method="act:test", vectors=vectors, ablate=units)


# -- KL -----------------------------------------------------------------------------------


def test_kl_of_a_noop_is_exactly_zero(toy):
    from weightsteer.core.models import fingerprint
    from weightsteer.core.vector import VectorMeta, WeightVector
    from weightsteer.methods.weight import WeightSteering

    model, tok = toy
    kls = token_kls(model, tok, USER, NONE, lambda s: None, 1.0, tokens=8)
    assert kls.numel() > len(USER) and torch.equal(kls, torch.zeros_like(kls))
    # a real intervention at strength 0 is the unchanged model, bit for bit
    act = _random_steering(model, [1, 2])
    with act.attach(model) as set_strength:
        kls = token_kls(model, tok, USER, act, set_strength, 0.0, tokens=8)
    assert torch.equal(kls, torch.zeros_like(kls))
    weight = model.model.layers[1].mlp.up_proj.weight
    delta = {"model.layers.1.mlp.up_proj.weight": torch.randn_like(weight)}
    vec = WeightVector(delta, VectorMeta(base=fingerprint(model), family="lora"))
    steering = WeightSteering(vector=vec, family="lora")
    with steering.attach(model) as set_strength:
        kls = token_kls(model, tok, USER, steering, set_strength, 0.0, tokens=8)
        assert kl_statistic(token_kls(model, tok, USER, steering, set_strength, 0.5)) > 0
    assert torch.equal(kls, torch.zeros_like(kls))


def test_token_kl_equals_the_kl_of_two_full_forwards(toy):
    """A prompt method changes the prompt length: the per-token KL must still compare the
    distributions that predicted the same generated token."""
    from weightsteer.core.generation import generate_ids

    model, tok = toy
    method = PromptSteering(method="prompt:simple", pos="x", neg=PAIRS["honesty"].neg[0])
    for continuations in ("steered", "unsteered"):  # whose greedy tokens are scored
        got = token_kls(model, tok, USER, method, lambda s: None, -1.0, tokens=6,
                        continuations=continuations)  # fmt: skip
        want = []
        for chat in USER:
            steered = tok.encode(render_chat(tok, with_system(chat, method.neg)))
            base = tok.encode(render_chat(tok, chat))
            source = steered if continuations == "steered" else base
            (gen,) = generate_ids(model, tok, [source], max_new_tokens=6)
            k = len(gen)
            with torch.no_grad():
                lp_s = model(torch.tensor([steered + gen])).logits[0, -k - 1 : -1].log_softmax(-1)
                lp_b = model(torch.tensor([base + gen])).logits[0, -k - 1 : -1].log_softmax(-1)
            want.append((lp_s.exp() * (lp_s - lp_b)).sum(-1))
        want = torch.cat(want)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want.clamp_min(0), atol=1e-4, rtol=1e-4)
        assert want.max() > 1.0  # the dishonest persona changes the answers


# -- the strength search ---------------------------------------------------------------


@pytest.mark.parametrize("start", [1.0, 0.01, 50.0])
def test_calibration_hits_a_monotone_target_on_each_side(start):
    # asymmetric: the negative side needs a different strength
    def kl(s: float) -> float:
        return 0.3 * abs(s) ** 1.7 if s > 0 else 2.0 * abs(s) ** 0.8

    for sign in (1, -1):
        cal = calibrate_strength(kl, target=1.0, sign=sign, tolerance=0.05, start=start)
        assert cal.status == OK and cal.reached
        assert math.copysign(1, cal.strength) == sign
        assert abs(kl(cal.strength) - 1.0) <= 0.05 and cal.kl == kl(cal.strength)
        assert len(cal.evaluations) <= 16
    exact = (1 / 0.3) ** (1 / 1.7)
    cal = calibrate_strength(kl, target=1.0, sign=1, tolerance=1e-6, max_evals=40)
    assert cal.strength == pytest.approx(exact, rel=1e-5)


def test_calibration_says_when_the_target_cannot_be_reached():
    bounded = calibrate_strength(lambda s: 0.5 * (1 - math.exp(-abs(s))), target=1.0)
    assert bounded.status == TOO_WEAK and not bounded.reached
    assert "cannot reach" in bounded.message()
    floor = calibrate_strength(lambda s: 2.0 + abs(s), target=1.0, sign=-1)
    assert floor.status == TOO_STRONG and floor.strength < 0
    jump = calibrate_strength(lambda s: 0.5 if abs(s) < 0.7 else 2.0, target=1.0)
    assert jump.status == JUMP and jump.strength == pytest.approx(0.7, rel=2e-3)
    assert "jumps" in jump.message()
    with pytest.raises(UserError, match="NaN"):
        calibrate_strength(lambda s: float("nan"))


def test_a_search_starts_from_the_strengths_already_measured():
    def kl(s: float) -> float:
        return 0.3 * abs(s) ** 1.7 if s > 0 else 2.0 * abs(s) ** 0.8

    calls = []

    def measure(s: float) -> float:
        calls.append(s)
        return kl(s)

    # one known point within tolerance is the answer: nothing is measured
    hit = calibrate_strength(measure, target=1.0, known=[(-3.0, kl(-3.0)), (2.03, kl(2.03))])
    assert hit.status == OK and hit.strength == 2.03 and calls == []
    # a known bracket: no doubling or halving, only steps inside it
    cold = calibrate_strength(kl, target=1.0, tolerance=0.01)
    warm = calibrate_strength(
        measure, target=1.0, tolerance=0.01, known=[(1.0, kl(1.0)), (4.0, kl(4.0))]
    )
    assert warm.status == OK and all(1.0 < s < 4.0 for s in calls)
    assert len(calls) < len(cold.evaluations)
    assert warm.evaluations[:2] == [(1.0, kl(1.0)), (4.0, kl(4.0))]
    # only the searched sign's points count; one side known: bracketing goes on from it
    calls.clear()
    one = calibrate_strength(measure, target=1.0, sign=-1, known=[(1.0, 0.3), (-0.01, kl(-0.01))])
    assert one.status == OK and calls[0] == pytest.approx(-0.02)
    # max_evals bounds the fresh measurements, not the known ones
    many = [(s / 100, kl(s / 100)) for s in range(1, 40)]
    capped = calibrate_strength(kl, target=1e6, known=many, max_evals=3)
    assert capped.status == TOO_WEAK and len(capped.evaluations) == len(many) + 3


def test_later_budgets_start_from_the_calibration_kls_alone(monkeypatch):
    """Every point a search reports is a KL of the calibration prompts at its strength
    (never the audit set's, which differ), each strength is measured once per prompt set,
    and on a steep curve the warm start measures fewer than searches from |s| = 1 (on a
    smooth one the secant lands in a step either way)."""
    import weightsteer.methods.calibrate as cal

    calib, audit = [[{"role": "user", "content": "c"}]], [[{"role": "user", "content": "a"}]]

    def true_kl(s: float, chats) -> float:  # steep, as a KL that jumps: secant steps miss
        middle = 10.0 if s > 0 else 6.0
        return (3.0 if chats is audit else 1.0) * 4 / (1 + math.exp(middle - abs(s)))

    calls = []

    def fake_kls(model, tok, chats, intervention, set_strength, strength, **kw):
        calls.append((strength, chats is audit))
        return torch.full((4,), true_kl(strength, chats), dtype=torch.float64)

    monkeypatch.setattr(cal, "token_kls", fake_kls)
    settings = CompareConfig(budgets=(0.5, 1.0, 2.0), tolerance=0.05, audit_factor=None)
    found = calibrate_budgets(None, None, NONE, calib, audit, settings)
    for budget, sides in found.items():
        for c in sides.values():
            assert c.status == OK and abs(c.kl - budget) <= 0.05 * budget * 1.01
            assert all(k == pytest.approx(true_kl(s, calib)) for s, k in c.evaluations)
            assert c.audit_kl == pytest.approx(true_kl(c.strength, audit))
    assert len(calls) == len(set(calls))  # nothing measured twice
    searched = sum(not a for _, a in calls)

    # the same searches, each from |s| = 1 (only a strength measured before is reused)
    calls.clear()
    real = cal.calibrate_strength
    monkeypatch.setattr(cal, "calibrate_strength", lambda m, **kw: real(m, **{**kw, "known": ()}))
    calibrate_budgets(None, None, NONE, calib, audit, settings)
    assert searched < sum(not a for _, a in calls)


def test_a_method_that_jumps_at_zero_is_measured_at_its_floor_first(monkeypatch):
    """An ablation's KL does not shrink below what the ablation alone costs: a budget under
    that floor is reported without a search, one above it is searched as usual."""
    import weightsteer.methods.calibrate as cal
    from weightsteer.methods import Intervention

    class Ablation(Intervention):
        jumps_at_zero = True

    def fake_kls(model, tok, chats, intervention, set_strength, strength, **kw):
        return torch.full((4,), 0.8 + abs(strength), dtype=torch.float64)  # floor 0.8

    monkeypatch.setattr(cal, "token_kls", fake_kls)
    calib = [[{"role": "user", "content": "c"}]]
    settings = CompareConfig(budgets=(0.5, 2.0), tolerance=0.1)
    found = calibrate_budgets(None, None, Ablation(), calib, [], settings)
    for sign in (1, -1):
        low, high = found[0.5][sign], found[2.0][sign]
        assert low.status == cal.FLOOR and low.strength == sign * cal.FLOOR_STRENGTH
        assert low.kl == pytest.approx(0.8, abs=1e-3) and len(low.evaluations) == 1
        assert "costs more on its own" in low.message()
        assert high.status == OK and high.kl == pytest.approx(2.0, rel=0.1)
    plain = calibrate_budgets(None, None, NONE, calib, [], settings)  # no floor: searched
    assert all(c.status != cal.FLOOR for sides in plain.values() for c in sides.values())


def test_a_side_whose_audit_kl_is_off_by_more_than_the_factor_is_not_at_its_budget(monkeypatch):
    import weightsteer.methods.calibrate as cal

    calib, audit = [[{"role": "user", "content": "c"}]], [[{"role": "user", "content": "a"}]]

    def fake_kls(model, tok, chats, intervention, set_strength, strength, **kw):
        factor = (1.4 if strength > 0 else 1.6) if chats is audit else 1.0  # + in, − out
        return torch.full((4,), factor * abs(strength), dtype=torch.float64)

    monkeypatch.setattr(cal, "token_kls", fake_kls)
    found = calibrate_budgets(None, None, NONE, calib, audit, CompareConfig(budgets=(1.0,)))[1.0]
    assert found[1].status == OK and found[1].audit_kl == pytest.approx(1.4, rel=0.1)
    assert found[-1].status == cal.AUDIT and "on the audit prompts" in found[-1].message()
    lax = CompareConfig(budgets=(1.0,), audit_factor=None)
    assert calibrate_budgets(None, None, NONE, calib, audit, lax)[1.0][-1].status == OK


def test_kept_base_logprobs_are_the_fresh_ones(toy):
    from weightsteer.core.generation import generate_ids

    model, tok = toy
    prompts = [tok.encode(render_chat(tok, chat)) for chat in USER]
    gen = generate_ids(model, tok, prompts, max_new_tokens=5)
    cache = BaseLogprobs()
    first = cache.get(model, tok, prompts, gen)
    assert (cache.hits, cache.misses) == (0, 3)
    again = cache.get(model, tok, prompts[1:] + prompts[:1], gen[1:] + gen[:1])
    assert (cache.hits, cache.misses) == (3, 3)
    for a, b in zip(first, again[-1:] + again[:-1], strict=True):
        assert torch.equal(a, b)
    # what is kept is what a fresh pass computes, alone
    fresh = BaseLogprobs(0).get(model, tok, prompts[:1], gen[:1])[0]
    torch.testing.assert_close(first[0], fresh, atol=1e-5, rtol=1e-5)
    # the byte cap drops the least recently used first; 0 keeps nothing
    one = first[0].numel() * 4
    small = BaseLogprobs(max_bytes=one + 1)
    small.get(model, tok, prompts, gen)
    assert small.bytes <= one + 1 and len(small._kept) == 1
    nothing = BaseLogprobs(0)
    nothing.get(model, tok, prompts, gen)
    nothing.get(model, tok, prompts, gen)
    assert nothing.hits == 0 and nothing.bytes == 0


def test_a_shared_base_cache_does_not_change_the_calibration(toy):
    model, tok = toy
    act = _random_steering(model, [1, 2, 3], scale=1.0)
    settings = CompareConfig(tokens=6, budgets=(0.5, 1.0))
    alone = calibrate_budgets(model, tok, act, USER, USER[:1], settings, base_cache=BaseLogprobs(0))
    shared = BaseLogprobs()
    cached = calibrate_budgets(model, tok, act, USER, USER[:1], settings, base_cache=shared)
    assert shared.hits > 0
    for budget, cals in alone.items():
        for sign, cal in cals.items():
            other = cached[budget][sign]
            assert cal.status == other.status
            assert other.strength == pytest.approx(cal.strength, rel=1e-4)
            assert other.kl == pytest.approx(cal.kl, rel=1e-4)


def test_calibrating_a_prompt_measures_its_fixed_cost(toy):
    model, tok = toy
    pair = PAIRS["honesty"]
    method = PromptSteering(method="prompt:simple", pos=pair.pos[0], neg=pair.neg[0])
    settings = CompareConfig(tokens=6)
    cals = calibrate_intervention(model, tok, method, USER, USER[:1], settings)
    assert [c.status for c in cals.values()] == [FIXED, FIXED]
    assert cals[1].strength == 1.0 and cals[-1].strength == -1.0
    assert cals[-1].kl > cals[1].kl  # toyworld is honest already: lying costs more
    assert not math.isnan(cals[1].audit_kl)


def test_calibrated_activation_steering_spends_the_budget(toy):
    model, tok = toy
    act = _random_steering(model, [1, 2, 3], scale=1.0)
    settings = CompareConfig(tokens=8, tolerance=0.1)
    cals = calibrate_intervention(model, tok, act, USER, (), settings)
    with act.attach(model) as set_strength:
        for cal in cals.values():
            assert cal.status == OK
            kl = kl_statistic(
                token_kls(model, tok, USER, act, set_strength, cal.strength, tokens=8)
            )
            assert kl == pytest.approx(cal.kl) and abs(kl / cal.target - 1.0) <= 0.1
    assert _no_hooks(model)


# -- activation steering -------------------------------------------------------------------


def test_hooks_are_gone_after_an_exception(tiny):
    model, tok = tiny
    prompts = [render_chat(tok, c) for c in USER]
    before = score_choices(model, tok, prompts)
    act = _random_steering(model, [0, 1], ablate=True)
    with pytest.raises(RuntimeError, match="boom"), act.attach(model) as set_strength:
        set_strength(3.0)
        steered = score_choices(model, tok, prompts)
        raise RuntimeError("boom")
    assert not torch.equal(steered.logratio, before.logratio)
    assert _no_hooks(model)
    after = score_choices(model, tok, prompts)
    assert torch.equal(after.logratio, before.logratio)


def _block_output(model, tok, layer: int) -> torch.Tensor:
    seen = {}
    hook = decoder_blocks(model)[layer].register_forward_hook(
        lambda m, a, out: seen.__setitem__("h", out[0] if isinstance(out, tuple) else out)
    )
    try:
        with torch.no_grad():
            model(torch.tensor([tok.encode(render_chat(tok, USER[0]))]))
    finally:
        hook.remove()
    return seen["h"][0]  # [seq, hidden]


@pytest.mark.parametrize("ablate", [False, True])
def test_the_hook_is_the_formula_at_the_first_hooked_block(tiny, ablate):
    model, tok = tiny
    act = _random_steering(model, [1], ablate=ablate)
    v = act.vectors[1]
    h = _block_output(model, tok, 1)
    with act.attach(model) as set_strength:
        set_strength(-0.7)
        got = _block_output(model, tok, 1)
    want = h - (h @ (u := v / v.norm()))[:, None] * u if ablate else h
    torch.testing.assert_close(got, want - 0.7 * v, atol=1e-5, rtol=1e-5)


def test_uncentred_pca_recovers_the_planted_mean_difference():
    g = torch.Generator().manual_seed(0)
    n, d = 400, 32
    m = torch.zeros(d)
    m[0] = 3.0  # the behaviour's shift
    noise = torch.randn(n, d, generator=g) * 0.2
    noise[:, 1] = torch.randn(n, generator=g) * 2.0  # pairs vary most along another axis
    diffs = m + noise
    v = principal_direction(diffs)
    cos = torch.nn.functional.cosine_similarity(v, m, dim=0)
    assert cos > 0.99  # and the sign is POS-ward, fixed by the pairs
    assert v.norm() == pytest.approx(3.0, rel=0.05)  # the mean projection
    _, _, vh = torch.linalg.svd(diffs - diffs.mean(0), full_matrices=False)
    assert abs(torch.nn.functional.cosine_similarity(vh[0], m, dim=0)) < 0.5  # centred: lost
    assert torch.equal(principal_direction(-diffs), -v)


def test_hidden_states_are_the_block_outputs_at_the_chosen_position(tiny):
    model, tok = tiny
    rec = {
        "id": "pos-0",
        "persona": "Pretend you're an honest person.",
        "messages": [
            {"role": "user", "content": "Is the sky blue?"},
            {"role": "assistant", "content": "Yes, it is."},
        ],
    }
    short = {**rec, "messages": [rec["messages"][0], {"role": "assistant", "content": "No."}]}
    pairs = {"pos": [rec, short], "neg": [short, rec]}  # different lengths in one batch
    prompt = tok.encode(render_chat(tok, with_system(rec["messages"][:1], rec["persona"])))
    answer = tok.encode("Yes, it is.")
    seen = {}
    hook = decoder_blocks(model)[1].register_forward_hook(
        lambda m, a, out: seen.__setitem__("h", out[0] if isinstance(out, tuple) else out)
    )
    with torch.no_grad():
        model(torch.tensor([prompt + answer]))
    hook.remove()
    h = seen["h"][0]
    states = collect_hidden_states(model, tok, pairs, [1], position="response")
    torch.testing.assert_close(states["pos"][0, 0], h[-len(answer) :].mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(states["neg"][1, 0], states["pos"][0, 0])
    states = collect_hidden_states(model, tok, pairs, [1], position="prompt")
    torch.testing.assert_close(states["pos"][0, 0], h[len(prompt) - 1], atol=1e-5, rtol=0)
    with pytest.raises(UserError, match="persona"):
        collect_hidden_states(model, tok, {"pos": [{**rec, "persona": None}]}, [1])


# -- prompts and the registry ----------------------------------------------------------------


def test_a_prompt_method_only_sets_the_system_prompt(toy):
    model, tok = toy
    pair = PAIRS["honesty"]
    method = PromptSteering(method="prompt:simple", pos=pair.pos[0], neg=pair.neg[0])
    assert [method.system_prompt(s) for s in (1, 0, -2)] == [pair.pos[0], None, pair.neg[0]]
    suite = Suite("s", [EvalRow(f"r{i}", c, 1) for i, c in enumerate(USER)])
    got = score_suite(model, tok, suite, system=pair.neg[0])
    want = score_choices(model, tok, [render_chat(tok, with_system(c, pair.neg[0])) for c in USER])
    assert torch.equal(got.logratio, want.logratio)
    assert (got.logratio * torch.tensor([1.0, -1, -1]) < 0).all()  # the NEG persona lies


def test_engineered_prompts_ship_and_can_be_edited(tmp_path):
    assert all(len(p) > 100 for p in PAIRS["honesty"].engineered_prompts())
    f = tmp_path / "p.toml"
    f.write_text('pos = ["Be kind."]\nneg = ["Be cruel."]\n')
    with pytest.raises(UserError, match="engineered_pos"):
        load_pair(file=str(f)).engineered_prompts()
    f.write_text(f.read_text() + 'engineered_pos = "Always be kind."\n')
    with pytest.raises(UserError, match="both engineered_pos and engineered_neg"):
        load_pair(file=str(f))
    f.write_text(f.read_text() + 'engineered_neg = "Always be cruel."\n')
    assert load_pair(file=str(f)).engineered_prompts() == ("Always be kind.", "Always be cruel.")


def test_unknown_method_is_refused_with_the_known_ones():
    with pytest.raises(
        UserError, match="choose one of act:angular, act:cosine_gated, act:directional_ablation"
    ):
        check_method("act:nope")


def test_the_kl_statistic_is_the_mean_or_the_quantile_of_the_pooled_tokens():
    kls = torch.tensor([0.0, 1.0, 2.0, 3.0, 14.0])
    assert kl_statistic(kls) == 4.0  # the mean, the default
    assert kl_statistic(kls, "quantile", 0.5) == 2.0
    assert kl_statistic(kls, "quantile", 1.0) == 14.0
    assert math.isnan(kl_statistic(torch.empty(0)))
    with pytest.raises(UserError, match="mean or quantile"):
        kl_statistic(kls, "median")
    assert CompareConfig().statistic == "mean"
    assert statistic_name({"statistic": "mean"}) == "mean per-token KL"
    # a run recorded before the setting existed calibrated on the quantile
    assert statistic_name({"quantile": 0.95}) == "p95 per-token KL"


@pytest.mark.parametrize("statistic", ["mean", "quantile"])
def test_the_kl_on_unsteered_continuations_is_continuous_in_the_strength(toy, statistic):
    """Stated bound: on toyworld, no step of 1e-3 in strength moves the statistic (the mean
    or the p95) by more than 5% of its value there (a smooth curve this steep moves 1-3%
    per step; the continuation is the same tokens at every strength, where the steered
    model's own greedy rollout flips tokens and jumps)."""
    from weightsteer.methods.activation import ActivationSteering
    from weightsteer.pairs.questions import PROMPT_SOURCES

    model, tok = toy
    g = torch.Generator().manual_seed(0)
    hidden = model.config.hidden_size
    vectors = {k: torch.randn(hidden, generator=g) for k in (1, 2)}
    act = ActivationSteering(method="act:random", vectors=vectors)
    chats = [[{"role": "user", "content": q}] for q in PROMPT_SOURCES.get("toyworld")(0, 24)]
    cache = BaseLogprobs()
    grid = [0.4 + 1e-3 * i for i in range(41)]
    with act.attach(model) as set_strength:
        stats = [kl_statistic(token_kls(model, tok, chats, act, set_strength, s, base_cache=cache,
                                        batch_size=24), statistic) for s in grid]  # fmt: skip
    worst = max(abs(b - a) / min(a, b) for a, b in itertools.pairwise(stats))
    assert min(stats) > 0.005  # a KL worth calibrating to, not a flat zero
    assert worst <= 0.05, worst
    assert stats[-1] > stats[0]  # and it grows with the strength
