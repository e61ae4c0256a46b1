"""A one-minute tour of the core on a tiny local model (no downloads).

A random tiny Qwen3 gets a POS adapter trained to answer "Yes." and a NEG adapter trained
to answer "No." on half of a small question pool; dW = theta_pos - theta_neg is extracted
exactly and the Yes/No logratio on the other half is measured at several alphas.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from weightsteer.errors import UserError

MARKER = ".weightsteer-demo"
ALPHAS = (-1.0, -0.5, 0.0, 0.5, 1.0)


def write_pairs(path: Path, questions: list[str], side: str, answer: str) -> None:
    """Pairs-format jsonl (design.md): the persona is recorded, never trained on."""
    persona = {"pos": "Always answer yes.", "neg": "Always answer no."}[side]
    with path.open("w") as f:
        for i, q in enumerate(questions):
            row = {
                "id": f"{side}-{i}",
                "side": side,
                "behavior": "yes-bias",
                "question_id": f"q{i}",
                "persona": persona,
                "messages": [
                    {"role": "user", "content": q},
                    {"role": "assistant", "content": answer},
                ],
                "seed": 0,
            }
            f.write(json.dumps(row) + "\n")


def _prepare(out_dir: Path) -> None:
    if out_dir.exists():
        if not (out_dir / MARKER).exists():
            raise UserError(f"{out_dir} exists and is not a demo folder; pass another --out")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    (out_dir / MARKER).write_text("created by `weightsteer demo`; safe to delete\n")


def run_demo(out_dir: Path, console: Console) -> None:
    from weightsteer.adapters import AdapterSpec
    from weightsteer.extract import extract_vector
    from weightsteer.modelling import load_model, load_tokenizer, render_chat
    from weightsteer.scoring import score_choices
    from weightsteer.steer import Steerer
    from weightsteer.toy.tiny import build_tiny_model, yes_no_questions
    from weightsteer.train import load_chat_jsonl, train_adapter

    start = time.perf_counter()
    _prepare(out_dir)
    model_dir = build_tiny_model(out_dir / "tiny-model")
    model = load_model(model_dir, dtype="float32")
    tok = load_tokenizer(model_dir)
    questions = yes_no_questions()
    train_q, test_q = questions[::2], questions[1::2]
    data = out_dir / "data"
    data.mkdir()
    write_pairs(data / "pos.jsonl", train_q, "pos", "Yes.")
    write_pairs(data / "neg.jsonl", train_q, "neg", "No.")
    console.print(f"[bold]1. data[/]  {len(train_q)} pairs per side in {data}/")
    example = load_chat_jsonl(data / "pos.jsonl")[0]["messages"]
    console.print("   training text:", repr(render_chat(tok, example, add_generation_prompt=False)))

    spec = AdapterSpec(family="lora", rank=4, alpha=8, lr=5e-3, max_steps=40, warmup_steps=0)
    for side in ("pos", "neg"):
        t0 = time.perf_counter()
        train_adapter(
            model,
            tok,
            load_chat_jsonl(data / f"{side}.jsonl"),
            spec,
            out_dir / "adapters" / side,
            progress=False,
        )
        console.print(f"[bold]2. train[/] {side} LoRA r=4: {time.perf_counter() - t0:.1f} s")

    vec = extract_vector(model, out_dir / "adapters/pos", out_dir / "adapters/neg")
    vec.save(out_dir / "vector.safetensors")
    console.print(f"[bold]3. extract[/] {vec}")

    prompts = [render_chat(tok, [{"role": "user", "content": q}]) for q in test_q]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    table = Table(title=f"held-out Yes/No logratio ({len(prompts)} questions)")
    for col in ("alpha", "mean logratio", "P(Yes) > P(No)", "pmass"):
        table.add_column(col, justify="right")
    with Steerer(model, vec) as steerer:
        for a in ALPHAS:
            steerer.set_alpha(a)
            s = score_choices(model, tok, prompts)
            frac = float((s.logratio > 0).float().mean())
            table.add_row(
                f"{a:+.1f}", f"{s.logratio.mean():+.3f}", f"{frac:.0%}", f"{s.pmass.mean():.3f}"
            )
    exact = all(torch.equal(before[n], p) for n, p in model.named_parameters())
    console.print("[bold]4. steer[/]")
    console.print(table)
    console.print(f"   weights restored bit-exactly after {len(ALPHAS)} switches: {exact}")
    console.print(f"done in {time.perf_counter() - start:.0f} s. Try next:")
    console.print(f"   weightsteer info {out_dir}/vector.safetensors")
    console.print(
        f"   weightsteer steer --model {model_dir} --vector {out_dir}/vector.safetensors "
        f"--alpha 0.5 --out {out_dir}/steered"
    )
