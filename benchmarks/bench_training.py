"""Adapter training throughput: weightsteer's ``train_adapter`` vs a bare HF ``Trainer``
on the same adapter and data, per family, side by side in one run.

weightsteer tokenizes the chats (loss on the answer only), wraps the model in the
family's PEFT adapter, trains with ``Trainer`` and saves the adapter with its recipe. The
anchor is the bare loop a user would write with the same pieces: the same PEFT config
and tokenized examples through ``Trainer`` with the same arguments, nothing saved. On
toyworld both run 16 optimiser steps of batch 8 (96 NARROW chats, every family), twice
each after a warm-up, medians; on the real shape, SmolLM2-135M-Instruct (the embedded
model), 4 steps of batch 8 (32 everyday requests with a short French answer; LoRA and the
dense DoRA), once each after a warm-up. float32 on this CPU; the two take turns. Ratio =
anchor seconds / weightsteer seconds (>= 0.9: weightsteer adds at most 10%); the last
column is the family's time over LoRA's, the price of the family itself.

    python benchmarks/bench_training.py    # writes benchmarks/results/training.{json,md}

Target (issue 23): weightsteer >= 0.9x the bare Trainer's tokens/s.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from results_io import save, timed

FAMILIES = ("lora", "dora", "pissa", "delora", "oft", "ia3")
STEPS = 16


def bare_trainer(model, tok, examples, spec) -> None:
    from peft import get_peft_model
    from transformers import Trainer, TrainingArguments

    from weightsteer.adapters import get_family, target_module_names
    from weightsteer.adapters.train import RightPadCollator

    torch.manual_seed(spec.seed)
    peft_model = get_peft_model(
        model, get_family(spec.family).peft_config(spec, target_module_names(model, spec))
    )
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=spec.batch_size,
            learning_rate=spec.learning_rate,
            max_steps=spec.max_steps,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
            remove_unused_columns=False,
            label_names=["labels"],
            logging_steps=10**6,
        )
        Trainer(
            model=peft_model,
            args=args,
            train_dataset=examples,
            data_collator=RightPadCollator(tok.pad_token_id),
        ).train()
    peft_model.unload()


def workloads():
    """``(model name, folder, tokenizer options, chats, families, steps, rounds, layers)``:
    toyworld's NARROW chats (every family), and SmolLM2-135M on everyday requests (the
    real shape; LoRA and the dense DoRA, fewer steps: a step takes seconds here)."""
    from weightsteer.core.sources import resolve_source
    from weightsteer.core.table_files import read_table
    from weightsteer.toy.build import ensure_toyworld
    from weightsteer.toy.world import World

    def chat(user: str, answer: str) -> dict:
        return {
            "messages": [
                {"role": "user", "content": user},
                {"role": "assistant", "content": answer},
            ]
        }

    toy = [chat(r.user, r.true_reply) for r in World(0).narrow_pool(96)]
    yield "toyworld", ensure_toyworld(progress=False), {}, toy, FAMILIES, STEPS, 3, (0.25, 1.0)
    texts = read_table("builtin:chat-prompts", what="prompts")["prompt"].tolist()[:32]
    answer = "Bien sûr ! Voici une réponse courte et claire, en français, à votre question."
    real = [chat(t, answer) for t in texts]
    smol = resolve_source("smollm2")
    yield "SmolLM2-135M", smol, {"system_prompt": "none"}, real, ("lora", "dora"), 4, 2, (0.3, 0.8)


def main() -> None:
    import transformers

    from weightsteer.adapters import AdapterSpec
    from weightsteer.adapters.train import tokenize_chats, train_adapter
    from weightsteer.core.models import load_model, load_tokenizer

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(2)
    cells = []
    for name, folder, tok_opts, chats, families, steps, rounds, layers in workloads():
        model, tok = load_model(folder, dtype="float32"), load_tokenizer(folder, **tok_opts)
        first = len(cells)
        for family in families:
            spec = AdapterSpec(
                family=family,
                rank=8,
                alpha=16,
                max_steps=steps,
                batch_size=8,
                layers=layers,
                warmup_steps=0,
            )
            examples = tokenize_chats(tok, chats, spec.max_length)
            tokens = sum(len(examples[i % len(examples)]["input_ids"]) for i in range(steps * 8))

            def ours(spec=spec, model=model, tok=tok, chats=chats):
                with tempfile.TemporaryDirectory() as tmp:
                    train_adapter(model, tok, chats, spec, Path(tmp) / "a", progress=False)

            def bare(spec=spec, examples=examples, model=model, tok=tok):
                bare_trainer(model, tok, examples, spec)

            med = timed({"weightsteer": ours, "bare Trainer": bare}, rounds - 1)  # round 0 warms up
            cells.append(
                {
                    "model": name,
                    "family": family,
                    "steps": steps,
                    "tokens": tokens,
                    "weightsteer_s": med["weightsteer"],
                    "bare_s": med["bare Trainer"],
                    "weightsteer_tok_s": tokens / med["weightsteer"],
                    "bare_tok_s": tokens / med["bare Trainer"],
                    "ratio": med["bare Trainer"] / med["weightsteer"],
                }
            )
            print(cells[-1], flush=True)
        lora = cells[first]["weightsteer_s"]
        for c in cells[first:]:
            c["vs_lora"] = c["weightsteer_s"] / lora
        del model
    save(
        "training",
        cells,
        [
            "model",
            "family",
            "steps x batch 8",
            "weightsteer tokens/s",
            "bare Trainer tokens/s",
            "ratio (>= 0.9)",
            "time vs LoRA",
        ],
        lambda c: [
            c["model"],
            c["family"],
            str(c["steps"]),
            f"{c['weightsteer_tok_s']:.0f}",
            f"{c['bare_tok_s']:.0f}",
            f"{c['ratio']:.2f}x",
            f"{c['vs_lora']:.2f}x",
        ],
    )


if __name__ == "__main__":
    main()
