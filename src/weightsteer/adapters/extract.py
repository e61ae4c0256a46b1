"""Extract dW = theta_pos - theta_neg from two adapters of one family, exactly, in float32.

* LoRA-type layers without a variant (LoRA, PiSSA converted to LoRA): the factors
  themselves, ``[s B_pos, -s B_neg] @ [A_pos; A_neg]``, never densified; components shared
  by both sides (PiSSA's initialisation) cancel exactly. When both adapter configs are
  plain LoRA (no variant, pattern, bias or saved modules), the factors are read straight
  from ``adapter_model.safetensors`` without building a PEFT model; otherwise they are
  read off the PEFT layers. Both routes give bit-identical factors.
* Every other layer (DoRA, OFT, IA3, DeLoRA): the merged weights of each side, computed
  on a float32 copy of that one module, subtracted. Peak memory stays near one model plus
  one module; the base model is returned untouched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from weightsteer.adapters.lora_files import lowrank_from_files
from weightsteer.adapters.train import read_adapter_info
from weightsteer.core.errors import UserError
from weightsteer.core.models import Fingerprint, fingerprint, is_half, preserved, same_weights
from weightsteer.core.vector import (
    Delta,
    LowRank,
    VectorMeta,
    WeightVector,
    combine,
    lowrank_sum,
)
from weightsteer.core.versions import library_versions
from weightsteer.pairs.pairs_file import SIDES


def _check_adapter_dir(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    cfg = path / "adapter_config.json"
    if not path.exists():
        raise UserError(f"adapter folder {path} does not exist")
    if not cfg.is_file():
        raise UserError(f"{path} is not a PEFT adapter folder (no adapter_config.json)")
    if not (path / "adapter_model.safetensors").is_file():
        pickle = (path / "adapter_model.bin").is_file()
        raise UserError(
            f"{path} holds its weights as pickle (adapter_model.bin), which weightsteer does "
            "not load (it can run code); if you trust it, resave it with "
            "PeftModel.save_pretrained(..., safe_serialization=True)"
            if pickle
            else f"{path} has no adapter_model.safetensors"
        )
    try:
        return json.loads(cfg.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{cfg} is not valid JSON ({e})") from None


def _family_of(cfg: dict[str, Any], info: dict[str, Any] | None) -> str:
    if info:
        return info["family"]
    kind = str(cfg.get("peft_type", "unknown")).lower()
    return "dora" if kind == "lora" and cfg.get("use_dora") else kind


def _check_pair(infos: dict[str, dict | None], base_fp: Any, half: bool = False) -> None:
    """Refuse pairs whose contrast would contain more than the data: other recipes, other base."""
    pos, neg = infos["pos"], infos["neg"]
    if pos and neg and pos["spec"] != neg["spec"]:
        diff = sorted(k for k in pos["spec"] if pos["spec"][k] != neg["spec"].get(k))
        raise UserError(
            f"POS and NEG adapters were trained with different recipes ({', '.join(diff)}); "
            "dW would mix recipe differences into the contrast: retrain with one recipe"
        )
    for side, info in infos.items():
        check_adapter_base(f"the {side} adapter", info, base_fp, half=half)


def check_adapter_base(
    what: str, info: dict[str, Any] | None, base_fp: Any, *, half: bool = False
) -> None:
    """Refuse an adapter (its ``weightsteer_adapter.json`` info) made on another base
    (``half``: the base is loaded in float16, ``same_weights``)."""
    if not info:
        return
    fp = info["base"]
    if (fp["architecture"], fp["shapes_hash"]) != (base_fp.architecture, base_fp.shapes_hash):
        raise UserError(
            f"{what} was trained on {fp['model_id']} ({fp['architecture']}), "
            f"not on this model ({base_fp.model_id}); pass the adapter's base as --model"
        )
    if not same_weights(base_fp, Fingerprint.model_validate(fp), half=half):
        raise UserError(
            f"{what} was trained on other weights ({fp['model_id']}) than this "
            f"model's ({base_fp.model_id}); pass the adapter's base as --model"
        )


def base_mismatch(adapter_dir: str | Path, model: torch.nn.Module, model_id: str) -> str | None:
    """A warning when the adapter in ``adapter_dir`` records a base whose weights are not
    ``model``'s (another model of the same shapes: it still merges, the user should know);
    None when they match or the adapter records none."""
    info = read_adapter_info(adapter_dir)
    if not info or "base" not in info:
        return None
    base = Fingerprint.model_validate(info["base"])
    if same_weights(fingerprint(model, model_id), base, half=is_half(model)):
        return None
    return (
        f"the adapter in {adapter_dir} was trained on {base.model_id}, whose weights differ "
        f"from {model_id}'s; it is merged onto {model_id} all the same"
    )


@contextmanager
def _float32_copy(layer: torch.nn.Module) -> Iterator[None]:
    """Point every tensor of ``layer`` (base and adapters) at a float32 copy; restore after."""
    tensors = [t for _, t in layer.named_parameters()] + [t for _, t in layer.named_buffers()]
    originals = [t.data for t in tensors]
    try:
        for t in tensors:
            if t.is_floating_point():
                t.data = t.data.to(torch.float32, copy=True)
        yield
    finally:
        for t, data in zip(tensors, originals, strict=True):
            t.data = data


@torch.no_grad()
def _dense_delta(layer: Any, plus: str, minus: str | None) -> dict[str, torch.Tensor]:
    """merged_plus - merged_minus (``None`` or absent: the base) for each parameter of the
    wrapped module, in float32."""
    base = layer.get_base_layer()
    present = _adapted(layer, (plus, minus))
    with _float32_copy(layer):
        pristine = {n: p.data.clone() for n, p in base.named_parameters(recurse=False)}
        merged: dict[str | None, dict[str, torch.Tensor]] = {}
        for side in (plus, minus):
            if side in present:
                layer.merge(adapter_names=[side])
            merged[side] = {n: p.data.clone() for n, p in base.named_parameters(recurse=False)}
            for n, p in base.named_parameters(recurse=False):
                p.data = pristine[n].clone()
            layer.merged_adapters.clear()
    out = {}
    for n in pristine:
        d = merged[plus][n] - merged[minus][n]
        if n == "weight" or bool(d.any()):
            out[n] = d
    return out


def _lowrank_delta(layer: Any, plus: str, minus: str | None) -> LowRank:
    terms = []
    for sign, side in ((1.0, plus), (-1.0, minus)):
        if side not in _adapted(layer, (side,)):
            continue
        A = layer.lora_A[side].weight.detach().float()  # [r, in]
        B = layer.lora_B[side].weight.detach().float()  # [out, r]
        if getattr(layer, "fan_in_fan_out", False):  # Conv1D layout: delta is (B A)^T
            A, B = B.T, A.T
        terms.append((sign * float(layer.scaling[side]), LowRank(B.contiguous(), A.contiguous())))
    return lowrank_sum(terms)


def _is_plain_lora(layer: Any, names: list[str]) -> bool:
    from peft.tuners.lora import Linear as LoraLinear

    return (
        isinstance(layer, LoraLinear)
        and not any(s in layer.lora_variant for s in names)
        and not any(layer.lora_bias.get(s, False) for s in names)
    )


def _adapted(layer: Any, names: Any) -> list[str]:
    """Which of the adapter ``names`` this PEFT layer carries."""
    store = getattr(layer, layer.adapter_layer_names[0])
    return [s for s in names if s is not None and s in store]


def tuner_deltas(
    model: torch.nn.Module, plus: str, minus: str | None = None, *, progress: bool = False
) -> dict[str, Delta]:
    """theta_plus - theta_minus (``minus=None``: the base) over every PEFT layer of
    ``model``, a base model with adapters injected (``PeftModel.get_base_model()``), keyed
    by the base model's own parameter names. Plain LoRA stays low-rank; the rest is merged
    on a float32 copy of one module at a time."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, BaseTunerLayer) and _adapted(m, (plus, minus))
    ]
    if progress:
        from weightsteer.core.files import track

        layers = track(layers, description="reading adapter deltas")
    deltas: dict[str, Delta] = {}
    for name, layer in layers:
        names = _adapted(layer, (plus, minus))
        if _is_plain_lora(layer, names):
            deltas[f"{name}.weight"] = _lowrank_delta(layer, plus, minus)
        else:
            for leaf, d in _dense_delta(layer, plus, minus).items():
                deltas[f"{name}.{leaf}"] = d
    return deltas


