"""WeightVector: a direction in weight space, dW = theta_pos - theta_neg.

Each entry is the delta of one parameter ``P`` of the base model (its own state-dict name):

* low rank, ``delta = B @ A`` with ``B: [out, r]`` and ``A: [r, in]`` (LoRA, PiSSA), stored
  as ``P::B`` and ``P::A``; never densified by the algebra below;
* dense, ``delta: [*shape]`` (DoRA, OFT, IA3, DeLoRA), stored as ``P``.

Everything is float32. Frobenius algebra on low-rank entries works on the factors:

    <B1 A1, B2 A2> = sum((B1^T B2) * (A1 A2^T))      (r1 x r2 matrices)
    <B A, D>       = sum(B * (D A^T))                 (out x r)

Sums of low-rank entries concatenate factors; a component that appears with opposite
signs on both sides (the shared PiSSA initialisation B0 A0 in pos - neg) cancels exactly,
so rank stays at 2r where the mathematics says it is 2r.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from weightsteer.core.errors import UserError
from weightsteer.core.files import atomic_path
from weightsteer.core.models import Fingerprint
from weightsteer.core.param_names import layer_index, matches_module, module_kind

FORMAT_VERSION = 1
METADATA_KEY = "weightsteer"


@dataclass(frozen=True)
class LowRank:
    """A low-rank delta ``B @ A``."""

    B: torch.Tensor  # [out, r]
    A: torch.Tensor  # [r, in]

    @property
    def rank(self) -> int:
        return self.A.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.B.shape[0], self.A.shape[1])

    def dense(self) -> torch.Tensor:  # [out, in]
        return self.B @ self.A

    def scale(self, c: float) -> LowRank:
        return LowRank(self.B * c, self.A)


Delta = Union[torch.Tensor, LowRank]  # noqa: UP007 - used at runtime in isinstance checks


class VectorMeta(BaseModel):
    """Self-description stored in the file header: which base, family, data and recipe."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = FORMAT_VERSION
    base: Fingerprint
    family: str | None = None
    adapter: dict[str, Any] = Field(default_factory=dict)
    behavior: str | None = None
    personas: dict[str, Any] | None = None
    seed: int | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    chat: dict[str, Any] = Field(default_factory=dict)  # how chats were rendered in training
    versions: dict[str, str] = Field(default_factory=dict)
    provenance: list[str] = Field(default_factory=list)

    def derived(self, step: str) -> VectorMeta:
        return self.model_copy(update={"provenance": [*self.provenance, step]})


def _shape(d: Delta) -> tuple[int, ...]:
    return d.shape if isinstance(d, LowRank) else tuple(d.shape)


def lowrank_sum(terms: Iterable[tuple[float, LowRank]]) -> LowRank:
    """sum_i c_i B_i A_i as one factor pair; exactly cancelling components are dropped.

    A component (column b of B, row a of A) is dropped when b or a is zero, or when the
    same a appears with -b elsewhere (bitwise): both sides then contribute exactly 0.
    """
    terms = list(terms)
    B = torch.cat([t.B * c if c != 1.0 else t.B for c, t in terms], dim=1)  # [out, k]
    A = torch.cat([t.A for _, t in terms], dim=0)  # [k, in]
    Bt = B.T.contiguous()  # [k, out]
    keep = ((A != 0).any(dim=1) & (Bt != 0).any(dim=1)).tolist()
    by_row: dict[bytes, list[int]] = {}
    a_np = A.detach().cpu().numpy()
    for i in range(A.shape[0]):
        if keep[i]:
            by_row.setdefault(a_np[i].tobytes(), []).append(i)
    for group in (g for g in by_row.values() if len(g) > 1):
        for x, i in enumerate(group):
            for j in group[x + 1 :]:
                if keep[i] and keep[j] and torch.equal(Bt[i], -Bt[j]):
                    keep[i] = keep[j] = False
    idx = torch.tensor([i for i, k in enumerate(keep) if k], dtype=torch.long, device=A.device)
    return LowRank(B.index_select(1, idx).contiguous(), A.index_select(0, idx).contiguous())


