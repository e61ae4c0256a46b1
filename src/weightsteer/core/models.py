"""Load models and tokenizers, render chats, fingerprint a model.

``--model`` accepts a hub id, a local folder, or a registered model source (``toyworld``:
the embedded model, built and cached on first use; ``core/sources.py``). Chats are
rendered with the tokenizer's own template; thinking is disabled where the template
knows the switch (Qwen3 ``enable_thinking=False``), and a scorer can prefill the start
of the assistant turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from weightsteer.core.config import Section
from weightsteer.core.errors import UserError

# the fingerprint lives in its own module (core/fingerprint.py); importable from here too
from weightsteer.core.fingerprint import Fingerprint as Fingerprint
from weightsteer.core.fingerprint import fingerprint as fingerprint
from weightsteer.core.fingerprint import is_half as is_half
from weightsteer.core.fingerprint import same_weights as same_weights
from weightsteer.core.fingerprint import sample_index as sample_index
from weightsteer.core.sources import resolve_source

DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"


class ModelConfig(Section):
    id: str = Field("toyworld", description="hub id, local model folder, toyworld or smollm2")
    dtype: Literal["default", "float32", "bfloat16", "float16", "auto"] = Field(
        "default",
        description="default (bfloat16 on CUDA, float32 elsewhere), float32, bfloat16, "
        "float16 or auto (the checkpoint's)",
    )
    device: str = Field(
        "auto",
        description="auto (cuda when available, else cpu), cpu, mps, cuda or cuda:N",
        pattern=DEVICE_PATTERN,
    )
    target: str = Field(
        "",
        description="a fine-tune of id that eval and compare steer and score (a model "
        "folder, hub id, or PEFT adapter folder trained on id); empty: id itself. The "
        "vector is always built on id",
    )
    device_map: Literal["none", "auto", "balanced", "balanced_low_0", "sequential"] = Field(
        "none",
        description="none (the whole model on device) or a transformers device_map strategy "
        "that spreads a model too large for one device over all of them",
    )
    system_prompt: Literal["template", "none"] = Field(
        "template",
        description="a chat without a system message gets the chat template's default "
        "system prompt (template) or truly none (none); persona prompts replace it either way",
    )


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
Message = dict[str, str]


def check_device(device: str) -> None:
    """Refuse a device this machine does not have, before anything is loaded or written."""
    if device.startswith("cuda"):
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= n:
            have = f"{n} CUDA device(s)" if n else "no CUDA device"
            raise UserError(f"device {device!r}: this machine has {have}; use auto or cpu")
    elif device == "mps" and not torch.backends.mps.is_available():
        raise UserError("device 'mps': not available on this machine; use auto or cpu")


DEVICE_MAPS = ("none", "auto", "balanced", "balanced_low_0", "sequential")


def resolve_device(name: str) -> str:
    """The device ``name`` stands for on this machine: ``auto`` is cuda when present, else
    cpu; any other name is checked (``check_device``) and kept. Under ``accelerate launch``
    or ``torchrun`` (``LOCAL_RANK`` set) ``auto`` and ``cuda`` are this process's GPU."""
    import os
    import re

    if not re.match(DEVICE_PATTERN, name):
        raise UserError(f"unknown device {name!r}; use auto, cpu, mps, cuda or cuda:N")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        name = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    check_device(name)
    return name


