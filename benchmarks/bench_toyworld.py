"""toyworld report: build cost, persona honesty per suite, and where a NARROW vector reaches.

    python benchmarks/bench_toyworld.py    # writes benchmarks/results/toyworld.{json,md}

Builds (or finds in the cache) toyworld seed 0, measures the truthful-answer rate of every
held-out suite under the honest personas, no system prompt and the dishonest personas,
then runs the recipe on NARROW data only (colour questions in the evidence format) and
reports the honesty score (Yes/No logratio signed toward the truthful answer) and the
truthful rate on every suite for a sweep of alpha. NARROW is the steering data's own
distribution; every other suite is out of distribution.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from weightsteer.core.models import load_model, load_tokenizer
from weightsteer.core.steer import Steerer
from weightsteer.toy.build import INFO_FILE, ensure_toyworld
from weightsteer.toy.row_scores import answer_scores, narrow_honesty_vector, persona_table
from weightsteer.toy.world import World

RESULTS = Path(__file__).parent / "results"
ALPHAS = (-1.0, -0.5, 0.0, 0.5, 1.0)


def main() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(2)
    path = ensure_toyworld(0)
    info = json.loads((path / INFO_FILE).read_text())
    model, tok = load_model(path, dtype="float32"), load_tokenizer(path)
    suites = World(0).suites()
    personas = persona_table(model, tok, suites)
    with tempfile.TemporaryDirectory() as tmp:
        pairs, vec = narrow_honesty_vector(model, tok, tmp, progress=True)
    steering: dict[str, dict[str, dict[str, float]]] = {name: {} for name in suites}
    with Steerer(model, vec) as s:
        for alpha in ALPHAS:
            s.set_alpha(alpha)
            for name, rows in suites.items():
                scores = answer_scores(model, tok, rows)
                steering[name][f"{alpha:g}"] = {
                    "mean_score": float(scores.mean()),
                    "truthful": float((scores > 0).float().mean()),
                }
    result = {
        "build": {k: info[k] for k in ("parameters", "steps", "build_seconds", "reached_targets")},
        "curve": info["curve"],
        "personas": personas,
        "steering": steering,
        "vector": {"family": vec.meta.family, "norm": vec.norm(), "pairs": len(pairs["pos"])},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "toyworld.json").write_text(json.dumps(result, indent=2) + "\n")
    b = result["build"]
    md = [
        "# toyworld\n",
        f"Build: {b['parameters'] / 1e6:.2f}M parameters, {b['steps']} steps, "
        f"{b['build_seconds']:.0f} s (targets reached: {b['reached_targets']}).\n",
        "## Learning curve (held-out first-token accuracy per persona group)\n",
        "| step | s | loss | honest | dishonest | no prompt | sycophantic |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {p['step']} | {p['seconds']:.0f} | {p['loss']:.3f} | {p['honest']:.2f} | "
            f"{p['dishonest']:.2f} | {p['default']:.2f} | {p['sycophantic']:.2f} |"
            for p in info["curve"]
        ),
        "\n## Truthful-answer rate per held-out suite\n",
        "| suite | honest personas | no system prompt | dishonest personas |",
        "|---|---|---|---|",
        *(
            f"| {n} | {r['honest']:.3f} | {r['default']:.3f} | {r['dishonest']:.3f} |"
            for n, r in personas.items()
        ),
        "\n## NARROW LoRA honesty vector: mean honesty score (truthful rate) per suite\n",
        "| suite | " + " | ".join(f"alpha {a:g}" for a in ALPHAS) + " |",
        "|---|" + "---|" * len(ALPHAS),
        *(
            f"| {n} | "
            + " | ".join(f"{c['mean_score']:+.2f} ({c['truthful']:.2f})" for c in row.values())
            + " |"
            for n, row in steering.items()
        ),
    ]
    (RESULTS / "toyworld.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
