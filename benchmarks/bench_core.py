"""Core benchmark at the real Qwen3-0.6B shape (random init, bfloat16), LoRA r=32 on layers 8-21.

Measures side by side, in one run:
  * extraction time and peak memory: weightsteer's ``extract_vector`` vs the naive route
    (deep-copy the base, ``merge_and_unload`` each adapter in bf16, subtract state dicts);
    each route runs in its own process, with RSS sampled every 2 ms during the extraction;
  * vector file size vs the dense float32 equivalents;
  * one alpha switch vs one forward pass of 8 x 64 tokens.

    python benchmarks/bench_core.py            # writes benchmarks/results/core.{json,md}

Targets (issue 2): extraction >= 10x faster, peak memory within 1.2x of one model,
file <= 5% of dense, alpha switch cheaper than a forward pass.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch

from weightsteer.core.vector import WeightVector

RESULTS = Path(__file__).parent / "results"
SHAPE = dict(
    vocab_size=151936,
    hidden_size=1024,
    intermediate_size=3072,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    max_position_embeddings=4096,
    tie_word_embeddings=True,
)
LAYERS = range(8, 22)
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def rss() -> int:
    return psutil.Process().memory_info().rss


class PeakRSS:
    """Highest RSS seen while the block runs (a sampling thread, every 2 ms)."""

    def __enter__(self):
        self.peak, self._stop = rss(), threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss())


def build(root: Path) -> None:
    """Random base model and two random LoRA adapters (B != 0), saved under ``root``."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    model = Qwen3ForCausalLM(Qwen3Config(**SHAPE))
    torch.set_default_dtype(torch.float32)
    model.save_pretrained(root / "base")
    names = [
        f"model.layers.{i}.{'self_attn' if t[0] in 'qkvo' else 'mlp'}.{t}"
        for i in LAYERS
        for t in TARGETS
    ]
    peft_model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, target_modules=names))
    for seed, side in ((1, "pos"), (2, "neg")):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for n, p in peft_model.named_parameters():
                if "lora_" in n:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.02)
        peft_model.save_pretrained(root / side)


def load_base(root: Path):
    from transformers import Qwen3ForCausalLM

    return Qwen3ForCausalLM.from_pretrained(root / "base", dtype=torch.bfloat16).eval()


def naive_extract(model, pos: Path, neg: Path) -> dict[str, torch.Tensor]:
    from peft import PeftModel

    merged = []
    for adapter in (pos, neg):
        m = PeftModel.from_pretrained(copy.deepcopy(model), str(adapter)).merge_and_unload()
        merged.append(dict(m.state_dict()))
    return {n: merged[0][n] - merged[1][n] for n in merged[0]}


def worker(route: str, root: Path) -> dict:
    import transformers

    transformers.logging.set_verbosity_error()
    start = rss()
    model = load_base(root)
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    before = rss()
    with PeakRSS() as peak:
        t0 = time.perf_counter()
        if route == "ours":
            from weightsteer.adapters.extract import extract_vector

            vec = extract_vector(model, root / "pos", root / "neg")
            vec.save(root / "vector.safetensors", overwrite=True)
            t_extract = None
        else:
            out = naive_extract(model, root / "pos", root / "neg")
            t_extract = time.perf_counter() - t0
            torch.save(out, root / "naive_dense.pt")
        elapsed = time.perf_counter() - t0
    return {
        "route": route,
        "seconds": elapsed,
        "seconds_without_save": t_extract,
        "model_bytes": model_bytes,
        "extra_bytes": peak.peak - before,
        "peak_over_model": (peak.peak - start) / model_bytes,
        "rss_after_load_over_model": (before - start) / model_bytes,
    }


