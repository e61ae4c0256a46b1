"""The activation-steering roster on closed forms: each fitted method recovers a planted
direction, and each keeps its own identity (spherical keeps norms, the cosine gate is
shut below its threshold, linear transport lands NEG on POS at s = 1, ablation removes
exactly the component along its direction, the random null is norm-matched and seeded).
Strength 0 and the exact restore of every method are checked on a model in
``test_registries.py``."""

from __future__ import annotations

import pytest
import torch

from weightsteer.core.errors import UserError
from weightsteer.methods import cosine_gated, linear_act, random_direction, spherical
from weightsteer.methods.activation import ActivationConfig
from weightsteer.methods.mean_diff import mean_difference
from weightsteer.pipeline import parse_config

PAIRS, LAYERS, HIDDEN = 256, [1, 2], 32


def planted(seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """States with POS = NEG + u + noise in every layer: ``({side: [pairs, layers,
    hidden]}, u [hidden])``."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(HIDDEN, generator=gen)
    u = 3 * u / u.norm()
    neg = torch.randn(PAIRS, len(LAYERS), HIDDEN, generator=gen)
    pos = neg + u + 0.5 * torch.randn(PAIRS, len(LAYERS), HIDDEN, generator=gen)
    return {"pos": pos, "neg": neg}, u


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


FITS = {
    "act:cosine_gated": lambda h: cosine_gated.fit(h, LAYERS, cosine_gated.CosineGatedConfig()),
    "act:spherical": lambda h: spherical.fit(h, LAYERS, ActivationConfig()),
    "act:linear_act": lambda h: linear_act.fit(h, LAYERS, linear_act.LinearActConfig()),
}


def direction(intervention, layer: int) -> torch.Tensor:
    """The direction a fitted method steers along at ``layer``."""
    tensors = intervention.fitted()
    if f"layers.{layer}.moments" in tensors:  # linear transport: its shift of the means
        m_pos, _, m_neg, _ = tensors[f"layers.{layer}.moments"]
        return m_pos - m_neg
    key = (
        f"layers.{layer}.vector" if f"layers.{layer}.vector" in tensors else f"layers.{layer}.unit"
    )
    return tensors[key]


@pytest.mark.parametrize("method", list(FITS))
def test_each_fitted_method_recovers_a_planted_direction(method):
    states, u = planted()
    fitted = FITS[method](states)
    for layer in LAYERS:
        assert cos(direction(fitted, layer), u) > 0.95, (method, layer)


def test_spherical_keeps_every_norm_and_turns_onto_its_direction_at_one():
    states, _ = planted()
    fitted = spherical.fit(states, LAYERS, ActivationConfig())
    h = torch.randn(4, 7, HIDDEN, generator=torch.Generator().manual_seed(1))
    for s in (-1.5, -1.0, -0.3, 0.2, 0.7, 1.0, 2.0):
        out = fitted.steer(h, s, LAYERS[0])
        assert torch.allclose(out.norm(dim=-1), h.norm(dim=-1), rtol=1e-5), s
    unit = fitted.units[LAYERS[0]]
    onto = fitted.steer(h, 1.0, LAYERS[0])
    assert torch.allclose(onto / onto.norm(dim=-1, keepdim=True), unit.expand_as(onto), atol=1e-4)
    away = fitted.steer(h, -1.0, LAYERS[0])
    assert torch.allclose(away / away.norm(dim=-1, keepdim=True), -unit.expand_as(away), atol=1e-4)
    # part of the way: the angle to the direction shrinks in proportion
    x = h[0, 0]
    before = torch.arccos(torch.clamp(x @ unit / x.norm(), -1, 1))
    half = fitted.steer(h, 0.5, LAYERS[0])[0, 0]
    after = torch.arccos(torch.clamp(half @ unit / half.norm(), -1, 1))
    assert float(after) == pytest.approx(float(before) / 2, rel=1e-4)


def test_the_cosine_gate_is_shut_below_its_threshold():
    states, _ = planted()
    cfg = cosine_gated.CosineGatedConfig(threshold=0.3)
    fitted = cosine_gated.fit(states, LAYERS, cfg)
    v = fitted.vectors[LAYERS[0]]
    unit = v / v.norm()
    other = torch.randn(HIDDEN, generator=torch.Generator().manual_seed(2))
    other = other - (other @ unit) * unit  # orthogonal to v
    weak = other + 0.1 * other.norm() * unit  # |cos| about 0.1 < 0.3
    strong = other + 2.0 * other.norm() * unit  # |cos| about 0.9 > 0.3
    h = torch.stack([weak, strong])[None]  # [1, 2, hidden]
    out = fitted.steer(h, 1.5, LAYERS[0])
    assert torch.equal(out[0, 0], h[0, 0])  # below the threshold: exactly untouched
    g = float(cosine_gated.gate(strong, unit, 0.3))
    assert torch.allclose(out[0, 1], strong + 1.5 * g * v, atol=1e-5) and g > 0


def test_linear_transport_lands_neg_on_pos_at_one_and_back_at_minus_one():
    states, _ = planted()
    fitted = linear_act.fit(states, LAYERS, linear_act.LinearActConfig())
    for j, layer in enumerate(LAYERS):
        pos, neg = states["pos"][:, j], states["neg"][:, j]  # [pairs, hidden]
        moved = fitted.steer(neg, 1.0, layer)
        assert torch.allclose(moved.mean(0), pos.mean(0), atol=1e-5)
        assert torch.allclose(moved.std(0, unbiased=False), pos.std(0, unbiased=False), atol=1e-5)
        back = fitted.steer(pos, -1.0, layer)
        assert torch.allclose(back.mean(0), neg.mean(0), atol=1e-5)
        assert torch.allclose(back.std(0, unbiased=False), neg.std(0, unbiased=False), atol=1e-5)
        half = fitted.steer(neg, 0.5, layer)
        assert torch.allclose(half.mean(0), (pos.mean(0) + neg.mean(0)) / 2, atol=1e-5)


def test_ablation_at_its_zero_point_removes_exactly_the_component_along_its_direction():
    from weightsteer.methods.activation import ActivationSteering

    states, _ = planted()
    v = mean_difference(states["pos"], states["neg"])[0]
    unit = v / v.norm()
    fitted = ActivationSteering(method="act:directional_ablation", vectors={1: v}, ablate={1: unit})
    h = torch.randn(3, 5, HIDDEN, generator=torch.Generator().manual_seed(3))
    s = 1e-3
    ablated = fitted.steer(h, s, 1) - s * v
    assert torch.allclose(ablated @ unit, torch.zeros(3, 5), atol=1e-5)
    assert torch.allclose(ablated, h - (h @ unit)[..., None] * unit, atol=1e-6)


def test_the_random_null_is_norm_matched_and_fixed_by_its_seed():
    states, u = planted()
    cfg = ActivationConfig()
    a, again, b = (random_direction.fit(states, LAYERS, cfg, seed) for seed in (0, 0, 1))
    norms = mean_difference(states["pos"], states["neg"]).norm(dim=-1)
    for j, layer in enumerate(LAYERS):
        assert float(a.vectors[layer].norm()) == pytest.approx(float(norms[j]), rel=1e-5)
        assert torch.equal(a.vectors[layer], again.vectors[layer])
        assert abs(cos(a.vectors[layer], b.vectors[layer])) < 0.9
        assert abs(cos(a.vectors[layer], u)) < 0.9  # not the behaviour's direction
    assert a.seed == 0 and b.seed == 1


@pytest.mark.parametrize("threshold", [-0.1, 1.0, 1.5])
def test_a_threshold_outside_its_range_is_refused_at_parse(threshold):
    with pytest.raises(UserError, match=r'compare\."act:cosine_gated"\.threshold'):
        parse_config({"compare": {"act:cosine_gated": {"threshold": threshold}}})


def test_topk_clusters_recovers_two_planted_directions_and_steers_each_state_by_its_own():
    from weightsteer.methods import topk_clusters

    gen = torch.Generator().manual_seed(4)
    u1, u2 = 3 * torch.eye(HIDDEN)[0], 3 * torch.eye(HIDDEN)[1]
    neg = torch.randn(PAIRS, len(LAYERS), HIDDEN, generator=gen)
    shift = torch.stack([u1 if i % 2 else u2 for i in range(PAIRS)])[:, None, :]
    pos = neg + shift + 0.3 * torch.randn(PAIRS, len(LAYERS), HIDDEN, generator=gen)
    fitted = topk_clusters.fit({"pos": pos, "neg": neg}, LAYERS, topk_clusters.TopkConfig(k=2))
    for layer in LAYERS:
        c = fitted.centroids[layer]
        best = sorted(max(cos(ci, u) for ci in c) for u in (u1, u2))
        assert best[0] > 0.95, best
    h = torch.stack([u1, u2])[None]  # [1, 2, hidden]: one state along each
    out = fitted.steer(h, 1.0, LAYERS[0]) - h
    assert cos(out[0, 0], u1) > 0.95 and cos(out[0, 1], u2) > 0.95
    one = topk_clusters.fit({"pos": pos, "neg": neg}, LAYERS, topk_clusters.TopkConfig(k=1))
    v = mean_difference(pos, neg)
    for j, layer in enumerate(LAYERS):  # k = 1 is the mean difference
        assert torch.allclose(one.centroids[layer][0], v[j], atol=1e-5)
    with pytest.raises(UserError, match="more than the 256 training pairs"):
        topk_clusters.fit({"pos": pos, "neg": neg}, LAYERS, topk_clusters.TopkConfig(k=PAIRS + 1))


def test_mean_centred_steers_each_sign_from_the_corpus_mean_to_its_own_side():
    from weightsteer.methods import mean_centred

    states, u = planted()
    centre = states["neg"].mean(0) - 2 * u  # a corpus sitting away from both sides
    fitted = mean_centred.fit(states, centre, LAYERS, mean_centred.MeanCentredConfig())
    for j, layer in enumerate(LAYERS):
        assert torch.allclose(fitted.pos[layer], states["pos"][:, j].mean(0) - centre[j])
        assert torch.allclose(fitted.neg[layer], states["neg"][:, j].mean(0) - centre[j])
        assert cos(fitted.pos[layer] - fitted.neg[layer], u) > 0.95  # the planted direction
        h = torch.zeros(2, HIDDEN)
        assert torch.allclose(fitted.steer(h, 0.5, layer), 0.5 * fitted.pos[layer].expand(2, -1))
        assert torch.allclose(fitted.steer(h, -2.0, layer), 2 * fitted.neg[layer].expand(2, -1))
    # centred on the pooled sides it is half the mean difference (what the docstring says)
    pooled = torch.cat([states["pos"], states["neg"]]).mean(0)
    half = mean_centred.fit(states, pooled, LAYERS, mean_centred.MeanCentredConfig())
    v = mean_difference(states["pos"], states["neg"])
    assert torch.allclose(half.pos[LAYERS[0]], v[0] / 2, atol=1e-5)


def test_angular_recovers_the_plane_keeps_norms_and_turns_onto_its_axis():
    from weightsteer.methods import angular

    states, u = planted()
    fitted = angular.fit(states, LAYERS, ActivationConfig())
    b1, b2 = fitted.planes[LAYERS[0]]
    assert cos(b1, u) > 0.95 and abs(float(b1 @ b2)) < 1e-5 and float(b2.norm()) == pytest.approx(1)
    h = torch.randn(3, 5, HIDDEN, generator=torch.Generator().manual_seed(5))
    assert torch.equal(fitted.steer(h, 1.7, LAYERS[0]), fitted.steer(h, 1.0, LAYERS[0]))
    assert fitted.max_strength == 1.0  # calibration searches no further
    for s in (-1.0, -0.4, 0.3, 1.0, 1.7):
        out = fitted.steer(h, s, LAYERS[0])
        assert torch.allclose(out.norm(dim=-1), h.norm(dim=-1), rtol=1e-5), s
        off = lambda x: x - (x @ b1)[..., None] * b1 - (x @ b2)[..., None] * b2  # noqa: E731
        assert torch.allclose(off(out), off(h), atol=1e-5), s  # out of plane: untouched
    onto, away = fitted.steer(h, 1.0, LAYERS[0]), fitted.steer(h, -1.0, LAYERS[0])
    assert torch.allclose(onto @ b2, torch.zeros(3, 5), atol=1e-5) and bool((onto @ b1 > 0).all())
    assert torch.allclose(away @ b2, torch.zeros(3, 5), atol=1e-5) and bool((away @ b1 < 0).all())
    half = fitted.steer(h, 0.5, LAYERS[0])
    phi = torch.atan2(h @ b2, h @ b1)
    assert torch.allclose(torch.atan2(half @ b2, half @ b1), phi / 2, atol=1e-4)


def _sspace(rank=None, ablate=False):
    """An S-space fit on planted outputs of one random square projection per layer."""
    from weightsteer.methods import sspace

    gen = torch.Generator().manual_seed(6)
    states, u = planted()
    sites = [(layer, "mlp.down_proj") for layer in LAYERS]
    bases = {}
    for site in sites:
        lin = torch.nn.Linear(HIDDEN, HIDDEN)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(HIDDEN, HIDDEN, generator=gen))
            lin.bias.copy_(torch.randn(HIDDEN, generator=gen))
        bases[site] = sspace.matrix_basis(lin)
    cfg = sspace.SSpaceConfig(rank=rank)
    return sspace.fit(states, sites, bases, cfg, "act:sspace", ablate), states, u, sites


def test_sspace_recovers_a_planted_direction_and_lands_neg_on_pos_with_the_gate_open():
    fitted, states, u, sites = _sspace()
    for j, site in enumerate(sites):
        f = fitted.fits[site]
        direction = (f["root"] * f["d"]) @ f["u"].T  # the output-space step at s = 1, gate 1
        assert cos(direction, u) > 0.95
        v = states["pos"][:, j].mean(0) - states["neg"][:, j].mean(0)
        assert torch.allclose(direction, v, atol=1e-4)  # every mode kept: the mean difference
        # a state along d in the whitened coordinates opens the gate fully
        along = f["bias"] + (f["root"] * f["d"]) @ f["u"].T
        out = fitted.steer(along[None], 1.0, site)[0]
        assert torch.allclose(out - along, v, atol=1e-4)
        against = f["bias"] - (f["root"] * f["d"]) @ f["u"].T  # anti-aligned: open as wide
        out = fitted.steer(against[None], 1.0, site)[0]
        assert torch.allclose(out - against, v, atol=1e-4)
        # one with no component along d stays exactly where it is
        z = torch.randn(len(f["d"]), generator=torch.Generator().manual_seed(7))
        z = z - (z @ f["d"]) / (f["d"] @ f["d"]) * f["d"]
        ortho = f["bias"] + (f["root"] * z) @ f["u"].T
        assert torch.allclose(fitted.steer(ortho[None], 3.0, site)[0], ortho, atol=1e-4)
    few, *_ = _sspace(rank=4)
    assert all(len(f["d"]) == 4 for f in few.fits.values())
    with pytest.raises(UserError, match="rank 99 is more than"):
        _sspace(rank=99)


def test_sspace_ablate_at_its_zero_point_removes_exactly_the_whitened_component():
    fitted, _, _, sites = _sspace(ablate=True)
    assert fitted.jumps_at_zero
    f = fitted.fits[sites[0]]
    h = torch.randn(3, 4, HIDDEN, generator=torch.Generator().manual_seed(8))
    s = 1e-3
    step = (f["root"] * f["d"]) @ f["u"].T
    ablated = fitted.steer(h, s, sites[0]) - s * step
    z = (ablated - f["bias"]) @ f["u"] / f["root"]
    assert torch.allclose(z @ f["d"], torch.zeros(3, 4), atol=1e-3)
    z0 = (h - f["bias"]) @ f["u"] / f["root"]
    d_hat = f["d"] / f["d"].norm()
    removed = ((z0 @ d_hat)[..., None] * d_hat * f["root"]) @ f["u"].T
    assert torch.allclose(ablated, h - removed, atol=1e-4)


def test_the_pooled_basis_is_the_svd_of_every_residual_matrix_side_by_side(tiny):
    from weightsteer.methods.activation import decoder_blocks
    from weightsteer.methods.sspace import WRITERS
    from weightsteer.methods.sspace_pool import pooled_basis

    model, _ = tiny
    side = []
    for name, mod in decoder_blocks(model).named_modules():
        if isinstance(mod, torch.nn.Linear):
            w = mod.weight.detach().double()
            w = w / w.norm()
            side.append(w if name.rsplit(".", 1)[-1] in WRITERS else w.T)
    u, s, _ = torch.linalg.svd(torch.cat(side, dim=1), full_matrices=False)
    basis = pooled_basis(model)
    assert torch.allclose(basis.s.double(), s[: len(basis.s)], rtol=1e-4)
    for i in range(3):  # the leading directions, up to sign
        assert abs(float(basis.u[:, i].double() @ u[:, i])) == pytest.approx(1, abs=1e-4)


def test_sspace_refuses_a_model_whose_blocks_have_no_output_projection():
    from weightsteer.methods.sspace import output_projections

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mix = torch.nn.Linear(4, 4)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("C", (), {"hidden_size": 4, "num_hidden_layers": 2})()
            self.layers = torch.nn.ModuleList([Block(), Block()])

    with pytest.raises(UserError, match="no output projection"):
        output_projections(Model())


def _direction_of(intervention, layer: int, sign: int = 1) -> torch.Tensor:
    """The direction a fitted method's registered builder steers along at ``layer``."""
    t = intervention.fitted()
    if f"layers.{layer}.plane" in t:  # angular: its first axis
        return t[f"layers.{layer}.plane"][0]
    if f"layers.{layer}.centroids" in t:  # clusters: their mean
        return t[f"layers.{layer}.centroids"].mean(0)
    if f"layers.{layer}.pos" in t:  # corpus-centred: one vector per side
        return t[f"layers.{layer}.pos"] - t[f"layers.{layer}.neg"]
    return direction(intervention, layer)


BLOCK_METHODS = ["act:mean_diff", "act:pca", "act:directional_ablation", "act:cosine_gated",
                 "act:spherical", "act:linear_act", "act:topk_clusters", "act:angular"]  # fmt: skip


@pytest.mark.parametrize("method", BLOCK_METHODS)
def test_every_registered_builder_recovers_a_planted_direction_on_every_seed(method):
    """The registered builder, not a helper: planted states stand in for the pairs' hidden
    states (the cache the builders share), one fit per training seed on its resample."""
    from weightsteer.methods import MethodInputs, candidates
    from weightsteer.methods.compare_config import CompareConfig
    from weightsteer.pairs.personas import PAIRS

    states, u = planted()
    inputs = MethodInputs(None, None, PAIRS["honesty"], {}, {}, LAYERS, CompareConfig(),
                          seeds=(0, 1))  # fmt: skip
    cfg = inputs.settings_of(method)
    inputs.shared["hidden_states", tuple(LAYERS), "", cfg.position, cfg.batch_size] = states
    built = candidates([method], inputs)
    assert [c.seed for c in built] == [0, 1]
    fits = [c.build() for c in built]
    for fitted in fits:
        for layer in LAYERS:
            assert cos(_direction_of(fitted, layer), u) > 0.95, (method, layer)
    a, b = (_direction_of(f, LAYERS[0]) for f in fits)
    assert not torch.equal(a, b)  # each seed its own resample of the pairs
