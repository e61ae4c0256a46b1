"""Export a steering vector as a standard PEFT LoRA adapter: ``alpha * dW`` as ``B @ A``.

Serving stacks (PEFT, vLLM, TGI, SGLang) load LoRA adapters, not weight vectors. For each
parameter ``P`` (the weight of a linear module ``M``) the adapter holds
``lora_B [out, r]`` and ``lora_A [r, in]`` with ``lora_alpha = r`` (scaling 1), so
loading it adds exactly ``lora_B @ lora_A`` to ``M``'s weight. One rank ``r`` for every
module (the largest needed; smaller factors padded with zeros, which add nothing), as
serving stacks expect:

* a low-rank entry of the vector (LoRA: rank 2r; PiSSA) is written as is, ``alpha``
  folded into ``B``: exact;
* a dense entry (DoRA, OFT, IA3, DeLoRA) is factored by truncated SVD, ``B = U_k S_k``,
  ``A = Vh_k``, at rank ``k = rank``, or at the smallest rank whose relative Frobenius
  error ``||D - D_k|| / ||D||`` is at most ``max_error``; the error of each tensor and of
  the whole vector is reported (exact, from the dropped singular values).

A negative ``alpha`` is just another adapter (``B`` negated): one folder per strength,
since most servers cannot scale an adapter per request. 1-D deltas (biases, norms) have
no LoRA form and are refused: ship a merged model (``weightsteer steer --out``) instead.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from weightsteer.core.engine import VLLM_MAX_LORA_RANKS
from weightsteer.core.errors import UserError
from weightsteer.core.files import atomic_path
from weightsteer.core.param_names import module_name
from weightsteer.core.vector import LowRank, WeightVector

ADAPTER_WEIGHTS = "adapter_model.safetensors"
REPORT = "weightsteer_export.json"


@dataclass(frozen=True)
class TensorExport:
    name: str
    rank: int
    exact: bool
    rel_error: float  # ||D - D_k|| / ||D|| of this tensor (0 when exact)


@dataclass(frozen=True)
class ExportReport:
    tensors: list[TensorExport]
    rel_error: float  # over the whole vector
    alpha: float

    def to_json(self) -> dict:
        return {
            "alpha": self.alpha,
            "rel_error": self.rel_error,
            "tensors": [t.__dict__ for t in self.tensors],
        }


def _factor(
    d, rank: int | None, max_error: float | None
) -> tuple[torch.Tensor, torch.Tensor, float, float, bool]:
    """``(B [out, k], A [k, in], dropped energy, total energy, exact)`` of one delta."""
    if isinstance(d, LowRank):
        energy = float(d.dense().double().pow(2).sum())
        return d.B, d.A, 0.0, energy, True
    if d.dim() != 2:
        raise ValueError("1-D")
    u, s, vh = torch.linalg.svd(d.double(), full_matrices=False)
    energy = s.pow(2)  # [min(out, in)]
    total = float(energy.sum())
    tail = energy.flip(0).cumsum(0).flip(0)  # tail[k] = energy dropped at rank k
    if max_error is not None:
        ok = (tail <= (max_error**2) * total).nonzero()
        k = int(ok[0]) if len(ok) else s.numel()
        k = max(k, 1)
    else:
        assert rank is not None  # one of rank and max_error is given (checked above)
        k = min(int(rank), s.numel())
    dropped = float(tail[k]) if k < s.numel() else 0.0
    b = (u[:, :k] * s[:k]).float()
    return b, vh[:k].float(), dropped, total, k == s.numel()


def lora_factors(
    vector: WeightVector,
    *,
    alpha: float = 1.0,
    rank: int | None = None,
    max_error: float | None = None,
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], ExportReport]:
    """``{parameter: (B, A)}`` with ``alpha * dW ~= B @ A`` per parameter, and the report.

    Dense entries need ``rank`` or ``max_error`` (one of them); low-rank ones are exact."""
    if not math.isfinite(alpha) or alpha == 0:
        raise UserError(f"--alpha must be a finite, non-zero number, got {alpha}")
    if rank is not None and max_error is not None:
        raise UserError("give --rank or --max-error, not both")
    if rank is not None and rank < 1:
        raise UserError(f"--rank must be >= 1, got {rank}")
    if max_error is not None and not 0 <= max_error < 1:
        raise UserError(f"--max-error must be in [0, 1), got {max_error}")
    dense = [n for n, d in vector.deltas.items() if not isinstance(d, LowRank)]
    if dense and rank is None and max_error is None:
        raise UserError(
            f"this {vector.meta.family or 'dense'} vector has {len(dense)} dense tensors; give "
            "--rank K or --max-error E (relative Frobenius error) to factor them"
        )
    factors, rows = {}, []
    dropped = total = 0.0
    for name, d in vector.deltas.items():
        try:
            b, a, drop, energy, exact = _factor(d, rank, max_error)
        except ValueError:
            raise UserError(
                f"{name} is a 1-D delta, which a LoRA adapter cannot carry; ship a merged "
                "model instead (weightsteer steer --out)"
            ) from None
        factors[name] = ((alpha * b).contiguous(), a.contiguous())
        dropped, total = dropped + drop, total + energy
        rel = math.sqrt(drop / energy) if energy > 0 else 0.0
        rows.append(TensorExport(name, a.shape[0], exact, rel))
    rel_total = math.sqrt(dropped / total) if total > 0 else 0.0
    return factors, ExportReport(rows, rel_total, float(alpha))


def export_lora(
    vector: WeightVector,
    out_dir: str | Path,
    *,
    alpha: float = 1.0,
    rank: int | None = None,
    max_error: float | None = None,
    overwrite: bool = False,
) -> ExportReport:
    """Write a PEFT LoRA adapter folder whose effect is steering with ``alpha * dW``."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    if not len(vector):
        raise UserError("the vector has no tensors: there is nothing to export")
    factors, report = lora_factors(vector, alpha=alpha, rank=rank, max_error=max_error)
    modules = {module_name(n): n for n in factors}
    if any(not n.endswith(".weight") for n in factors):
        bad = next(n for n in factors if not n.endswith(".weight"))
        raise UserError(f"{bad} is not a linear weight; a LoRA adapter cannot carry it")
    r = max(a.shape[0] for _, a in factors.values())
    config = LoraConfig(
        r=r,
        lora_alpha=r,  # scaling = lora_alpha / r = 1
        target_modules=sorted(modules),
        lora_dropout=0.0,
        bias="none",
        base_model_name_or_path=vector.meta.base.model_id,
        task_type="CAUSAL_LM",
    )
    tensors = {}
    for module, name in modules.items():
        b, a = factors[name]  # [out, k], [k, in]: zero-padded to rank r
        tensors[f"base_model.model.{module}.lora_A.weight"] = torch.cat(
            [a, a.new_zeros(r - a.shape[0], a.shape[1])]
        )
        tensors[f"base_model.model.{module}.lora_B.weight"] = torch.cat(
            [b, b.new_zeros(b.shape[0], r - b.shape[1])], dim=1
        )
    with atomic_path(out_dir, overwrite=overwrite, is_dir=True) as tmp:
        config.save_pretrained(str(tmp))
        save_file(tensors, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        info = {
            **report.to_json(),
            "vector": {"family": vector.meta.family, "behavior": vector.meta.behavior,
                       "seed": vector.meta.seed, "base": vector.meta.base.model_dump()},
        }  # fmt: skip
        (tmp / REPORT).write_text(json.dumps(info, indent=2) + "\n")
    return report


def serving_hints(out_dir: str | Path, rank: int, base: str, name: str = "steer") -> list[str]:
    """How to serve the adapter ``export_lora`` wrote (rank ``rank``, on model ``base``):
    the vLLM ``--max-lora-rank`` bucket it needs and a ``LoRARequest`` line; a rank above
    vLLM's largest bucket says so."""
    bucket = next((b for b in VLLM_MAX_LORA_RANKS if b >= rank), None)
    if bucket is None:
        return [
            f"rank {rank} is above vLLM's largest --max-lora-rank ({VLLM_MAX_LORA_RANKS[-1]}); "
            "export again with a lower --rank or --max-error to serve it with vLLM"
        ]
    return [
        f"vLLM: vllm serve {base} --enable-lora --max-lora-rank {bucket} "
        f"--lora-modules {name}={out_dir}",
        f'   or: LoRARequest("{name}", 1, "{out_dir}") with LLM(..., enable_lora=True, '
        f"max_lora_rank={bucket})",
        f"PEFT: PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained({base!r}), "
        f"{str(out_dir)!r})",
    ]
