"""Threads: a LoRA training step and a generation batch at 1 and 2 torch threads, alone and
next to a second torch process (the contention a shared 2-core machine sees).

    python benchmarks/bench_threads.py    # writes benchmarks/results/threads.{json,md}

Each cell runs in a fresh process with ``torch.set_num_threads(n)`` (what ``weightsteer
--threads n`` does) and ``OMP_WAIT_POLICY`` ACTIVE (OpenMP's spin-waiting default) or
PASSIVE (idle threads sleep; weightsteer's default) on a random-init Qwen3 of 4 layers,
hidden 256; the competing process
multiplies 1024 x 1024 matrices on 2 threads for as long as the cell runs. Times are
medians of 5 repeats after a warm-up; ratios are against 2 threads alone, measured in the
same run (these machines are noisy: read the ratios, not the seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

CELL = r"""
import statistics, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
from transformers import AutoTokenizer
from peft import LoraConfig, get_peft_model
from weightsteer.toy.tiny import random_qwen3
from weightsteer.toy.build import ensure_toyworld
from weightsteer.core.generation import generate_ids
tok = AutoTokenizer.from_pretrained(ensure_toyworld(progress=False))
model = random_qwen3(tok, layers=4, hidden=256, heads=4, kv_heads=2, intermediate=768,
                     max_positions=256, seed=0)
work = sys.argv[2]
if work == "lora_step":
    m = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj",
                       "down_proj"]))
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    ids = torch.randint(0, len(tok), (8, 96))
    def run():
        loss = m(input_ids=ids, labels=ids).loss
        loss.backward(); opt.step(); opt.zero_grad()
else:
    model.eval()
    prompts = [list(range(5, 5 + 24 + i)) for i in range(8)]
    def run():
        generate_ids(model, tok, prompts, max_new_tokens=16, batch_size=8)
run()
times = []
for _ in range(5):
    t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
print(statistics.median(times))
"""

# OpenMP's idle threads: its default (spin a while, then sleep), spin forever, sleep at once
WAITS = {
    "default": {},
    "ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"},
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin 10k": {"GOMP_SPINCOUNT": "10000"},
}

HOG = "import torch; torch.set_num_threads(2); a = torch.randn(1024, 1024)\nwhile True: a @ a"


def cell(threads: int, work: str, contended: bool, wait: str) -> float:
    hog = subprocess.Popen([sys.executable, "-c", HOG]) if contended else None
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(WAITS[wait])
    try:
        if hog:
            time.sleep(1.0)  # let it spin up
        out = subprocess.run([sys.executable, "-c", CELL, str(threads), work],
                             capture_output=True, text=True, check=True, env=env)  # fmt: skip
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        if hog:
            hog.kill()
            hog.wait()


def main() -> None:
    rows = []
    for work in ("lora_step", "generate"):
        for wait in WAITS:
            for contended in (False, True):
                for threads in (1, 2):
                    rows.append({"work": work, "wait": wait, "threads": threads,
                                 "contended": contended,
                                 "seconds": cell(threads, work, contended, wait)})  # fmt: skip
    for r in rows:
        ref = next(x for x in rows if x["work"] == r["work"] and x["threads"] == 2
                   and not x["contended"] and x["wait"] == "default")  # fmt: skip
        r["vs_2_alone"] = r["seconds"] / ref["seconds"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "threads.json").write_text(json.dumps(rows, indent=2) + "\n")
    md = ["# threads\n", "| work | OpenMP wait | threads | second torch process | median s "
          "| vs 2 threads alone, default |", "|---|---|---|---|---|---|"]  # fmt: skip
    md += [f"| {r['work']} | {r['wait']} | {r['threads']} | {'yes' if r['contended'] else 'no'} "
           f"| {r['seconds']:.3f} | {r['vs_2_alone']:.2f}x |" for r in rows]  # fmt: skip
    (RESULTS / "threads.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
