"""Supervised fine-tuning of one adapter on a chat jsonl, loss on assistant tokens only.

Built on the HF ``Trainer`` so ``accelerate launch`` runs the same code on several devices.
Guarantees the contrastive recipe depends on:

* **same start**: POS and NEG adapters of one recipe start from one saved initial state
  (``init_state``: the adapter's parameters right after initialisation and, for families
  whose initialisation rewrites the base, the rewritten base weights), written once
  (``save_initial_state``, or the first ``train_adapter`` given a path not there yet) and
  loaded by both, so the start is identical by construction, on any machine, even where
  an initialisation (PiSSA's randomised SVD) does not reproduce bit for bit when
  recomputed;
* **base untouched**: PEFT modules are unloaded afterwards, and weights an initialisation
  rewrote (PiSSA) are restored: one loaded model trains POS then NEG;
* **exact reload**: PiSSA is saved converted for the original base (rank 2r).
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from weightsteer.adapters import AdapterSpec, get_family, target_module_names
from weightsteer.core import dist
from weightsteer.core.errors import UserError
from weightsteer.core.files import atomic_path, check_writable
from weightsteer.core.models import (
    assistant_suffix,
    fingerprint,
    preserved,
    render_chat,
    system_mode,
)
from weightsteer.core.versions import library_versions

ADAPTER_INFO = "weightsteer_adapter.json"


def tokenize_chats(
    tokenizer: Any, records: Sequence[dict[str, Any]], max_length: int
) -> list[dict[str, list[int]]]:
    """Token ids and labels (-100 on the prompt) for each chat.

    Prompt and answer are tokenised separately, exactly as at generation time: the prompt
    ends with the template's generation prompt, the answer with the end-of-turn text (not
    an answer marked ``truncated``: it was cut off, so it is not taught to end there).
    """
    suffix = assistant_suffix(tokenizer)
    out = []
    for rec in records:
        msgs = rec["messages"]
        prompt = render_chat(tokenizer, msgs[:-1], add_generation_prompt=True)
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        end = "" if rec.get("truncated") else suffix
        a_ids = tokenizer(msgs[-1]["content"] + end, add_special_tokens=False)["input_ids"]
        ids = (p_ids + a_ids)[:max_length]
        labels = ([-100] * len(p_ids) + a_ids)[:max_length]
        if any(t != -100 for t in labels):
            out.append({"input_ids": ids, "labels": labels})
    if not out:
        raise UserError(f"every example is longer than max_length={max_length} before its answer")
    return out


class RightPadCollator:
    """Right-pad a batch; padding is masked out of attention and loss."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        n = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), n), self.pad_id, dtype=torch.long)  # [batch, seq]
        labels = torch.full((len(batch), n), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for i, b in enumerate(batch):
            k = len(b["input_ids"])
            ids[i, :k] = torch.tensor(b["input_ids"])
            labels[i, :k] = torch.tensor(b["labels"])
            mask[i, :k] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def train_adapter(
    model: torch.nn.Module,
    tokenizer: Any,
    records: Sequence[dict[str, Any]],
    spec: AdapterSpec,
    out_dir: str | Path,
    *,
    data_info: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    init_state: str | Path | None = None,
) -> Path:
    """Train one adapter on ``records`` and save it (PEFT folder + ``weightsteer_adapter.json``).

    ``model`` is left exactly as it was given (same modules, same weights). ``callbacks``
    are HF ``TrainerCallback``s (e.g. to watch the weights drift while training).
    ``init_state`` is a ``.safetensors`` file shared by the adapters of one contrast: when it
    exists the adapter starts from it, otherwise this adapter's fresh initialisation is
    saved there for the next one.
    """
    family = get_family(spec.family)
    dist.check_unsharded()
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise UserError(f"{out_dir} already exists; choose another --out or pass --overwrite")
    names = target_module_names(model, spec)
    examples = tokenize_chats(tokenizer, records, spec.max_length)
    base_fp = fingerprint(model)

    with _wrapped(model, spec, names) as peft_model:
        if init_state is not None:
            share_initial_state(peft_model, spec, names, init_state)
        with tempfile.TemporaryDirectory() as scratch:
            init_dir = None
            if family.mutates_base:  # PEFT converts against the initial adapter on save
                init_dir = Path(scratch) / "initial"
                cfg = peft_model.peft_config["default"]
                init_mode, cfg.init_lora_weights = cfg.init_lora_weights, True
                peft_model.save_pretrained(str(init_dir))
                cfg.init_lora_weights = init_mode
            trainer = _trainer(peft_model, tokenizer, examples, spec, scratch, callbacks, progress)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=FutureWarning)
                result = trainer.train()
            peft_model.eval()
            info = {
                "family": spec.family,
                "spec": spec.model_dump(mode="json"),
                "base": base_fp.model_dump(),
                "modules": names,
                "chat": {"system_prompt": system_mode(tokenizer)},
                "data": {**(data_info or {}), "examples": len(examples)},
                "train": {
                    "steps": int(result.global_step),
                    "loss": float(result.training_loss),
                    "tokens": int(sum(len(e["input_ids"]) for e in examples) * spec.epochs),
                },
                "versions": library_versions(),
            }
            if dist.is_main():  # one writer; the other ranks hold the same weights
                _save_adapter(peft_model, out_dir, info, init_dir, overwrite)
            dist.barrier()
    return out_dir


