"""Memory: the peak resident set of each pipeline stage against one model, on a real model.

Each stage of a small run on SmolLM2-135M-Instruct (the embedded real model; float32,
~540 MB of weights) runs in a process of its own, which reports its peak RSS
(``ru_maxrss``). "One model" is a process that imports the same libraries, loads the
model and runs one forward of 8 x 64 tokens: what any stage must hold at least. Ratio =
stage peak / one model's peak (1.0: the stage holds nothing beyond the model). The run:
the french persona pair on 8 everyday requests x 2 paraphrases (16 tokens each), one
LoRA and one DoRA adapter per side (the DoRA vector is dense: extraction merges module
by module), eval at alpha -1 / 0 / +1 on 8 claims rows and the neutral-text NLL, compare
of weight steering and mean-difference activation steering at 1 nat on 4 + 4 prompts,
the report, and the analyses of the LoRA vector.

    python benchmarks/bench_memory.py    # writes benchmarks/results/memory.{json,md}

Issue 23 asks for each stage's peak RSS against one model; there is no ratio target.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from results_io import save

CONFIG = """
name = "memory"
[model]
id = "smollm2"
system_prompt = "none"
dtype = "float32"
[behavior]
name = "french"
[questions]
source = "builtin:chat-prompts"
column = "prompt"
n_train = 8
n_eval = 0
[data]
paraphrases = 2
max_new_tokens = 16
truncated = "keep"
[train]
families = ["lora", "dora"]
seeds = [0]
epochs = 1
batch_size = 8
layers = [0.3, 0.8]
[eval]
suites = ["claims", "nll"]
alphas = [-1, 0, 1]
rows_per_suite = 8
[eval.claims]
source = "builtin:claims-sample"
[compare]
methods = ["weight", "act:mean_diff"]
budgets = [0.25]
n_calibration = 4
n_audit = 4
tokens = 8
[analysis]
analyses = ["layers", "svd"]
families = ["lora"]
suites = ["claims"]
calibrated = false
"""

STAGES = ("data", "train", "extract", "eval", "compare", "report", "analyze")

CHILD = """
import json, resource, sys
from rich.console import Console
import torch
torch.set_num_threads(2)
what, config, root = sys.argv[1:]
if what == "one model":
    from weightsteer.core.models import load_model
    from weightsteer.core.sources import resolve_source
    model = load_model(resolve_source("smollm2"), dtype="float32")
    with torch.no_grad():
        model(torch.randint(10, 1000, (8, 64)))
    size = sum(p.numel() * p.element_size() for p in model.parameters())
else:
    from weightsteer.pipeline import Context, Run, load_config, run_stages
    from weightsteer.cli.app import quiet_transformers
    quiet_transformers()
    ctx = Context(Run.create(root, load_config(config)), Console(quiet=True), progress=False)
    run_stages(ctx, [what])
    size = 0
print(json.dumps({"peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "model_bytes": size}))
"""


def peak(what: str, config: Path, root: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, what, str(config), str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"{what} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "memory.toml"
        config.write_text(CONFIG)
        root = Path(tmp) / "runs" / "memory"
        base = peak("one model", config, root)
        print(f"one model: {base['peak_kb'] / 1024:.0f} MB peak", flush=True)
        cells = []
        for stage in STAGES:
            got = peak(stage, config, root)
            cells.append(
                {
                    "stage": stage,
                    "peak_mb": round(got["peak_kb"] / 1024),
                    "one_model_mb": round(base["peak_kb"] / 1024),
                    "ratio": round(got["peak_kb"] / base["peak_kb"], 2),
                    "extra_mb": round((got["peak_kb"] - base["peak_kb"]) / 1024),
                    "weights_mb": round(base["model_bytes"] / 2**20),
                }
            )
            print(f"{stage}: {cells[-1]['peak_mb']} MB", flush=True)
    save(
        "memory",
        cells,
        [
            "stage (SmolLM2-135M, float32)",
            "peak RSS MB",
            "one model MB",
            "ratio",
            "extra MB",
            "weights MB",
        ],
        lambda c: [
            c["stage"],
            str(c["peak_mb"]),
            str(c["one_model_mb"]),
            f"{c['ratio']:.2f}x",
            f"{c['extra_mb']:+d}",
            str(c["weights_mb"]),
        ],
    )


if __name__ == "__main__":
    main()
