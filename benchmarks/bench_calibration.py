"""Iso-KL calibration: what one calibrated side costs, and what each saving buys, side by
side in one run.

A calibrated side is one strength search (one budget, one sign) plus its audit. Three
ways calibrate the same intervention on the same prompts:

- ``plain``: every budget's search from ``|s| = 1`` (a KL measured at the very same
  strength is still reused), the base pass computed at every step;
- ``warm``: later budgets start from the KLs already measured;
- ``warm + kept base``: also the unsteered log-probs kept per continuation (the default).

Per way: KL measurements, greedy generations and teacher-forced passes (one per batch),
seconds, seconds per calibrated side, the outcomes (they must agree), and the speedup
over ``plain``. One run of each way (the counts are exact; the seconds are one run's).
Interventions: a random rank-16 LoRA-shaped weight delta on the middle layers, its
factors' std chosen so the budgets lie near ``|s| = 1`` (toyworld and SmolLM2: 0.08; the
search's cost depends on the KL curve, not on what made it), and on toyworld a random
activation vector. Models: toyworld, with the demo's calibration settings (48 + 48
prompts, 20 tokens, the default budgets: 0.1 / 0.25 / 0.5 nat of mean per-token KL), and
SmolLM2-135M-Instruct (the embedded real
model; 4 + 4 everyday prompts, 20 tokens, the same budgets; a KL measurement there takes
about a second).

    python benchmarks/bench_calibration.py    # writes benchmarks/results/calibration.{json,md}

Issue 23 asks for the effect of caching the base's log-probs; there is no ratio target.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_inference import random_vector
from results_io import save

WAYS = ("plain", "warm", "warm + kept base")


def interventions(model, layers, std: float, activation: bool):
    from weightsteer.methods.activation import ActivationSteering
    from weightsteer.methods.weight import WeightSteering

    g = torch.Generator().manual_seed(1)
    d = model.config.hidden_size
    out = {
        "weight (random LoRA delta)": WeightSteering(
            vector=random_vector(model, set(layers), std=std), family="lora"
        )
    }
    if activation:
        out["activation (random vector)"] = ActivationSteering(
            method="act:random", vectors={k: torch.randn(d, generator=g) for k in layers}
        )
    return out


def calibrate_one(way, model, tok, inter, chats, settings) -> dict:
    """Calibrate ``inter`` one way; count what it ran."""
    import weightsteer.core.generation as generation
    import weightsteer.methods.calibrate as cal
    import weightsteer.methods.kl_cost as kl

    counts = {"measurements": 0, "generations": 0, "passes": 0}
    real = (cal.calibrate_strength, generation.generate_ids, kl._logprobs)

    def search(measure, **kw):
        if way == "plain":
            kw["known"] = ()
        return real[0](measure, **kw)

    def gen(*a, **kw):
        counts["generations"] += 1
        return real[1](*a, **kw)

    def passes(*a, **kw):
        counts["passes"] += 1
        return real[2](*a, **kw)

    cal.calibrate_strength, generation.generate_ids, kl._logprobs = search, gen, passes
    try:
        cache = cal.BaseLogprobs() if way == "warm + kept base" else cal.BaseLogprobs(0)
        t = time.perf_counter()
        found = cal.calibrate_budgets(
            model,
            tok,
            inter,
            *chats,
            settings,
            on_measure=lambda: counts.__setitem__("measurements", counts["measurements"] + 1),
            base_cache=cache,
        )
        seconds = time.perf_counter() - t
    finally:
        cal.calibrate_strength, generation.generate_ids, kl._logprobs = real
    sides = [c for cals in found.values() for c in cals.values()]
    return {
        **counts,
        "seconds": seconds,
        "sides": len(sides),
        "outcomes": sorted(f"{c.target:g}{c.sign:+d}:{c.status}" for c in sides),
        "strengths": [round(c.strength, 4) for c in sides],
    }


def measure(name, model, tok, layers, chats, settings, rounds, std, activation) -> list[dict]:
    cells = []
    for label, inter in interventions(model, layers, std, activation).items():
        runs: dict[str, list[dict]] = {w: [] for w in WAYS}
        for _ in range(rounds):
            for way in WAYS:
                runs[way].append(calibrate_one(way, model, tok, inter, chats, settings))
        plain = statistics.median(r["seconds"] for r in runs["plain"])
        for way in WAYS:
            last = runs[way][-1]
            seconds = statistics.median(r["seconds"] for r in runs[way])
            cells.append(
                {
                    "model": name,
                    "intervention": label,
                    "way": way,
                    **{k: last[k] for k in ("measurements", "generations", "passes", "sides")},
                    "seconds": round(seconds, 2),
                    "per_side": round(seconds / last["sides"], 2),
                    "speedup": round(plain / seconds, 2),
                    "same_outcomes": last["outcomes"] == runs["plain"][-1]["outcomes"],
                    "outcomes": last["outcomes"],
                }
            )
    return cells


def main() -> None:
    from weightsteer.core.models import load_model, load_tokenizer
    from weightsteer.core.sources import resolve_source
    from weightsteer.methods.activation import activation_layers
    from weightsteer.methods.calibration_prompts import calibration_prompts
    from weightsteer.methods.compare_config import CompareConfig
    from weightsteer.pairs.personas import persona_chat
    from weightsteer.pairs.questions import QuestionsConfig

    torch.set_num_threads(2)
    cells = []
    for name, source, questions, n, rounds, std, activation in (
        ("toyworld", "toyworld", {"source": "toyworld"}, 48, 1, 0.08, True),
        ("SmolLM2-135M", "smollm2", {"source": "builtin:chat-prompts"}, 4, 1, 0.08, False),
    ):
        folder = resolve_source(source)
        tok = load_tokenizer(folder, system_prompt="none")
        model = load_model(folder, dtype="float32")
        settings = CompareConfig(n_calibration=n, n_audit=n)
        prompts = calibration_prompts(settings, QuestionsConfig(**questions), set())
        chats = [
            [persona_chat(None, t) for t in texts] for texts in (prompts.calibration, prompts.audit)
        ]
        layers = activation_layers(model, (0.25, 0.75))
        print(f"{name}: {n} + {n} prompts, layers {layers}", flush=True)
        cells += measure(name, model, tok, layers, chats, settings, rounds, std, activation)
        del model

    save(
        "calibration",
        cells,
        [
            "model",
            "intervention",
            "way",
            "KLs measured",
            "generations",
            "passes",
            "s",
            "s / side",
            "speedup",
            "sides reached",
            "outcomes (budget, sign: status)",
        ],
        lambda c: [
            c["model"],
            c["intervention"],
            c["way"],
            str(c["measurements"]),
            str(c["generations"]),
            str(c["passes"]),
            f"{c['seconds']:.1f}",
            f"{c['per_side']:.2f}",
            f"{c['speedup']:.2f}x",
            f"{sum(o.endswith(':ok') for o in c['outcomes'])} of {len(c['outcomes'])}",
            "as plain" if c["same_outcomes"] and c["way"] != "plain" else ", ".join(c["outcomes"]),
        ],
    )


if __name__ == "__main__":
    main()