def _trainer(
    peft_model: Any,
    tokenizer: Any,
    examples: Any,
    spec: AdapterSpec,
    scratch: str,
    callbacks: Any,
    progress: Any,
) -> Any:
    """An HF ``Trainer`` for the recipe: its seed and data order, no checkpoints, nothing
    printed to stdout (which carries only results), a progress bar on stderr."""
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    use_cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(Path(scratch) / "trainer"),
        per_device_train_batch_size=spec.batch_size,
        gradient_accumulation_steps=spec.grad_accum,
        learning_rate=spec.learning_rate,
        warmup_steps=spec.warmup_steps,
        weight_decay=spec.weight_decay,
        num_train_epochs=spec.epochs,
        max_steps=spec.max_steps,
        lr_scheduler_type="linear",
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        seed=spec.seed,
        data_seed=spec.seed,
        remove_unused_columns=False,
        label_names=["labels"],
        use_cpu=not use_cuda,
        bf16=use_cuda and torch.cuda.is_bf16_supported(),
        disable_tqdm=True,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every trainable adapter weight is used
    )
    trainer = Trainer(
        model=peft_model,
        args=args,
        train_dataset=examples,
        data_collator=RightPadCollator(tokenizer.pad_token_id),
        callbacks=list(callbacks),
    )
    # HF's printer and progress callbacks write the logs dict to stdout, which carries only
    # results (`$(weightsteer train ...)` is the adapter's path)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if progress and dist.is_main():
        trainer.add_callback(stderr_progress())
    return trainer


def _save_adapter(
    peft_model: Any, out_dir: Path, info: dict, init_dir: Path | None, overwrite: bool
) -> None:
    """The PEFT folder (converted against the initial adapter where the family rewrote the
    base) with ``weightsteer_adapter.json`` beside it, written atomically."""
    with atomic_path(out_dir, overwrite=overwrite, is_dir=True) as tmp:
        kw = {"path_initial_model_for_weight_conversion": str(init_dir)} if init_dir else {}
        peft_model.save_pretrained(str(tmp), **kw)
        _sort_target_modules(tmp / "adapter_config.json")
        (tmp / ADAPTER_INFO).write_text(json.dumps(info, indent=2) + "\n")


INIT_STATE = "init.safetensors"


def stderr_progress():
    """A step bar with the latest loss, on stderr."""
    import sys

    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class _Bar(TrainerCallback):
        bar: Any = None

        def on_train_begin(self, args, state, control, **kw):
            self.bar = tqdm(total=state.max_steps, desc="training", file=sys.stderr, leave=False)

        def on_step_end(self, args, state, control, **kw):
            self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kw):
            if self.bar is not None and logs and "loss" in logs:
                self.bar.set_postfix(loss=f"{logs['loss']:.4f}")

        def on_train_end(self, args, state, control, **kw):
            self.bar.close()

    return _Bar()


