"""S-space steering: steer each hooked block's output projections (attention output,
MLP down projection) in the singular basis of their own weights, gated per token by how
much the token already points along the behaviour there (the arithmetic relaxation of
AntiPaSTO, Clark 2026, as in steering-lite's ``sspace``).

For an output projection ``y = W x + b`` with ``W = U diag(S) V^T``, the whitened
singular coordinates of a token are ``z = U^T (y - b) / sqrt(S)`` (``= sqrt(S) V^T x``).
From the training pairs' outputs at that projection, the behaviour's direction there is
the mean difference in those coordinates, kept on the ``rank`` modes that carry most of
it (largest ``|U_i^T (mean y_pos - mean y_neg)|``; all modes when ``rank`` is unset)::

    d      = U^T (mean y_pos - mean y_neg) / sqrt(S)                        [r]
    gate   = |cos(z, d)|                                                    in [0, 1]
    y     <- y + s * gate * U (sqrt(S) * d)                                 (sspace)
    y     <- y - U (sqrt(S) * (z . d^) d^) + s * U (sqrt(S) * d)            (sspace_ablate)

``U (sqrt(S) d)`` is the output-space mean difference restricted to the kept modes, so
with every mode kept and a gate of 1, ``s = 1`` moves the NEG mean output onto the POS
one. Strength 0 is the unsteered model; ``act:sspace_ablate`` jumps at 0 like
``act:directional_ablation`` (its smallest strength is the ablation alone, the KL floor a
calibration can reach). ``act:sspace_pool`` uses one basis for the residual stream
instead (``sspace_pool.py``).

The projections are the Linear modules of each block whose output is the residual
stream and whose name is one of ``WRITERS``; a model with none is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field

from weightsteer.core.errors import UserError
from weightsteer.methods import Candidate, MethodInputs, register
from weightsteer.methods.activation import (
    ActivationConfig,
    HookSteering,
    States,
    activation_candidate,
    decoder_blocks,
    fitted_states,
)

WRITERS = ("o_proj", "down_proj", "out_proj", "c_proj", "dense_4h_to_h", "fc2", "wo", "w2")
Site = tuple[int, str]  # (layer, part in the block)


class SSpaceConfig(ActivationConfig):
    rank: int | None = Field(
        8, ge=1, description="singular modes kept per matrix, those carrying most of the mean "
        "difference (none: all)"
    )  # fmt: skip


def output_projections(model: Any) -> list[str]:
    """The parts of a decoder block that write the residual stream (``self_attn.o_proj``,
    ``mlp.down_proj``), in module order."""
    hidden = model.config.hidden_size
    block = decoder_blocks(model)[0]
    parts = [
        name
        for name, mod in block.named_modules()
        if name.rsplit(".", 1)[-1] in WRITERS
        and isinstance(getattr(mod, "weight", None), torch.Tensor)
        and mod.weight.dim() == 2
        and mod.weight.shape[0] == hidden
    ]
    if not parts:
        raise UserError(
            f"S-space steering: the blocks of this {type(model).__name__} have no output "
            f"projection named {'/'.join(WRITERS)} writing the residual stream; pick another "
            "method"
        )
    return parts


def local_skeleton(source: str) -> Any:
    """The model ``source`` names, built on the meta device from a config found without a
    download or a build (a local folder, the hub cache); None when there is none."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from weightsteer.core.sources import is_registered

    if is_registered(source):
        return None  # made on first use; its blocks are checked when the method is fit
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):
        return None
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def check_projections(pair: Any, run: Any) -> None:
    """Before any model loads: refuse a model whose blocks have no output projection."""
    model = local_skeleton(str(run.model.id))
    if model is not None:
        output_projections(model)


@dataclass(frozen=True)
class Basis:
    """One matrix's singular basis on the residual side: ``u`` [hidden, modes], ``s``
    [modes] singular values (> 0), ``bias`` [hidden] or None."""

    u: torch.Tensor
    s: torch.Tensor
    bias: torch.Tensor | None = None