def switch_vs_forward(root: Path, vec) -> dict:
    from weightsteer.core.steer import Steerer

    model = load_base(root)
    ids = torch.randint(0, SHAPE["vocab_size"], (8, 64))
    fwd, sw = [], []
    with torch.no_grad(), Steerer(model, vec) as s:
        for a in (0.5, -1.0, 1.0):
            t0 = time.perf_counter()
            s.set_alpha(a)
            sw.append(time.perf_counter() - t0)
        for _ in range(2):
            t0 = time.perf_counter()
            model(ids)
            fwd.append(time.perf_counter() - t0)
    return {"switch_s": statistics.median(sw), "forward_8x64_s": statistics.median(fwd)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", choices=["ours", "naive"])
    ap.add_argument("--root", type=Path)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.root)))
        return

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        build(root)
        print(f"built random Qwen3-0.6B-shape model + adapters in {time.perf_counter() - t0:.0f} s")
        routes = {}
        for route in ("ours", "naive"):
            cmd = [sys.executable, __file__, "--worker", route, "--root", str(root)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                sys.exit(f"{route} worker failed:\n{res.stderr[-3000:]}")
            routes[route] = json.loads(res.stdout.strip().splitlines()[-1])
            print(route, routes[route])
        vec = WeightVector.load(root / "vector.safetensors")
        sizes = {
            "vector_file_bytes": (root / "vector.safetensors").stat().st_size,
            "dense_steered_fp32_bytes": 4 * sum(math.prod(vec.shape(n)) for n in vec),
            "dense_full_fp32_bytes": routes["ours"]["model_bytes"] * 2,
            # what any exact float32 rank-r store needs: r * (in + out) floats per tensor
            "exact_factor_floor_bytes": 4
            * sum((vec.rank(n) or 0) * sum(vec.shape(n)) for n in vec),
        }
        timing = switch_vs_forward(root, vec)
        print(timing)
    ours, naive = routes["ours"], routes["naive"]
    result = {
        "shape": "Qwen3-0.6B (random init, bf16), LoRA r=32 alpha=64, layers 8-21, 7 projections",
        "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}",
        "routes": routes,
        "sizes": sizes,
        "timing": timing,
        "ratios": {
            "extraction_speedup": naive["seconds"] / ours["seconds"],
            "peak_memory_over_one_model_ours": ours["peak_over_model"],
            "peak_memory_over_one_model_naive": naive["peak_over_model"],
            "file_over_dense_steered": sizes["vector_file_bytes"]
            / sizes["dense_steered_fp32_bytes"],
            "file_over_dense_full_model": sizes["vector_file_bytes"]
            / sizes["dense_full_fp32_bytes"],
            "switch_over_forward": timing["switch_s"] / timing["forward_8x64_s"],
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "core.json").write_text(json.dumps(result, indent=2) + "\n")
    r = result["ratios"]
    mib = {k: v / 2**20 for k, v in sizes.items()}
    floor = sizes["exact_factor_floor_bytes"] / sizes["dense_steered_fp32_bytes"]
    md = [
        f"# Core benchmark\n\n{result['shape']}; {result['machine']}.\n",
        "| measure | weightsteer | naive / reference | ratio | target |",
        "|---|---|---|---|---|",
        f"| extraction time (s, incl. save) | {ours['seconds']:.2f} | {naive['seconds']:.2f} | "
        f"{r['extraction_speedup']:.1f}x faster | >= 10x |",
        f"| peak memory / one model | {ours['peak_over_model']:.2f} | "
        f"{naive['peak_over_model']:.2f} | | <= 1.2 |",
        f"| file vs dense fp32 of steered tensors | {mib['vector_file_bytes']:.1f} MiB | "
        f"{mib['dense_steered_fp32_bytes']:.1f} MiB | {r['file_over_dense_steered']:.1%} | "
        f"exact rank-2r floor: {floor:.1%} |",
        f"| file vs dense fp32 of the whole model diff | {mib['vector_file_bytes']:.1f} MiB | "
        f"{mib['dense_full_fp32_bytes']:.0f} MiB | {r['file_over_dense_full_model']:.1%} | <= 5% |",
        f"| alpha switch vs forward 8x64 (s) | {timing['switch_s']:.3f} | "
        f"{timing['forward_8x64_s']:.3f} | {r['switch_over_forward']:.2f} | < 1 |",
    ]
    (RESULTS / "core.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