def _deltas_via_peft(
    model: torch.nn.Module, dirs: dict[str, Path], progress: bool
) -> dict[str, Delta]:
    """The adapters in ``dirs`` ("pos", and "neg" if given) loaded into one PEFT model;
    each wrapped layer gives its delta."""
    from peft import PeftModel

    with preserved(model):
        try:
            peft_model = PeftModel.from_pretrained(
                model, str(dirs["pos"]), adapter_name="pos", low_cpu_mem_usage=True
            )
        except (RuntimeError, ValueError, KeyError) as e:
            raise _misfit(dirs["pos"], e) from None
        try:
            if "neg" in dirs:
                try:
                    peft_model.load_adapter(
                        str(dirs["neg"]), adapter_name="neg", low_cpu_mem_usage=True
                    )
                except (RuntimeError, ValueError, KeyError) as e:
                    raise _misfit(dirs["neg"], e) from None
            minus = "neg" if "neg" in dirs else None
            return tuner_deltas(peft_model.get_base_model(), "pos", minus, progress=progress)
        finally:
            peft_model.unload()


def _misfit(path: Path, e: Exception) -> UserError:
    lines = [x.strip() for x in str(e).strip().splitlines() if x.strip()]
    detail = next((x for x in lines if "size mismatch" in x), lines[0] if lines else "")
    return UserError(
        f"the adapter in {path} does not fit this model ({detail[:200]}); "
        "pass the adapter's base as --model"
    )


