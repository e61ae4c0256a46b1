"""What each compared method costs on toyworld, next to ``act:mean_diff``, side by side in
one run: its fit and its cost per strength.

- fit: building the intervention from the pairs' hidden states, which every activation
  method shares (collected once, timed apart as ``states``), with whatever else it makes
  for itself (the S-space methods' SVDs of the model's matrices, the pooled basis,
  ``act:mean_centred``'s forward over its neutral corpus), in milliseconds.
- per strength: one KL measurement (greedy generation of 20 tokens from 48 calibration
  prompts with the intervention, then the teacher-forced pass), what a calibration step
  costs; and one scoring pass of 100 Yes/No rows. ``prompt:dosed`` runs two contexts.

Ratios are mean_diff's seconds / the method's (1: as cheap; < 1: slower). Pairs: 60
toyworld questions under each honesty persona (answers "Yes." / "No."), hooked blocks
1-3. Medians of 3 rounds, the methods taking turns.

    python benchmarks/bench_methods.py    # writes benchmarks/results/methods.{json,md}

No target: the issue asks for each method's cost next to mean_diff's.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from results_io import save, timed

METHODS = (
    "act:mean_diff", "act:mean_centred", "act:pca", "act:topk_clusters", "act:cosine_gated",
    "act:spherical", "act:angular", "act:linear_act", "act:directional_ablation",
    "act:sspace", "act:sspace_ablate", "act:sspace_pool", "act:random", "prompt:simple",
    "prompt:dosed",
)  # fmt: skip


def setup():
    from weightsteer.core.models import load_model, load_tokenizer
    from weightsteer.methods import MethodInputs
    from weightsteer.methods.compare_config import CompareConfig
    from weightsteer.pairs.personas import PAIRS
    from weightsteer.pairs.questions import PROMPT_SOURCES
    from weightsteer.toy.build import ensure_toyworld

    folder = ensure_toyworld(progress=False)
    model, tok = load_model(folder, dtype="float32"), load_tokenizer(folder)
    texts = PROMPT_SOURCES.get("toyworld")(0, 160)
    pair = PAIRS["honesty"]
    pairs = {
        side: [{"messages": [{"role": "user", "content": q},
                             {"role": "assistant", "content": answer}],
                "persona": pair.prompt(side, 0)} for q in texts[:60]]
        for side, answer in (("pos", "Yes."), ("neg", "No."))
    }  # fmt: skip
    inputs = MethodInputs(model, tok, pair, pairs, {}, [1, 2, 3], CompareConfig())
    chats = [[{"role": "user", "content": q}] for q in texts[60:108]]
    rows = [[{"role": "user", "content": q + " Answer Yes or No."}] for q in texts[:100]]
    return model, tok, inputs, chats, rows


def main() -> None:
    from weightsteer.core.models import render_chat, with_system
    from weightsteer.core.scoring import score_choices
    from weightsteer.methods import candidates
    from weightsteer.methods.activation import ActivationConfig, fitted_states
    from weightsteer.methods.kl_cost import BaseLogprobs, token_kls

    model, tok, inputs, chats, rows = setup()
    t = time.perf_counter()
    fitted_states(inputs, ActivationConfig())
    states_seconds = time.perf_counter() - t

    states = dict(inputs.shared)  # the pairs' states only: each fit makes its own extras

    def fit(name: str):
        inputs.shared.clear()
        inputs.shared.update(states)
        return candidates([name], inputs)[0].build()

    fits = timed({name: (lambda n=name: fit(n)) for name in METHODS}, 3)
    built = {name: fit(name) for name in METHODS}
    cache = BaseLogprobs()

    def step(name: str):
        inter = built[name]
        with inter.attach(model) as set_strength:
            token_kls(model, tok, chats, inter, set_strength, 0.5, base_cache=cache, batch_size=48)
            set_strength(0.5)
            system = inter.system_prompt(0.5)
            prompts = [render_chat(tok, with_system(c, system)) for c in rows]
            score_choices(model, tok, prompts, batch_size=64)

    steps = timed({name: (lambda n=name: step(n)) for name in METHODS}, 3)
    cells = [
        {
            "method": name,
            "fit_s": fits[name],
            "strength_s": steps[name],
            "fit_ratio": fits["act:mean_diff"] / fits[name],
            "strength_ratio": steps["act:mean_diff"] / steps[name],
            "states_s": states_seconds,
        }
        for name in METHODS
    ]
    save(
        "methods",
        cells,
        ["method", "fit ms", "fit: mean_diff / it", "one strength s", "strength: mean_diff / it"],
        lambda c: [
            c["method"],
            f"{1000 * c['fit_s']:.2f}",
            f"{c['fit_ratio']:.2f}x",
            f"{c['strength_s']:.2f}",
            f"{c['strength_ratio']:.2f}x",
        ],
    )
    print(
        f"\nhidden states of the pairs (shared by every activation method): {states_seconds:.2f} s"
    )


if __name__ == "__main__":
    main()