def train_pair(
    model: torch.nn.Module,
    tokenizer: Any,
    pos: Sequence[dict[str, Any]],
    neg: Sequence[dict[str, Any]],
    spec: AdapterSpec,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[Path, Path]:
    """The contrastive pair: ``out_dir/{pos,neg}`` trained on ``pos`` and ``neg`` from one
    initial state (``out_dir/init.safetensors``). Returns the two adapter folders."""
    out_dir = Path(out_dir)
    init = out_dir / INIT_STATE
    save_initial_state(model, spec, init, overwrite=overwrite)
    dirs = [
        train_adapter(
            model,
            tokenizer,
            chats,
            spec,
            out_dir / side,
            overwrite=overwrite,
            progress=progress,
            init_state=init,
        )
        for side, chats in (("pos", pos), ("neg", neg))
    ]
    return dirs[0], dirs[1]


SET_FIELDS = ("target_modules", "feedforward_modules", "exclude_modules", "modules_to_save")


def _sort_target_modules(config_path: Path) -> None:
    """PEFT writes ``SET_FIELDS`` (IA3's ``feedforward_modules`` too) from sets, in another
    order in every process; sorted, identical trainings give byte-identical folders."""
    cfg = json.loads(config_path.read_text())
    for key in SET_FIELDS:
        if isinstance(cfg.get(key), list):
            cfg[key] = sorted(cfg[key])
    config_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


@contextmanager
def _wrapped(model: torch.nn.Module, spec: AdapterSpec, names: Sequence[str]) -> Iterator[Any]:
    """``model`` wrapped in a freshly initialised adapter (seeded by ``spec.seed``); on exit
    the adapter is unloaded and the model is as it came (weights a family's initialisation
    rewrote included)."""
    from peft import get_peft_model

    family = get_family(spec.family)
    restore = [f"{m}.weight" for m in names] if family.mutates_base else []
    with preserved(model, restore):
        torch.manual_seed(spec.seed)
        peft_model = get_peft_model(model, family.peft_config(spec, names))
        try:
            yield peft_model
        finally:
            peft_model.unload()


def save_initial_state(
    model: torch.nn.Module, spec: AdapterSpec, path: str | Path, *, overwrite: bool = False
) -> Path:
    """Initialise the adapter ``spec`` describes on ``model`` once and save its starting point
    to ``path``, for ``train_adapter(init_state=path)`` of both sides of a contrast."""
    path = check_writable(path, overwrite=overwrite)
    if overwrite and dist.is_main():
        path.unlink(missing_ok=True)
    dist.barrier()
    names = target_module_names(model, spec)
    with _wrapped(model, spec, names) as peft_model:
        share_initial_state(peft_model, spec, names, path)
    return path


def _initial_tensors(peft_model: Any, spec: AdapterSpec, names: Sequence[str]) -> dict[str, Any]:
    """The parameters that make an adapter's starting point: its trainable ones, plus the
    wrapped base weights where the family's initialisation rewrites them."""
    params = dict(peft_model.named_parameters())
    state = {n: p for n, p in params.items() if p.requires_grad}
    if get_family(spec.family).mutates_base:
        for m in names:
            state.update({n: p for n, p in params.items() if n.endswith(f"{m}.base_layer.weight")})
    return state


def share_initial_state(
    peft_model: Any, spec: AdapterSpec, names: Sequence[str], path: str | Path
) -> None:
    """Load the initial state at ``path`` into a freshly initialised adapter, or save this
    adapter's initial state there when there is none yet (atomically)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    path = Path(path)
    state = _initial_tensors(peft_model, spec, names)
    if not dist.broadcast(path.is_file()):  # rank 0's answer: every rank takes one branch
        if dist.is_main():
            with atomic_path(path, overwrite=False) as tmp:
                tensors = {n: p.detach().to("cpu").contiguous() for n, p in state.items()}
                # one key: safetensors writes a metadata map's keys in an order of its own
                meta = json.dumps({"family": spec.family, "seed": spec.seed}, sort_keys=True)
                save_file(tensors, str(tmp), metadata={"weightsteer": meta})
        dist.barrier()
        if dist.is_main():
            return  # the other ranks load what rank 0 saved: one start for all
    try:
        saved = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise UserError(
            f"initial state {path} cannot be read ({e}); delete it to make it again"
        ) from None
    wrong = sorted(set(saved) ^ set(state)) or [
        n for n in state if saved[n].shape != state[n].shape
    ]
    if wrong:
        raise UserError(
            f"initial state {path} was made for another adapter recipe (first difference: "
            f"{wrong[0]}); delete it or train with the recipe that made it"
        )
    with torch.no_grad():
        for n, p in state.items():
            p.copy_(saved[n])


INFO_KEYS = {"family": str, "spec": dict, "base": dict}  # what extraction reads of it


def read_adapter_info(adapter_dir: str | Path) -> dict[str, Any] | None:
    """The recipe saved next to an adapter by ``train_adapter`` (None for foreign adapters)."""
    path = Path(adapter_dir) / ADAPTER_INFO
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None
    missing = [k for k, kind in INFO_KEYS.items() if not isinstance(info, dict)
               or not isinstance(info.get(k), kind)]  # fmt: skip
    if missing:
        raise UserError(
            f"{path} lacks {', '.join(missing)}: it is damaged or was not written by weightsteer "
            "train; retrain the adapter, or delete the file to use the folder as a plain PEFT "
            "adapter"
        )
    return info