def combine(a: Delta | None, b: Delta | None, cb: float) -> Delta:
    """a + cb * b, staying low-rank when both are low-rank."""
    if a is None:
        assert b is not None
        return b.scale(cb) if isinstance(b, LowRank) else b * cb
    if b is None:
        return a
    if isinstance(a, LowRank) and isinstance(b, LowRank):
        return lowrank_sum([(1.0, a), (cb, b)])
    da = a.dense() if isinstance(a, LowRank) else a
    db = b.dense() if isinstance(b, LowRank) else b
    return da + cb * db


def inner(x: Delta, y: Delta) -> float:
    """Frobenius inner product <x, y>, in float64, without densifying low-rank entries."""
    if isinstance(x, LowRank) and isinstance(y, LowRank):
        g = (x.B.T.double() @ y.B.double()) * (x.A.double() @ y.A.T.double())
        return float(g.sum())
    if isinstance(y, LowRank):
        x, y = y, x
    if isinstance(x, LowRank):
        assert not isinstance(y, LowRank)
        return float((x.B.double() * (y.double() @ x.A.T.double())).sum())
    assert not isinstance(y, LowRank)
    return float(torch.dot(x.reshape(-1).double(), y.reshape(-1).double()))


def lowrank_svd(d: LowRank) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD of B @ A from the factors: U [out, r], S [r], Vh [r, in] (QR + r x r SVD)."""
    qb, rb = torch.linalg.qr(d.B)  # [out, r], [r, r]
    qa, ra = torch.linalg.qr(d.A.T)  # [in, r], [r, r]
    u, s, vh = torch.linalg.svd(rb @ ra.T)
    return qb @ u, s, vh @ qa.T


class WeightVector:
    """dW over a set of base-model parameters, with metadata and exact algebra."""

    def __init__(self, deltas: Mapping[str, Delta], meta: VectorMeta):
        self.deltas: dict[str, Delta] = dict(sorted(deltas.items()))
        self.meta = meta
        for name, d in self.deltas.items():
            tensors = (d.B, d.A) if isinstance(d, LowRank) else (d,)
            if any(t.dtype != torch.float32 for t in tensors):
                raise ValueError(f"{name}: weight vectors hold float32 tensors")
            if isinstance(d, LowRank) and d.B.shape[1] != d.A.shape[0]:
                raise ValueError(f"{name}: B is {tuple(d.B.shape)} but A is {tuple(d.A.shape)}")

    # -- container -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.deltas)

    def __iter__(self) -> Iterator[str]:
        return iter(self.deltas)

    def __getitem__(self, name: str) -> Delta:
        return self.deltas[name]

    def __repr__(self) -> str:
        lr = sum(isinstance(d, LowRank) for d in self.deltas.values())
        return (
            f"WeightVector({len(self)} tensors, {lr} low-rank, family={self.meta.family}, "
            f"base={self.meta.base.model_id}, norm={self.norm():.4g})"
        )

    def dense(self, name: str) -> torch.Tensor:
        d = self.deltas[name]
        return d.dense() if isinstance(d, LowRank) else d

    def shape(self, name: str) -> tuple[int, ...]:
        return _shape(self.deltas[name])

    def rank(self, name: str) -> int | None:
        d = self.deltas[name]
        return d.rank if isinstance(d, LowRank) else None

    # -- algebra ---------------------------------------------------------------------
    def _check_same_base(self, other: WeightVector) -> None:
        a, b = self.meta.base, other.meta.base
        if (a.architecture, a.shapes_hash) != (b.architecture, b.shapes_hash):
            raise UserError(
                f"vectors belong to different bases ({a.model_id} vs {b.model_id}); "
                "combine only vectors of one base model"
            )
        for name in self.deltas.keys() & other.deltas.keys():
            if self.shape(name) != other.shape(name):
                raise UserError(
                    f"{name}: shapes differ ({self.shape(name)} vs {other.shape(name)})"
                )

    def _plus(self, other: WeightVector, c: float, op: str) -> WeightVector:
        self._check_same_base(other)
        names = self.deltas.keys() | other.deltas.keys()
        out = {n: combine(self.deltas.get(n), other.deltas.get(n), c) for n in names}
        return WeightVector(out, self.meta.derived(f"{op} [{other.meta.family}]"))

    def __add__(self, other: WeightVector) -> WeightVector:
        return self._plus(other, 1.0, "+")

    def __sub__(self, other: WeightVector) -> WeightVector:
        return self._plus(other, -1.0, "-")

    def __mul__(self, c: float) -> WeightVector:
        if not isinstance(c, int | float) or not math.isfinite(c):
            return NotImplemented
        out = {n: d.scale(c) if isinstance(d, LowRank) else d * c for n, d in self.deltas.items()}
        return WeightVector(out, self.meta.derived(f"* {c:g}"))

    __rmul__ = __mul__

    def __neg__(self) -> WeightVector:
        return self * -1.0

    def __truediv__(self, c: float) -> WeightVector:
        return self * (1.0 / c)

    def dot(self, other: WeightVector) -> float:
        """Frobenius inner product over the parameters both vectors touch."""
        self._check_same_base(other)
        common = self.deltas.keys() & other.deltas.keys()
        return sum(inner(self.deltas[n], other.deltas[n]) for n in common)

    def norms(self) -> dict[str, float]:
        """Frobenius norm of each tensor (from the factors for low-rank entries)."""
        return {n: math.sqrt(max(inner(d, d), 0.0)) for n, d in self.deltas.items()}

    def norm(self) -> float:
        return math.sqrt(sum(v * v for v in self.norms().values()))

    def cosine(self, other: WeightVector) -> float:
        """cos(dW1, dW2) over all parameters (a parameter one of them lacks counts as 0)."""
        denom = self.norm() * other.norm()
        return self.dot(other) / denom if denom > 0 else 0.0

    def restrict(
        self, layers: Iterable[int] | None = None, modules: Iterable[str] | None = None
    ) -> WeightVector:
        """Keep entries in ``layers`` (block indices) and ``modules`` (``q_proj``, ``mlp``...)."""
        lset = set(layers) if layers is not None else None
        mset = set(modules) if modules is not None else None
        keep = {
            n: d
            for n, d in self.deltas.items()
            if (lset is None or layer_index(n) in lset)
            and (mset is None or matches_module(n, mset))
        }
        desc = f"restrict layers={sorted(lset) if lset else 'all'} modules={sorted(mset or [])}"
        return WeightVector(keep, self.meta.derived(desc))

    def compress(self, rank: int) -> tuple[WeightVector, float]:
        """Best rank-``rank`` approximation of every tensor (truncated SVD).

        Returns the compressed vector and the relative Frobenius error over the whole
        vector, ``||dW - dW_k|| / ||dW||``, computed exactly from the dropped singular values.
        """
        if rank < 1:
            raise UserError(f"rank must be >= 1, got {rank}")
        out: dict[str, Delta] = {}
        dropped = 0.0
        for n, d in self.deltas.items():
            if isinstance(d, LowRank) and d.rank <= rank:
                out[n] = d
                continue
            if isinstance(d, LowRank):
                u, s, vh = lowrank_svd(d)
            elif d.dim() == 2:
                u, s, vh = torch.linalg.svd(d, full_matrices=False)
            else:  # 1-D deltas (IA3-like scalings, biases) stay dense
                out[n] = d
                continue
            k = min(rank, s.numel())
            dropped += float((s[k:].double() ** 2).sum())
            out[n] = LowRank((u[:, :k] * s[:k]).contiguous(), vh[:k].contiguous())
        total = self.norm()
        rel = math.sqrt(dropped) / total if total > 0 else 0.0
        return WeightVector(out, self.meta.derived(f"compress rank={rank}")), rel

    # -- reporting -------------------------------------------------------------------
    def summary(self) -> list[dict[str, Any]]:
        """One row per tensor: name, layer, module kind, shape, rank, norm."""
        norms = self.norms()
        return [
            {
                "name": n,
                "layer": layer_index(n),
                "module": module_kind(n),
                "shape": list(self.shape(n)),
                "rank": self.rank(n),
                "norm": norms[n],
            }
            for n in self.deltas
        ]

    # -- file format -----------------------------------------------------------------
    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``path`` atomically as safetensors with the metadata in the header."""
        from safetensors.torch import save_file

        tensors: dict[str, torch.Tensor] = {}
        for n, d in self.deltas.items():
            if isinstance(d, LowRank):
                tensors[f"{n}::A"] = d.A.detach().cpu().contiguous()
                tensors[f"{n}::B"] = d.B.detach().cpu().contiguous()
            else:
                tensors[n] = d.detach().cpu().contiguous()
        bad = next((n for n, t in tensors.items() if not torch.isfinite(t).all()), None)
        if bad is not None:
            raise UserError(
                f"refusing to save a vector with non-finite values (in {bad.split('::')[0]}); "
                "the adapters it came from hold NaN or inf: retrain them"
            )
        header = {METADATA_KEY: self.meta.model_dump_json()}
        path = Path(path)
        with atomic_path(path, overwrite=overwrite) as tmp:
            save_file(tensors, str(tmp), metadata=header)
        return path

    @classmethod
    def load(cls, path: str | Path) -> WeightVector:
        """Read and validate a vector file (safetensors: no pickle is ever executed)."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"vector file {path} does not exist")
        meta, tensors = _read_safetensors(path)
        deltas: dict[str, Delta] = {}
        factors: dict[str, dict[str, torch.Tensor]] = {}
        for key, t in tensors.items():
            if t.dtype != torch.float32:
                raise UserError(f"{path}: tensor {key} is {t.dtype}, vector files hold float32")
            if not torch.isfinite(t).all():
                raise UserError(f"{path}: tensor {key} contains NaN or infinite values")
            if key.endswith(("::A", "::B")):
                factors.setdefault(key[:-3], {})[key[-1]] = t
            else:
                deltas[key] = t
        for name, f in factors.items():
            if set(f) != {"A", "B"}:
                missing = ({"A", "B"} - set(f)).pop()
                raise UserError(f"{path}: {name} has no {name}::{missing} factor; file is corrupt")
            if f["A"].dim() != 2 or f["B"].dim() != 2 or f["B"].shape[1] != f["A"].shape[0]:
                raise UserError(
                    f"{path}: {name} factors do not chain (B {tuple(f['B'].shape)}, "
                    f"A {tuple(f['A'].shape)}); file is corrupt"
                )
            if name in deltas:
                raise UserError(f"{path}: {name} is stored both dense and low-rank")
            deltas[name] = LowRank(f["B"], f["A"])
        return cls(deltas, meta)


def _read_safetensors(path: Path) -> tuple[VectorMeta, dict[str, torch.Tensor]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - not a dict
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise UserError(f"{path} is not a readable safetensors file ({e})") from None
    if METADATA_KEY not in header:
        raise UserError(f"{path} is not a weightsteer vector (no '{METADATA_KEY}' metadata)")
    try:
        raw = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: metadata is not valid JSON ({e})") from None
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != FORMAT_VERSION:
        raise UserError(
            f"{path}: vector format version {version} is not supported (this weightsteer "
            f"reads version {FORMAT_VERSION}); upgrade weightsteer or re-extract the vector"
        )
    try:
        meta = VectorMeta.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise UserError(f"{path}: invalid metadata at {where}: {err['msg']}") from None
    return meta, tensors
