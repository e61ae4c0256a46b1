"""Generation throughput: weightsteer's persona-data generation vs a bare
``model.generate`` on the same prompts, side by side in one run.

weightsteer (``core.generation.generate_ids``, what the data stage calls) batches prompts
of similar length together and stops each answer at the model's end of turn. The anchor
is what a user would write: the prompts in their given order, ``batch_size`` at a time,
left-padded by the tokenizer, ``model.generate`` greedy with the same end tokens. Both
generate up to the same number of new tokens, greedy, float32 on this CPU; the ways take
turns round after round (medians). New tokens/s counts the tokens each way kept (up to and
including the end of turn). Model: toyworld, 96 persona chats (honesty pair, NARROW
questions) of mixed lengths, up to 24 new tokens (its answers end after 8), batch 8 and
32.

    python benchmarks/bench_generation.py    # writes benchmarks/results/generation.{json,md}

Target (issue 23): weightsteer >= 0.9x the bare generate's tokens/s.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from results_io import save


def bare_generate(model, tok, prompts: list[str], batch_size: int, new: int, ends) -> int:
    """Tokens kept by plain ``model.generate``, prompts in their given order."""
    kept = 0
    tok.padding_side = "left"
    for i in range(0, len(prompts), batch_size):
        enc = tok(
            prompts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
        )
        out = model.generate(
            **enc,
            max_new_tokens=new,
            do_sample=False,
            eos_token_id=ends,
            pad_token_id=tok.pad_token_id,
        )
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            n = next((j + 1 for j, t in enumerate(row) if t in ends), len(row))
            kept += n
    return kept


def main() -> None:
    from weightsteer.core.generation import end_token_ids, generate_ids
    from weightsteer.core.models import load_model, load_tokenizer, render_chat
    from weightsteer.pairs.personas import PAIRS, persona_chat
    from weightsteer.toy.build import ensure_toyworld
    from weightsteer.toy.world import World

    torch.set_num_threads(2)
    folder = ensure_toyworld(progress=False)
    model, tok = load_model(folder, dtype="float32"), load_tokenizer(folder)
    pair = PAIRS["honesty"]
    rows = World(0).narrow_pool(96)
    prompts = [
        render_chat(tok, persona_chat(pair.prompt("pos" if i % 2 else "neg", i), r.user))
        for i, r in enumerate(rows)
    ]
    ends = end_token_ids(model, tok)
    new = 24
    cells = []
    for b in (8, 32):
        counts: dict[str, int] = {}

        def ours(b=b, counts=counts):
            counts["weightsteer"] = sum(
                len(x) for x in generate_ids(model, tok, prompts, max_new_tokens=new, batch_size=b)
            )

        def bare(b=b, counts=counts):
            counts["bare generate"] = bare_generate(model, tok, prompts, b, new, ends)

        times: dict[str, list[float]] = {"weightsteer": [], "bare generate": []}
        with torch.no_grad():
            for r in range(4):  # round 0 warms up
                for name, fn in (("weightsteer", ours), ("bare generate", bare)):
                    t = time.perf_counter()
                    fn()
                    if r:
                        times[name].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        rate = {k: counts[k] / med[k] for k in med}
        cells.append(
            {
                "batch": b,
                "prompts": len(prompts),
                "new_tokens": new,
                "weightsteer_tokens": counts["weightsteer"],
                "bare_tokens": counts["bare generate"],
                "weightsteer_tok_s": rate["weightsteer"],
                "bare_tok_s": rate["bare generate"],
                "ratio": rate["weightsteer"] / rate["bare generate"],
            }
        )
        print(cells[-1], flush=True)
    save(
        "generation",
        cells,
        ["batch", "weightsteer tokens/s", "bare generate tokens/s", "ratio (target >= 0.9)"],
        lambda c: [
            str(c["batch"]),
            f"{c['weightsteer_tok_s']:.0f}",
            f"{c['bare_tok_s']:.0f}",
            f"{c['ratio']:.2f}x",
        ],
    )


if __name__ == "__main__":
    main()
