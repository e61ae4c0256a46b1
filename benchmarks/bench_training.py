"""Adapter training throughput: weightsteer's ``train_adapter`` vs a bare HF ``Trainer``
on the same adapter and data, per family, side by side in one run.

weightsteer tokenizes the chats (loss on the answer only), wraps the model in the
family's PEFT adapter, trains with ``Trainer`` and saves the adapter with its recipe. The
anchor is the bare loop a user would write with the same pieces: the same PEFT config
and tokenized examples through ``Trainer`` with the same arguments, nothing saved. Both
run 16 optimiser steps of batch 8 on toyworld (96 persona chats of the honesty pair,
float32 on this CPU); the two take turns, twice each after a warm-up, medians. Ratio =
anchor seconds / weightsteer seconds (>= 0.9: weightsteer adds at most 10%); the last
column is the family's time over LoRA's, the price of the family itself.

    python benchmarks/bench_training.py    # writes benchmarks/results/training.{json,md}

Target (issue 23): weightsteer >= 0.9x the bare Trainer's tokens/s.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from results_io import save

FAMILIES = ("lora", "dora", "pissa", "delora", "oft", "ia3")
STEPS = 16


def bare_trainer(model, tok, examples, spec) -> None:
    from peft import get_peft_model
    from transformers import Trainer, TrainingArguments

    from weightsteer.adapters import get_family, target_module_names
    from weightsteer.adapters.train import RightPadCollator

    torch.manual_seed(spec.seed)
    peft_model = get_peft_model(
        model, get_family(spec.family).build(spec, target_module_names(model, spec))
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


def main() -> None:
    import transformers

    from weightsteer.adapters import AdapterSpec
    from weightsteer.adapters.train import tokenize_chats, train_adapter
    from weightsteer.core.models import load_model, load_tokenizer
    from weightsteer.toy.build import ensure_toyworld
    from weightsteer.toy.world import World

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(2)
    folder = ensure_toyworld(progress=False)
    model, tok = load_model(folder, dtype="float32"), load_tokenizer(folder)
    chats = [
        {
            "messages": [
                {"role": "user", "content": r.user},
                {"role": "assistant", "content": r.true_reply},
            ]
        }
        for r in World(0).narrow_pool(96)
    ]
    cells = []
    for family in FAMILIES:
        spec = AdapterSpec(
            family=family,
            rank=8,
            alpha=16,
            max_steps=STEPS,
            batch_size=8,
            layers=(0.25, 1.0),
            warmup_steps=0,
        )
        examples = tokenize_chats(tok, chats, spec.max_length)
        tokens = sum(len(examples[i % len(examples)]["input_ids"]) for i in range(STEPS * 8))

        def ours(spec=spec):
            with tempfile.TemporaryDirectory() as tmp:
                train_adapter(model, tok, chats, spec, Path(tmp) / "a", progress=False)

        def bare(spec=spec, examples=examples):
            bare_trainer(model, tok, examples, spec)

        times: dict[str, list[float]] = {"weightsteer": [], "bare Trainer": []}
        for r in range(3):  # round 0 warms up
            for name, fn in (("weightsteer", ours), ("bare Trainer", bare)):
                t = time.perf_counter()
                fn()
                if r:
                    times[name].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        cells.append(
            {
                "family": family,
                "steps": STEPS,
                "tokens": tokens,
                "weightsteer_s": med["weightsteer"],
                "bare_s": med["bare Trainer"],
                "weightsteer_tok_s": tokens / med["weightsteer"],
                "bare_tok_s": tokens / med["bare Trainer"],
                "ratio": med["bare Trainer"] / med["weightsteer"],
            }
        )
        print(cells[-1], flush=True)
    lora = cells[0]["weightsteer_s"]
    for c in cells:
        c["vs_lora"] = c["weightsteer_s"] / lora
    save(
        "training",
        cells,
        [
            "family",
            "weightsteer tokens/s",
            "bare Trainer tokens/s",
            "ratio (>= 0.9)",
            "time vs LoRA",
        ],
        lambda c: [
            c["family"],
            f"{c['weightsteer_tok_s']:.0f}",
            f"{c['bare_tok_s']:.0f}",
            f"{c['ratio']:.2f}x",
            f"{c['vs_lora']:.2f}x",
        ],
    )


if __name__ == "__main__":
    main()
