"""Steered inference: what a steered model costs per forward, side by side in one run.

One model, four ways: unsteered; steered in place (``Steerer``: theta + alpha * dW written
into the weights, the architecture unchanged); the same delta as an unmerged PEFT LoRA
adapter (``export lora``, loaded with ``PeftModel``: the anchor a serving user would pick);
activation steering hooks on the same layers (one vector added per block output). The
vector is a random rank-16 LoRA-shaped delta on q/k/v/o/gate/up/down of the middle layers;
the workload a forward pass of ``batch x tokens`` random token ids, float32 on this CPU;
the four ways take turns, round after round, and each one's median counts. Ratio =
unsteered seconds / that way's seconds (1: costs nothing; < 1: slower). Models: toyworld
(8 x 64) and the Qwen3-0.6B shape with random weights (4 x 32: a forward of that size
takes seconds on 2 cores).

    python benchmarks/bench_inference.py    # writes benchmarks/results/inference.{json,md}

Target (issue 23): steered in place >= 0.99x the unsteered model.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_core import SHAPE
from results_io import save

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def random_vector(model, layers, rank: int = 16, std: float = 0.01):
    from weightsteer.core.models import fingerprint
    from weightsteer.core.param_names import layer_index, module_kind
    from weightsteer.core.vector import LowRank, VectorMeta, WeightVector

    g = torch.Generator().manual_seed(0)
    deltas = {}
    for name, p in model.named_parameters():
        if p.dim() == 2 and layer_index(name) in layers and module_kind(name) in TARGETS:
            out_f, in_f = p.shape
            deltas[name] = LowRank(
                torch.randn(out_f, rank, generator=g) * std,
                torch.randn(rank, in_f, generator=g) * std,
            )
    return WeightVector(deltas, VectorMeta(base=fingerprint(model), family="lora"))


def interleaved(ways: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each way's ``run``, the ways taking turns round after round (a
    machine's drift hits all of them alike); ``enter``/``leave`` (switching the way on and
    off) are not timed; the first round is a warm-up."""
    times: dict[str, list[float]] = {k: [] for k in ways}
    with torch.no_grad():
        for r in range(repeats + 1):
            for k, (enter, run, leave) in ways.items():
                enter()
                t = time.perf_counter()
                run()
                dt = time.perf_counter() - t
                leave()
                if r:
                    times[k].append(dt)
    return {k: statistics.median(v) for k, v in times.items()}


def measure(name, model, layers, batch, tokens, repeats) -> list[dict]:
    import contextlib
    import copy

    from peft import PeftModel

    from weightsteer.core.steer import Steerer
    from weightsteer.export import export_lora
    from weightsteer.methods.activation import ActivationSteering

    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (batch, tokens), generator=torch.Generator().manual_seed(1))
    vec = random_vector(model, set(layers))
    hidden = model.config.hidden_size
    act = ActivationSteering(
        method="act:mean_diff", vectors={layer: torch.randn(hidden) * 0.1 for layer in layers}
    )
    hooks = contextlib.ExitStack()

    def hooks_on():
        hooks.enter_context(act.attach(model))(1.0)

    nothing = lambda: None  # noqa: E731
    forward = lambda: model(input_ids=ids)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp, Steerer(model, vec) as steerer:
        export_lora(vec, Path(tmp) / "a", alpha=1.0)
        peft = PeftModel.from_pretrained(copy.deepcopy(model), str(Path(tmp) / "a")).eval()
        times = interleaved(
            {
                "unsteered": (nothing, forward, nothing),
                "steered in place": (
                    lambda: steerer.set_alpha(1.0),
                    forward,
                    lambda: steerer.set_alpha(0.0),
                ),
                "activation hooks": (hooks_on, forward, hooks.close),
                "unmerged PEFT LoRA": (nothing, lambda: peft(input_ids=ids), nothing),
            },
            repeats,
        )
    base = times["unsteered"]
    return [
        {
            "model": name,
            "batch": batch,
            "tokens": tokens,
            "way": way,
            "seconds": t,
            "tokens_per_s": batch * tokens / t,
            "ratio": base / t,
        }
        for way, t in times.items()
    ]


def main() -> None:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from weightsteer.core.models import load_model
    from weightsteer.toy.build import ensure_toyworld

    torch.set_num_threads(2)
    cells = []
    toy = load_model(ensure_toyworld(progress=False), dtype="float32")
    cells += measure("toyworld", toy, [1, 2, 3], 8, 64, 15)
    torch.manual_seed(0)
    qwen = Qwen3ForCausalLM(Qwen3Config(**SHAPE)).eval()
    cells += measure("Qwen3-0.6B shape", qwen, list(range(8, 22)), 4, 32, 5)
    for c in cells:
        print(c, flush=True)
    save(
        "inference",
        cells,
        ["model", "batch x tokens", "way", "tokens/s", "vs unsteered (in place: target >= 0.99)"],
        lambda c: [
            c["model"],
            f"{c['batch']} x {c['tokens']}",
            c["way"],
            f"{c['tokens_per_s']:.0f}",
            f"{c['ratio']:.2f}x",
        ],
    )


if __name__ == "__main__":
    main()
