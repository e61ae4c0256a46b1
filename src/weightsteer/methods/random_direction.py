"""The null: a random direction per hooked layer, norm-matched to the mean difference.

Per hooked layer, with the mean difference ``v_l`` (``act:mean_diff``) and a standard
Gaussian ``g_l`` drawn from (training seed, layer)::

    r_l = |v_l| g_l / |g_l|
    h_l <- h_l + s * r_l            at every position

It costs KL like any direction of that size and carries no behaviour, so every method's
effect at a budget is read against it: moving the score more than a random direction of
the same cost is what "moves the behaviour" means. One direction per training seed, so
it has a seed spread like the others.
"""

from __future__ import annotations

import hashlib
from functools import partial

import torch

from weightsteer.methods import Candidate, MethodInputs, register
from weightsteer.methods.activation import (
    ActivationConfig,
    ActivationSteering,
    States,
    fit_sources,
    fitted_states,
    hooked_layers,
)
from weightsteer.methods.mean_diff import mean_difference


def random_direction(hidden: int, seed: int, layer: int) -> torch.Tensor:
    """A unit ``[hidden]`` direction fixed by (seed, layer)."""
    key = hashlib.sha256(f"act:random/{seed}/{layer}".encode()).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(key[:8], "little") % (2**63))
    g = torch.randn(hidden, generator=gen, dtype=torch.float32)
    return g / g.norm()


def fit(states: States, layers: list[int], cfg: ActivationConfig, seed: int) -> ActivationSteering:
    norms = mean_difference(states["pos"], states["neg"]).norm(dim=-1)  # [layers]
    hidden = states["pos"].shape[-1]
    vectors = {
        layer: random_direction(hidden, seed, layer) * n
        for layer, n in zip(layers, norms, strict=True)
    }
    return ActivationSteering(
        method="act:random", seed=seed, vectors=vectors, position=cfg.position
    )


@register("act:random", ActivationConfig)
def random_candidates(inputs: MethodInputs, cfg: ActivationConfig) -> list[Candidate]:
    layers = hooked_layers(inputs, cfg)
    sources = fit_sources(inputs, cfg, layers)

    def build(seed: int) -> ActivationSteering:
        return fit(fitted_states(inputs, cfg), layers, cfg, seed)

    return [
        Candidate("act:random", "", seed, {**sources, "direction_seed": seed}, partial(build, seed))
        for seed in inputs.seeds
    ]