def matrix_basis(module: Any) -> Basis:
    """A Linear's left singular basis (its output side), modes of ~0 dropped."""
    w = module.weight.detach().float().cpu()
    u, s, _ = torch.linalg.svd(w, full_matrices=False)
    keep = s > s[0] * 1e-6
    bias = getattr(module, "bias", None)
    return Basis(u[:, keep], s[keep], None if bias is None else bias.detach().float().cpu())


@dataclass(frozen=True, kw_only=True)
class SSpaceSteering(HookSteering):
    """Per site: ``u`` [hidden, r], ``root`` = sqrt(S) [r], ``d`` [r], optional bias."""

    fits: dict[Site, dict[str, torch.Tensor]]
    ablate: bool = False

    def layers(self) -> list[int]:
        return sorted({layer for layer, _ in self.fits})

    def sites(self) -> dict[Any, Site]:
        return {site: site for site in self.fits}

    @property
    def jumps_at_zero(self) -> bool:  # type: ignore[override]
        return self.ablate

    def steer(self, h: torch.Tensor, s: float, site: Any) -> torch.Tensor:
        f = {k: v.to(h.device) for k, v in self.fits[site].items()}
        u, root, d = f["u"], f["root"], f["d"]
        z = ((h - f["bias"]) if "bias" in f else h) @ u / root  # [..., r]
        d_hat = d / d.norm().clamp_min(1e-12)
        if self.ablate:
            along = (z @ d_hat)[..., None] * d_hat  # [..., r]
            return h - (along * root) @ u.T + s * (root * d) @ u.T
        gate = ((z @ d_hat) / z.norm(dim=-1).clamp_min(1e-12)).abs()[..., None]
        return h + s * gate * ((root * d) @ u.T)

    def fitted(self) -> dict[str, torch.Tensor]:
        return {f"layers.{layer}.{part}.{k}": v for (layer, part), f in self.fits.items()
                for k, v in f.items()}  # fmt: skip


def fit_site(pos: torch.Tensor, neg: torch.Tensor, basis: Basis, rank: int | None) -> dict:
    """``[pairs, hidden]`` outputs of one site on each side -> its fitted tensors."""
    along = (pos.mean(0) - neg.mean(0)) @ basis.u  # [modes]: the mean difference per mode
    if rank is not None and rank > len(basis.s):
        raise UserError(f"S-space rank {rank} is more than this matrix's {len(basis.s)} modes")
    keep = along.abs().argsort(descending=True)[:rank] if rank else torch.arange(len(basis.s))
    keep = keep.sort().values
    root = basis.s[keep].sqrt()
    out = {"u": basis.u[:, keep].contiguous(), "root": root, "d": along[keep] / root}
    return out if basis.bias is None else {**out, "bias": basis.bias}


def fit(
    states: States, sites: list[Site], bases: dict[Site, Basis], cfg: Any, method: str,
    ablate: bool = False,
) -> SSpaceSteering:  # fmt: skip
    """``states`` {side: [pairs, len(sites), hidden]}, one column per site."""
    fits = {
        site: fit_site(states["pos"][:, j], states["neg"][:, j], bases[site], cfg.rank)
        for j, site in enumerate(sites)
    }
    return SSpaceSteering(method=method, fits=fits, ablate=ablate, position=cfg.position)


def sspace_candidates(
    method: str, inputs: MethodInputs, cfg: SSpaceConfig, ablate: bool
) -> list[Candidate]:
    parts = output_projections(inputs.model)
    blocks = decoder_blocks(inputs.model)

    def states() -> States:
        by_part = [fitted_states(inputs, cfg, part) for part in parts]
        return {side: torch.cat([s[side] for s in by_part], dim=1) for side in ("pos", "neg")}

    def build(h: States, layers: list[int]) -> SSpaceSteering:
        sites = [(layer, part) for part in parts for layer in layers]
        bases = {(lay, p): matrix_basis(blocks[lay].get_submodule(p)) for lay, p in sites}
        return fit(h, sites, bases, cfg, method, ablate)

    return activation_candidate(method, inputs, cfg, build, sources={"parts": parts}, states=states)


@register("act:sspace", SSpaceConfig, check=check_projections)
def sspace(inputs: MethodInputs, cfg: SSpaceConfig) -> list[Candidate]:
    return sspace_candidates("act:sspace", inputs, cfg, ablate=False)
