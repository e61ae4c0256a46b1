"""Activation steering machinery shared by ``mean_diff``, ``pca`` and
``directional_ablation``: their settings, fitting hidden states and hooking decoder
blocks.

Fitting reads the same POS/NEG pairs the weight vectors were trained on: each pair's
question rendered under its own persona system prompt, followed by its answer. A block's
output is taken at the last prompt token (``position = "prompt"``) or averaged over the
answer's tokens (``"response"``). The hooked blocks default to the adapters' layers.
Methods with the same position, layers and batch size share one fit of the states.

Steering adds ``s * v_l`` to the output of every hooked block ``l`` at every token
position (``directional_ablation`` first projects the unit direction out). Hooks live
only inside ``attach``: they are removed in ``finally``, so an exception leaves the
model exactly as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from weightsteer.core.config import DepthRange, Section
from weightsteer.core.errors import UserError
from weightsteer.core.files import atomic_path
from weightsteer.core.models import input_device, left_padded_batches, render_chat, with_system
from weightsteer.core.param_names import layer_range
from weightsteer.methods import Candidate, Intervention, MethodInputs, SetStrength

States = dict[str, torch.Tensor]  # side -> [pairs, layers, hidden] float32


class ActivationConfig(Section):
    """The settings every activation method has (a method's own config extends it)."""

    position: Literal["prompt", "response"] = Field(
        "response",
        description="hidden states fitted at the last prompt token, or averaged over the "
        "answer's tokens",
    )
    layers: DepthRange | None = Field(
        None, description="depth fractions [lo, hi) of the hooked blocks (none: train.layers)"
    )
    batch_size: int = Field(16, ge=1, description="chats run together when fitting")


def decoder_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The model's stack of decoder blocks (``model.layers``, ``transformer.h``, ...)."""
    n = getattr(model.config, "num_hidden_layers", None)
    for name, module in model.named_modules():
        if (
            isinstance(module, torch.nn.ModuleList)
            and name.rsplit(".", 1)[-1] in ("layers", "h", "blocks", "layer")
            and (n is None or len(module) == n)
        ):
            return module
    raise UserError(f"cannot find the decoder blocks of this {type(model).__name__}")


def _hidden(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def site_module(blocks: Any, layer: int, part: str = "") -> torch.nn.Module:
    """Block ``layer``, or its submodule ``part`` (``"mlp.down_proj"``)."""
    block = blocks[layer]
    return block.get_submodule(part) if part else block


@contextmanager
def _capture(blocks: Any, layers: list[int], part: str = "") -> Iterator[dict[int, torch.Tensor]]:
    """Record the output of each block in ``layers`` (or its ``part``) at every forward."""
    seen: dict[int, torch.Tensor] = {}
    handles = [
        site_module(blocks, layer, part).register_forward_hook(
            lambda mod, args, out, layer=layer: seen.__setitem__(layer, _hidden(out))
        )
        for layer in layers
    ]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def encode_chat(
    tokenizer: Any, chat: list[dict], system: str | None, position: str
) -> tuple[list[int], int]:
    """A chat ending in the assistant's answer -> ``(ids, n)``: its tokens (the prompt
    rendered with ``system``, then the answer when ``position == "response"``) and the
    answer's share ``n`` of them (0 at ``"prompt"``)."""
    if position not in ("prompt", "response"):
        raise UserError(f"activation position must be prompt or response, got {position!r}")
    *head, answer = chat
    prompt = tokenizer.encode(
        render_chat(tokenizer, with_system(head, system)), add_special_tokens=False
    )
    ans = (
        tokenizer.encode(answer["content"], add_special_tokens=False)
        if position == "response"
        else []
    )
    return prompt + ans, len(ans)


@torch.no_grad()
def chat_states(
    model: Any,
    tokenizer: Any,
    encoded: list[tuple[list[int], int]],
    layers: list[int],
    *,
    batch_size: int = 16,
    progress: str | None = None,
    part: str = "",
) -> torch.Tensor:
    """``[chats, len(layers), hidden]`` float32 block outputs (or their ``part``'s) of each
    ``encode_chat`` result: averaged over its last ``n`` tokens (the answer), or the last
    token when ``n == 0``."""
    blocks = decoder_blocks(model)
    device = input_device(model)
    ids_only = [ids for ids, _ in encoded]
    states = torch.empty(len(encoded), len(layers), model.config.hidden_size)
    batches = left_padded_batches(tokenizer, ids_only, batch_size, progress=progress)
    with _capture(blocks, layers, part) as seen:
        for idx, ids, mask in batches:
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            model.base_model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                use_cache=False,
            )
            for row, i in enumerate(idx):
                # right-aligned: the answer is the last n tokens, the prompt ends before
                k = encoded[i][1]
                span = slice(-k, None) if k else slice(-1, None)
                for j, layer in enumerate(layers):
                    states[i, j] = seen[layer][row, span].float().mean(0).cpu()
    return states


def collect_hidden_states(
    model: Any,
    tokenizer: Any,
    pairs: dict[str, list[dict]],
    layers: list[int],
    *,
    position: str = "response",
    batch_size: int = 16,
    progress: bool = False,
    part: str = "",
) -> dict[str, torch.Tensor]:
    """``{side: [pairs, len(layers), hidden]}`` float32 block outputs (or their ``part``'s)
    of each training pair (rendered with its persona system prompt), at ``position``."""
    out = {}
    for side, records in pairs.items():
        if not records:
            raise UserError(f"no {side} pairs to fit activation steering on")
        encoded = []
        for rec in records:
            if not rec.get("persona"):
                raise UserError(
                    f"{side} pair {rec.get('id', '?')} has no persona; activation steering "
                    "needs the system prompt each answer was generated under"
                )
            encoded.append(encode_chat(tokenizer, rec["messages"], rec["persona"], position))
        bar = f"fitting {side} activations" if progress else None
        out[side] = chat_states(
            model, tokenizer, encoded, layers, batch_size=batch_size, progress=bar, part=part
        )
    return out


@dataclass(frozen=True, kw_only=True)
class HookSteering(Intervention):
    """An activation method: ``steer(h, s, layer)`` rewrites the output ``h`` of each hooked
    block ``[batch, seq, hidden]`` (float32) at strength ``s``, at every position. Strength
    0 leaves the block's output untouched (the hook returns nothing), so it is the unsteered
    model bit for bit; the hooks live only inside ``attach``."""

    method: str
    seed: int = 0  # which training seed (bootstrap resample of the pairs) it was fitted on
    position: str = "response"

    def layers(self) -> list[int]:
        raise NotImplementedError

    def sites(self) -> dict[Any, tuple[int, str]]:
        """``{key: (layer, part)}``: the modules hooked (a block, or its submodule ``part``),
        by the key ``steer`` is called with; default: each block of ``layers()``."""
        return {layer: (layer, "") for layer in self.layers()}

    def steer(self, h: torch.Tensor, s: float, layer: Any) -> torch.Tensor:
        raise NotImplementedError

    def fitted(self) -> dict[str, torch.Tensor]:
        """What ``save`` writes: the fitted tensors by name."""
        raise NotImplementedError

    @contextmanager
    def attach(self, model: Any) -> Iterator[SetStrength]:
        blocks = decoder_blocks(model)
        state = {"s": 0.0}

        def hook(module: Any, args: Any, output: Any, key: Any) -> Any:
            s = state["s"]
            if s == 0.0:
                return None  # off: the module's own output, untouched
            h = _hidden(output)  # [batch, seq, hidden]
            x = self.steer(h.float(), s, key).to(h.dtype)
            return (x, *output[1:]) if isinstance(output, tuple) else x

        handles = [
            site_module(blocks, *site).register_forward_hook(
                lambda mod, args, out, key=key: hook(mod, args, out, key)
            )
            for key, site in self.sites().items()
        ]
        try:
            yield lambda s: state.__setitem__("s", float(s))
        finally:
            for h in handles:
                h.remove()

    def save(self, path: str | Path) -> Path:
        """The fitted tensors as safetensors, with what made them in the header."""
        from safetensors.torch import save_file

        tensors = {k: v.contiguous() for k, v in self.fitted().items()}
        meta = {"method": self.method, "position": self.position, "layers": self.layers()}
        with atomic_path(path, overwrite=True) as tmp:
            save_file(tensors, str(tmp), metadata={"weightsteer": json.dumps(meta, sort_keys=True)})
        return Path(path)


@dataclass(frozen=True, kw_only=True)
class ActivationSteering(HookSteering):
    """``h_l <- h_l + s * v_l`` (``ablate``: ``h_l - (h_l . u_l) u_l + s * v_l``) on the
    output of each block ``l`` of ``vectors``, at every position. ``v_l`` [hidden]."""

    vectors: dict[int, torch.Tensor]  # layer -> [hidden] float32
    ablate: dict[int, torch.Tensor] | None = None  # layer -> unit [hidden] float32

    def layers(self) -> list[int]:
        return list(self.vectors)

    @property
    def jumps_at_zero(self) -> bool:  # type: ignore[override]
        return self.ablate is not None

    def steer(self, h: torch.Tensor, s: float, layer: int) -> torch.Tensor:
        if self.ablate is not None:
            u = self.ablate[layer].to(h.device)
            h = h - (h @ u)[..., None] * u
        return h + s * self.vectors[layer].to(h.device)

    def fitted(self) -> dict[str, torch.Tensor]:
        tensors = {f"layers.{k}.vector": v for k, v in self.vectors.items()}
        for k, u in (self.ablate or {}).items():
            tensors[f"layers.{k}.unit"] = u
        return tensors


def activation_layers(model: Any, fractions: tuple[float, float]) -> list[int]:
    """The decoder blocks at depth fractions ``[lo, hi)``."""
    return layer_range(len(decoder_blocks(model)), *fractions)


def hooked_layers(inputs: MethodInputs, cfg: ActivationConfig) -> list[int]:
    """The blocks a method hooks: its own ``layers`` if set, else the run's default."""
    return activation_layers(inputs.model, cfg.layers) if cfg.layers else list(inputs.layers)


def fitted_states(inputs: MethodInputs, cfg: ActivationConfig, part: str = "") -> States:
    """The training pairs' hidden states at the method's layers (their blocks' ``part``)
    and position, fitted once per (layers, part, position, batch size) and shared by every
    method that asks alike."""
    layers = hooked_layers(inputs, cfg)
    key = ("hidden_states", tuple(layers), part, cfg.position, cfg.batch_size)
    if key not in inputs.shared:
        inputs.shared[key] = collect_hidden_states(
            inputs.model,
            inputs.tokenizer,
            inputs.pairs,
            layers,
            position=cfg.position,
            batch_size=cfg.batch_size,
            progress=inputs.progress,
            part=part,
        )
    return inputs.shared[key]


def resample_pairs(states: States, seed: int) -> States:
    """A bootstrap resample of the training pairs (line i of each side stays a pair):
    seed ``seed`` of an activation method, so it has a seed spread like the weight
    vectors' training seeds."""
    n = len(states["pos"])
    idx = torch.randint(n, (n,), generator=torch.Generator().manual_seed(seed))
    return {side: h[idx] if len(h) == n else h for side, h in states.items()}


def fit_sources(inputs: MethodInputs, cfg: ActivationConfig, layers: list[int]) -> dict:
    """What a fitted activation method is made from (part of its results' cache key)."""
    return {"pairs": inputs.pairs_digest, "layers": layers, "settings": cfg.model_dump(mode="json")}


def activation_candidate(
    method: str,
    inputs: MethodInputs,
    cfg: ActivationConfig,
    build: Callable[[States, list[int]], HookSteering],
    *,
    sources: dict | None = None,
    states: Callable[[], States] | None = None,
) -> list[Candidate]:
    """The candidates of an activation method, keyed by the pairs and its settings: one
    fit on every pair with one training seed, else one per seed, each on that seed's
    bootstrap resample of the pairs (``resample_pairs``). ``build(states, layers)`` makes
    the intervention from the ``{side: [pairs, layers, hidden]}`` states of ``layers``.
    ``sources``: what else the fit reads (a corpus's digest), added to the cache key.
    ``states``: where the states come from (default: ``fitted_states`` at the blocks)."""
    layers = hooked_layers(inputs, cfg)
    sources = {**fit_sources(inputs, cfg, layers), **(sources or {})}
    get = states or (lambda: fitted_states(inputs, cfg))
    if len(inputs.seeds) < 2:
        return [Candidate(method, "", 0, sources, lambda: build(get(), layers))]

    def fit(seed: int) -> HookSteering:
        return replace(build(resample_pairs(get(), seed), layers), seed=seed)

    return [
        Candidate(method, "", seed, {**sources, "resample_seed": seed}, partial(fit, seed))
        for seed in inputs.seeds
    ]
