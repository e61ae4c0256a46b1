"""Top-k clusters: several behaviour directions instead of one, each position steered
along the one its state is most aligned with.

Per hooked layer, the paired differences ``D_i = h(pos_i) - h(neg_i)`` are clustered by
cosine k-means (``k`` clusters, unit-normalised differences, k-means++ starts fixed by
the training seed); each cluster's direction is the mean of its members' raw differences,
so it keeps their scale::

    c_j = mean_{i in cluster j} D_i
    j*(h) = argmax_j cos(h, c_j)         (per position)
    h <- h + s * c_{j*(h)}

With ``k = 1`` this is ``act:mean_diff`` (up to float rounding). Strength 0 is the
unsteered model; the sign comes from the training pairs (POS minus NEG).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field

from weightsteer.core.config import entry_settings
from weightsteer.core.errors import UserError
from weightsteer.methods import METHODS, Candidate, MethodInputs, register
from weightsteer.methods.activation import (
    ActivationConfig,
    HookSteering,
    States,
    activation_candidate,
)


class TopkConfig(ActivationConfig):
    k: int = Field(3, ge=1, description="clusters of the paired differences")
    iterations: int = Field(25, ge=1, description="k-means iterations")


def cosine_kmeans(diffs: torch.Tensor, k: int, iterations: int, seed: int) -> torch.Tensor:
    """``[pairs, hidden]`` differences -> ``[k, hidden]`` cluster means of the raw
    differences, clustered by the direction of each."""
    x = diffs.double()
    unit = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    key = hashlib.sha256(f"act:topk_clusters/{seed}".encode()).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(key[:8], "little") % (2**63))
    centres = unit[torch.randint(len(unit), (1,), generator=gen)]
    while len(centres) < k:  # k-means++: far (in cosine) from the centres so far
        dist = 1 - (unit @ centres.T).max(dim=1).values  # [pairs]
        weights = dist.clamp_min(0) + 1e-12
        centres = torch.cat([centres, unit[torch.multinomial(weights, 1, generator=gen)]])
    for _ in range(iterations):
        assign = (unit @ centres.T).argmax(dim=1)  # [pairs]
        for j in range(k):
            members = unit[assign == j]
            if len(members):
                m = members.mean(0)
                centres[j] = m / m.norm().clamp_min(1e-12)
    assign = (unit @ centres.T).argmax(dim=1)
    means = [x[assign == j].mean(0) if (assign == j).any() else x.mean(0) for j in range(k)]
    return torch.stack(means).float()


@dataclass(frozen=True, kw_only=True)
class ClusterSteering(HookSteering):
    centroids: dict[int, torch.Tensor]  # layer -> [k, hidden] float32

    def layers(self) -> list[int]:
        return list(self.centroids)

    def steer(self, h: torch.Tensor, s: float, layer: int) -> torch.Tensor:
        c = self.centroids[layer].to(h.device)  # [k, hidden]
        unit = c / c.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        choice = (h @ unit.T).argmax(dim=-1)  # [batch, seq]: most aligned (cos up to |h|)
        return h + s * c[choice]

    def fitted(self) -> dict[str, torch.Tensor]:
        return {f"layers.{k}.centroids": c for k, c in self.centroids.items()}


def fit(states: States, layers: list[int], cfg: TopkConfig, seed: int = 0) -> ClusterSteering:
    pos, neg = states["pos"], states["neg"]
    if len(pos) != len(neg):
        raise UserError(
            f"act:topk_clusters pairs line i of pos.jsonl with line i of neg.jsonl, but they "
            f"hold {len(pos)} and {len(neg)} pairs; give both sides the same questions"
        )
    if cfg.k > len(pos):
        raise UserError(
            f'compare."act:topk_clusters".k = {cfg.k} is more than the {len(pos)} training '
            "pairs; lower k"
        )
    diffs = pos - neg  # [pairs, layers, hidden]
    centroids = {
        layer: cosine_kmeans(diffs[:, j], cfg.k, cfg.iterations, seed)
        for j, layer in enumerate(layers)
    }
    return ClusterSteering(
        method="act:topk_clusters", centroids=centroids, position=cfg.position, seed=seed
    )


def _check(pair: Any, run: Any) -> None:
    k = entry_settings(run.compare, METHODS, "act:topk_clusters").k
    if k > run.questions.n_train:
        raise UserError(
            f'compare."act:topk_clusters".k = {k} is more than questions.n_train = '
            f"{run.questions.n_train}, the most training pairs there can be; lower k"
        )


@register("act:topk_clusters", TopkConfig, check=_check)
def topk_candidates(inputs: MethodInputs, cfg: TopkConfig) -> list[Candidate]:
    return activation_candidate(
        "act:topk_clusters", inputs, cfg, lambda h, layers: fit(h, layers, cfg)
    )
