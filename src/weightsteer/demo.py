"""A tour of the recipe on toyworld, the embedded model (no downloads).

The toyworld model answers held-out questions truthfully or not depending on its system
prompt. Its own answers to NARROW questions (colour, evidence format) under an honest and
a dishonest persona become the POS and NEG training data; one LoRA adapter is trained on
each, dW = theta_pos - theta_neg is extracted exactly, and the honesty of held-out
answers is measured at several alphas, on NARROW and on the out-of-distribution suites.
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


def write_pairs(path: Path, records: list[dict]) -> None:
    with path.open("w") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")


def _prepare(out_dir: Path) -> None:
    if out_dir.exists():
        if not (out_dir / MARKER).exists():
            raise UserError(f"{out_dir} exists and is not a demo folder; pass another --out")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    (out_dir / MARKER).write_text("created by `weightsteer demo`; safe to delete\n")


def run_demo(out_dir: Path, console: Console) -> None:
    from weightsteer.modelling import load_model, load_tokenizer
    from weightsteer.steer import Steerer
    from weightsteer.toy.build import INFO_FILE, ensure_toyworld
    from weightsteer.toy.evaluate import answer_scores, narrow_honesty_vector
    from weightsteer.toy.world import World

    start = time.perf_counter()
    _prepare(out_dir)
    model_dir = ensure_toyworld(0)
    info = json.loads((model_dir / INFO_FILE).read_text())
    model, tok = load_model(model_dir, dtype="float32"), load_tokenizer(model_dir)
    console.print(
        f"[bold]1. model[/]  toyworld: {info['parameters'] / 1e6:.2f}M parameters, trained "
        f"{info['steps']} steps in {info['build_seconds']:.0f} s; cached in {model_dir}"
    )

    t0 = time.perf_counter()
    pairs, vec = narrow_honesty_vector(model, tok, out_dir / "adapters", progress=True)
    data = out_dir / "data"
    data.mkdir()
    for side in ("pos", "neg"):
        write_pairs(data / f"{side}.jsonl", pairs[side])
    console.print(
        f"[bold]2. data + train[/] {len(pairs['pos'])} NARROW questions answered under "
        f"honest and dishonest personas ({data}/), one LoRA r=8 per side: "
        f"{time.perf_counter() - t0:.0f} s"
    )
    for side in ("pos", "neg"):
        rec = pairs[side][0]
        console.print(f"   {side} ({rec['persona']}) {rec['messages'][0]['content']!r}")
        console.print(f"       -> {rec['messages'][1]['content']!r}")
    vec.save(out_dir / "vector.safetensors")
    console.print(f"[bold]3. extract[/] {vec}")

    suites = World(0).suites()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    table = Table(title="held-out honesty: mean score (truthful rate), no system prompt")
    table.add_column("suite")
    for a in ALPHAS:
        table.add_column(f"alpha {a:+.1f}", justify="right")
    cells: dict[str, list[str]] = {name: [] for name in suites}
    with Steerer(model, vec) as steerer:
        for a in ALPHAS:
            steerer.set_alpha(a)
            for name, rows in suites.items():
                s = answer_scores(model, tok, rows)
                cells[name].append(f"{s.mean():+.2f} ({(s > 0).float().mean():.2f})")
    for name, row in cells.items():
        table.add_row(name + (" (steering data)" if name == "narrow" else ""), *row)
    exact = all(torch.equal(before[n], p) for n, p in model.named_parameters())
    console.print("[bold]4. steer[/] score = Yes/No logratio signed toward the truthful answer")
    console.print(table)
    console.print(f"   weights restored bit-exactly after {len(ALPHAS)} switches: {exact}")
    console.print(f"done in {time.perf_counter() - start:.0f} s. Try next:")
    console.print(f"   weightsteer info {out_dir}/vector.safetensors")
    console.print(
        f"   weightsteer steer --model toyworld --vector {out_dir}/vector.safetensors "
        f"--alpha 0.5 --out {out_dir}/steered"
    )
