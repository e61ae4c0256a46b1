"""What a vector or an adapter was made for: a model's fingerprint (architecture, parameter
layout, a weights sample) and whether another model has the same weights."""

from __future__ import annotations

import base64
import hashlib

import torch
from pydantic import BaseModel, ConfigDict


class Fingerprint(BaseModel):
    """What a vector was made for: architecture, parameter layout and a weights sample.

    ``shapes_hash`` covers every parameter name and shape; ``weights_hash`` a fixed sample
    of values (rounded to bfloat16, so float32 and bfloat16 loads of one checkpoint agree).
    A fine-tune of the base has the same shapes but another weights hash. ``weights_sample``
    is that sample itself (bfloat16 bytes, base64): a float16 load rounds otherwise and has
    another hash, so ``same_weights`` compares it within rounding instead.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_id: str
    architecture: str
    shapes_hash: str
    weights_hash: str
    num_layers: int | None = None
    weights_sample: str | None = None


def same_weights(fp: Fingerprint, base: Fingerprint, *, half: bool = False) -> bool:
    """Whether the model fingerprinted as ``fp`` has ``base``'s weights: the same hash or,
    for a model loaded in float16 (``half``), every sampled value within float16 and
    bfloat16 rounding of the base's (a float16 load of the same checkpoint rounds each
    value once more, so its hash differs; a float32 or bfloat16 load must match exactly)."""
    if fp.weights_hash == base.weights_hash:
        return True
    if not half or fp.weights_sample is None or base.weights_sample is None:
        return False
    a, b = (_sample_values(x) for x in (fp.weights_sample, base.weights_sample))
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=2**-7, atol=1e-6))


def _sample_values(text: str) -> torch.Tensor:
    raw = bytearray(base64.b64decode(text))
    return torch.frombuffer(raw, dtype=torch.bfloat16).float()


def is_half(model: torch.nn.Module) -> bool:
    """Whether ``model``'s floating parameters are float16 (``same_weights``'s ``half``)."""
    return any(p.dtype == torch.float16 for p in model.parameters())


def sample_index(numel: int, k: int = 16) -> torch.Tensor:
    """``k`` evenly spaced indices in ``[0, numel)``, exact in integers (a float linspace
    rounds past the end for tensors of 10^8 elements)."""
    k = min(k, numel)
    return torch.arange(k, dtype=torch.long) * (numel - 1) // max(k - 1, 1)


@torch.no_grad()
def fingerprint(model: torch.nn.Module, model_id: str | None = None) -> Fingerprint:
    """Fingerprint a loaded model (cheap: 16 values per parameter are hashed)."""
    shapes = hashlib.sha256()
    weights = hashlib.sha256()
    samples = []
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        shapes.update(f"{name}:{tuple(p.shape)};".encode())
        flat = p.detach().reshape(-1)
        idx = sample_index(flat.numel()).to(flat.device)
        sample = flat[idx].to(torch.bfloat16).cpu()
        weights.update(sample.float().numpy().tobytes())
        samples.append(sample)
    config = getattr(model, "config", None)
    return Fingerprint(
        model_id=model_id or str(getattr(model, "name_or_path", "") or "unknown"),
        architecture=type(model).__name__,
        shapes_hash=shapes.hexdigest()[:16],
        weights_hash=weights.hexdigest()[:16],
        num_layers=getattr(config, "num_hidden_layers", None),
        weights_sample=base64.b64encode(
            torch.cat(samples).view(torch.int16).numpy().tobytes() if samples else b""
        ).decode(),
    )