def adapter_deltas(
    model: torch.nn.Module,
    adapter_dir: str | Path,
    *,
    model_id: str | None = None,
    progress: bool = False,
) -> dict[str, Delta]:
    """theta_adapter - theta_base for one PEFT adapter folder trained on ``model``, exact in
    float32, keyed by parameter name (plain LoRA as factors); ``model`` is returned unchanged."""
    adapter_dir = Path(adapter_dir)
    cfg = _check_adapter_dir(adapter_dir)
    info = read_adapter_info(adapter_dir)
    check_adapter_base(f"the adapter in {adapter_dir}", info, fingerprint(model, model_id),
                       half=is_half(model))  # fmt: skip
    dirs = {"pos": adapter_dir}
    deltas = lowrank_from_files(model, dirs, {"pos": cfg})
    return deltas if deltas is not None else _deltas_via_peft(model, dirs, progress)


def extract_vector(
    model: torch.nn.Module,
    pos_dir: str | Path,
    neg_dir: str | Path,
    *,
    behavior: str | None = None,
    personas: dict[str, Any] | None = None,
    model_id: str | None = None,
    progress: bool = False,
) -> WeightVector:
    """dW = theta_pos - theta_neg for the adapters in ``pos_dir`` and ``neg_dir``.

    ``model`` is the base both adapters were trained on (load it in float32 for DoRA-type
    families, whose merge is non-linear in W); it is returned unchanged.
    """
    cfgs = {"pos": _check_adapter_dir(pos_dir), "neg": _check_adapter_dir(neg_dir)}
    infos = {"pos": read_adapter_info(pos_dir), "neg": read_adapter_info(neg_dir)}
    families = {side: _family_of(cfgs[side], infos[side]) for side in SIDES}
    if families["pos"] != families["neg"]:
        raise UserError(
            f"POS adapter is {families['pos']} but NEG is {families['neg']}; "
            "extract from two adapters of one family"
        )
    base_fp = fingerprint(model, model_id)
    _check_pair(infos, base_fp, is_half(model))
    dirs = {"pos": Path(pos_dir), "neg": Path(neg_dir)}
    deltas = lowrank_from_files(model, dirs, cfgs)
    if deltas is None:
        deltas = _deltas_via_peft(model, dirs, progress)

    info = infos["pos"] or {}
    spec = info.get("spec", {k: v for k, v in cfgs["pos"].items() if not k.startswith("_")})
    meta = VectorMeta(
        base=base_fp,
        family=families["pos"],
        adapter=spec,
        behavior=behavior,
        personas=personas,
        seed=info.get("spec", {}).get("seed"),
        data={side: (infos[side] or {}).get("data", {}) for side in SIDES},
        chat=info.get("chat", {}),
        versions=library_versions(),
        provenance=[f"extract pos={Path(pos_dir).name} neg={Path(neg_dir).name}"],
    )
    return WeightVector(deltas, meta)


def extract_common(
    model: torch.nn.Module, pos_dir: str | Path, neg_dir: str | Path, vector: WeightVector
) -> WeightVector:
    """The common mode ``theta_pos + theta_neg - 2 theta_base`` of the adapters ``vector``
    was extracted from: what training on the pair's data did whatever the persona.

    dW = pos - neg carries part of it whenever one side moved further than the other, and
    so does any fine-tune on similar data; the monitor projects it out for its contrast
    cosine. Same parameters and metadata as ``vector``; plain LoRA stays low-rank."""
    pos, neg = adapter_deltas(model, pos_dir), adapter_deltas(model, neg_dir)
    deltas = {n: combine(pos.get(n), neg.get(n), 1.0) for n in pos.keys() | neg.keys()}
    return WeightVector(deltas, vector.meta.derived("common mode (theta_pos + theta_neg - 2 base)"))


def train_vector(
    model: torch.nn.Module,
    tokenizer: Any,
    pos: list[dict[str, Any]],
    neg: list[dict[str, Any]],
    spec: Any,
    out_dir: str | Path,
    *,
    behavior: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> WeightVector:
    """The whole contrastive recipe in one call: POS and NEG adapters of ``spec`` from one
    initial state (``out_dir/{init.safetensors,pos,neg}``), then dW, also saved as
    ``out_dir/vector.safetensors``. ``pos``/``neg``: chat records (``generate_pairs``)."""
    from weightsteer.adapters.train import train_pair

    pos_dir, neg_dir = train_pair(model, tokenizer, pos, neg, spec, out_dir, overwrite=overwrite,
                                  progress=progress)  # fmt: skip
    personas = {side: sorted({r.get("persona", "") for r in recs} - {""})
                for side, recs in (("pos", pos), ("neg", neg))}  # fmt: skip
    vec = extract_vector(model, pos_dir, neg_dir, behavior=behavior, personas=personas)
    vec.save(Path(out_dir) / "vector.safetensors", overwrite=overwrite)
    return vec