def resolve_dtype(name: str, device: str = "cpu") -> torch.dtype | str:
    """``default`` (bfloat16 on a CUDA device that has it, float32 elsewhere: bfloat16
    matmuls run 4-8x slower than float32 on CPUs), ``auto`` (the checkpoint's dtype),
    ``float32``, ``bfloat16`` or ``float16``."""
    if name == "default":
        cuda = device.startswith("cuda") and torch.cuda.is_available()
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    if name == "auto":
        return "auto"
    if name not in DTYPES:
        raise UserError(f"unknown dtype {name!r}; use one of default, auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def input_device(model: Any) -> torch.device:
    """Where a batch's token ids go: the input embedding's device (the first device when a
    ``device_map`` spreads the model; its hooks move activations on from there)."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is not None and getattr(embeddings, "weight", None) is not None:
        return embeddings.weight.device
    return next(model.parameters()).device


def load_model(
    source: str | Path,
    *,
    dtype: str = "auto",
    trust_remote_code: bool = False,
    device: str | None = None,
    device_map: str | dict[str, str | int] = "none",
    allow_pickle: bool = False,
) -> torch.nn.Module:
    """Load a causal LM from a hub id or a local folder, in eval mode, on ``device`` (or
    spread over the devices by ``device_map``: a transformers strategy such as ``auto``, or
    an explicit module -> device dict).

    Weights are read from safetensors only: a pickle checkpoint (``pytorch_model.bin``) can
    run code when loaded, so it is refused unless ``allow_pickle`` says the files are
    trusted."""
    from transformers import AutoModelForCausalLM

    if isinstance(device_map, str) and device_map not in DEVICE_MAPS:
        raise UserError(f"unknown device_map {device_map!r}; use one of {', '.join(DEVICE_MAPS)}")
    spread = device_map if device_map != "none" else None
    src = resolve_source(source)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            src,
            dtype=resolve_dtype(dtype, device or "cpu"),
            trust_remote_code=trust_remote_code,
            use_safetensors=None if allow_pickle else True,
            device_map=spread,
        )
    except Exception as e:  # safetensors and pyarrow raise their own types for a bad file
        if not isinstance(e, OSError | ValueError) and "safetensor" not in type(e).__module__:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        damaged = "safetensor" in type(e).__module__
        if damaged:
            raise UserError(
                f"cannot load model {source!r}: a weights file is damaged ({first}); copy or "
                "fetch the model again"
            ) from None
        if not allow_pickle and "safetensors" in str(e):
            raise UserError(
                f"model {source!r} has no safetensors weights; weightsteer does not unpickle "
                "(.bin files can run code). If you trust the files, convert them once: "
                "AutoModelForCausalLM.from_pretrained(path).save_pretrained(new_path), or "
                "pass allow_pickle (monitor --allow-pickle)"
            ) from None
        raise UserError(f"cannot load model {source!r}: {first}") from None
    if device and spread is None:
        model.to(device)  # type: ignore[arg-type]
    return model.eval()


SHAPE_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "intermediate_size",
              "num_attention_heads", "num_key_value_heads", "vocab_size")  # fmt: skip


def check_target_shapes(base: str, target: str) -> None:
    """Refuse a ``model.target`` whose config gives other shapes than ``model.id``'s,
    from the two ``config.json`` files alone (before any stage runs). A hub id not on
    this machine is left to the load (it is checked there, by its parameters)."""
    import json

    from weightsteer.core.sources import is_registered

    def config(source: str) -> dict | None:
        if is_registered(source):
            folder = Path(resolve_source(source))
        elif Path(source).expanduser().is_dir():
            folder = Path(source).expanduser()
        else:
            return None
        try:
            return json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            return None

    a, b = config(base), config(target)
    if a is None or b is None:
        return
    diff = [f"{k} {a.get(k)} vs {b.get(k)}" for k in SHAPE_KEYS if a.get(k) != b.get(k)]
    if diff:
        raise UserError(
            f"model.target {target} does not have the shapes of model.id {base} "
            f"({'; '.join(diff)}); the target must be a fine-tune of the base"
        )


def is_adapter_folder(source: str | Path) -> bool:
    """A PEFT adapter folder (``adapter_config.json``), not a whole model."""
    return (Path(source) / "adapter_config.json").is_file()


def merge_adapter(model: torch.nn.Module, folder: str | Path) -> torch.nn.Module:
    """``model`` with the PEFT adapter in ``folder`` merged into its weights (a fine-tune
    given as an adapter on its base); safetensors only."""
    from peft import PeftModel

    folder = Path(folder)
    if not (folder / "adapter_model.safetensors").is_file():
        raise UserError(
            f"adapter {folder} has no adapter_model.safetensors; weightsteer does not "
            "unpickle adapter_model.bin (it can run code): save it again with safetensors"
        )
    try:
        peft_model = PeftModel.from_pretrained(model, str(folder))
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load adapter {folder} on this model: {first}") from None
    return peft_model.merge_and_unload().eval()


SYSTEM_MODES = ("template", "none")
_SENTINEL = "\x00weightsteer-no-system\x00"


def load_tokenizer(
    source: str | Path, *, trust_remote_code: bool = False, system_prompt: str = "template"
) -> Any:
    """Load the tokenizer; a missing pad token falls back to EOS (scoring pads left).

    ``system_prompt`` says what a chat without a system message is rendered with: the
    template's own default (``template``: SmolLM2's ChatML inserts "You are a helpful AI
    assistant named SmolLM...") or truly none (``none``). Every rendering goes through
    ``render_chat``, which reads the choice from the tokenizer (``weightsteer_system``).
    """
    if system_prompt not in SYSTEM_MODES:
        raise UserError(f"system_prompt must be one of {', '.join(SYSTEM_MODES)}")
    from transformers import AutoTokenizer

    src = resolve_source(source)
    try:
        tok = AutoTokenizer.from_pretrained(src, trust_remote_code=trust_remote_code)
    except Exception as e:  # safetensors and pyarrow raise their own types for a bad file
        if not isinstance(e, OSError | ValueError) and "safetensor" not in type(e).__module__:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load tokenizer {source!r}: {first}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not getattr(tok, "chat_template", None):
        raise UserError(f"tokenizer of {source!r} has no chat template; use an instruct model")
    tok.weightsteer_system = system_prompt
    if system_prompt == "none":
        render_chat(tok, [{"role": "user", "content": "hi"}])  # refuses a template it cannot do
    return tok


def system_mode(tokenizer: Any) -> str:
    """``template`` or ``none``: how a chat without a system message is rendered."""
    return getattr(tokenizer, "weightsteer_system", "template")


def with_system(messages: Sequence[Message], system: str | None) -> list[Message]:
    """``messages`` with ``system`` as the system prompt (``None``: unchanged)."""
    return [{"role": "system", "content": system}, *messages] if system else list(messages)


def render_chat(
    tokenizer: Any,
    messages: Sequence[Message],
    *,
    add_generation_prompt: bool = True,
    prefill: str | None = None,
) -> str:
    """Render ``messages`` through the chat template, optionally prefilling the answer.

    ``prefill`` is appended after the generation prompt: the next token is the model's
    continuation of an assistant turn that starts with it (``"My choice:"``).
    """

    def apply(msgs: list[Message], gen: bool) -> str:
        return tokenizer.apply_chat_template(
            msgs,
            tokenize=False,
            add_generation_prompt=gen,
            enable_thinking=False,  # unused variables are ignored by other templates
        )

    messages = list(messages)
    if system_mode(tokenizer) == "none" and not any(m["role"] == "system" for m in messages):
        # render with a placeholder system turn, then cut that turn out: no default prompt
        turn = apply([{"role": "system", "content": _SENTINEL}], False)
        text = apply([{"role": "system", "content": _SENTINEL}, *messages], add_generation_prompt)
        if not turn or turn not in text:
            raise UserError(
                "model.system_prompt = none: this chat template does not render a system turn "
                "on its own, so it cannot be left out; use system_prompt = template"
            )
        # a BOS the template puts before every chat stays (Llama-3); ChatML's turn marker
        # is the BOS token too, and belongs to the turn (it is followed by the role)
        bos = tokenizer.bos_token or ""
        keep = (
            bos
            if bos and turn.startswith(bos) and not turn[len(bos) :].startswith("system")
            else ""
        )
        text = text.replace(turn, keep, 1)
    else:
        text = apply(messages, add_generation_prompt)
    if prefill:
        if not add_generation_prompt:
            raise ValueError("a prefill needs add_generation_prompt=True")
        text += prefill
    return text


def left_padded_batches(
    tokenizer: Any,
    prompts: Sequence[str] | Sequence[list[int]],
    batch_size: int,
    *,
    progress: str | None = None,
    keep_order: bool = False,
) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """``(indices, ids, mask)`` batches of ``prompts``, similar lengths together (in the
    given order with ``keep_order``), left-padded.

    ``prompts`` are texts or already-encoded token ids. ``ids`` and ``mask`` are
    ``[batch, seq]``; the prompt ends at the last position of every row, where the next
    token is predicted. ``progress`` names a progress bar.
    """
    encoded = [
        p if isinstance(p, list) else tokenizer.encode(p, add_special_tokens=False) for p in prompts
    ]
    order = list(range(len(prompts)))
    if not keep_order:
        order.sort(key=lambda i: len(encoded[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from weightsteer.core.files import track

        batches = track(batches, description=progress)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for idx in batches:
        n = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), n), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), n), dtype=torch.long)
        for row, i in enumerate(idx):
            k = len(encoded[i])
            ids[row, n - k :] = torch.tensor(encoded[i])
            mask[row, n - k :] = 1
        yield idx, ids, mask


def assistant_suffix(tokenizer: Any) -> str:
    """The text the template puts after an assistant message (e.g. ``<|im_end|>``).

    Training appends it to each answer so the model learns to end its turn exactly as
    generation stops; found by rendering a probe message, so it follows any template.
    """
    probe = "\x00PROBE\x00"
    text = render_chat(
        tokenizer,
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": probe}],
        add_generation_prompt=False,
    )
    if probe not in text:
        raise UserError("the chat template drops assistant messages; cannot train on it")
    return text.split(probe, 1)[1].rstrip()


@contextmanager
def preserved(model: torch.nn.Module, weights: Iterable[str] = ()) -> Iterator[None]:
    """Give ``model`` back as it came: ``requires_grad`` flags, eval mode and (clones of)
    the named ``weights``, for code that wraps it with PEFT and unloads afterwards."""
    params = dict(model.named_parameters())
    flags = {n: p.requires_grad for n, p in params.items()}
    saved = {n: params[n].detach().clone() for n in weights}
    try:
        yield
    finally:
        with torch.no_grad():
            for n, w in saved.items():
                params[n].data = w
        for n, p in params.items():
            p.requires_grad_(flags[n])
        model.eval()
