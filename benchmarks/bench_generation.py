"""Generation throughput: weightsteer's persona-data generation vs a bare
``model.generate`` on the same prompts, side by side in one run.

weightsteer (``core.generation.generate_ids``, what the data stage calls) batches prompts
of similar length together and stops each answer at the model's end of turn. The anchor
is what a user would write: the prompts in their given order, ``batch_size`` at a time,
left-padded by the tokenizer, ``model.generate`` greedy with the same end tokens. Both
generate up to the same number of new tokens, greedy, float32 on this CPU; the ways take
turns round after round (medians). New tokens/s counts the tokens each way kept (up to and
including the end of turn). Models: toyworld, 96 persona chats (honesty pair, NARROW
questions) of mixed lengths, up to 24 new tokens (its answers end after 8), batch 8 and
32; and the real shape, SmolLM2-135M-Instruct (the embedded model), 16 everyday requests
under the french persona pair, up to 32 new tokens (it talks long: most answers run to
the cap), batch 8 and 16.

    python benchmarks/bench_generation.py    # writes benchmarks/results/generation.{json,md}

Target (issue 23): weightsteer >= 0.9x the bare generate's tokens/s.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from results_io import save, timed


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


def workloads():
    """``(model name, folder, tokenizer options, prompts as chats, new tokens, batches,
    rounds)``: toyworld's persona chats, and everyday requests to SmolLM2-135M."""
    from weightsteer.core.sources import resolve_source
    from weightsteer.core.table_files import read_table
    from weightsteer.pairs.personas import PAIRS, persona_chat
    from weightsteer.toy.build import ensure_toyworld
    from weightsteer.toy.world import World

    pair = PAIRS["honesty"]
    rows = World(0).narrow_pool(96)
    toy = [
        persona_chat(pair.prompt("pos" if i % 2 else "neg", i), r.user) for i, r in enumerate(rows)
    ]
    yield "toyworld", ensure_toyworld(progress=False), {}, toy, 24, (8, 32), 4
    texts = read_table("builtin:chat-prompts", what="prompts")["prompt"].tolist()[:16]
    french = PAIRS["french"]
    real = [
        persona_chat(french.prompt("pos" if i % 2 else "neg", i), t) for i, t in enumerate(texts)
    ]
    smol = resolve_source("smollm2")
    yield "SmolLM2-135M", smol, {"system_prompt": "none"}, real, 32, (8, 16), 2


def main() -> None:
    from weightsteer.core.generation import end_token_ids, generate_ids
    from weightsteer.core.models import load_model, load_tokenizer, render_chat

    torch.set_num_threads(2)
    cells = []
    for name, folder, tok_opts, chats, new, batches, rounds in workloads():
        model, tok = load_model(folder, dtype="float32"), load_tokenizer(folder, **tok_opts)
        prompts = [render_chat(tok, c) for c in chats]
        ends = end_token_ids(model, tok)
        for b in batches:
            counts: dict[str, int] = {}

            def ours(b=b, counts=counts, model=model, tok=tok, prompts=prompts, new=new):
                counts["weightsteer"] = sum(
                    len(x)
                    for x in generate_ids(model, tok, prompts, max_new_tokens=new, batch_size=b)
                )

            def bare(b=b, counts=counts, model=model, tok=tok, prompts=prompts, new=new, ends=ends):
                counts["bare generate"] = bare_generate(model, tok, prompts, b, new, ends)

            with torch.no_grad():  # round 0 warms up
                med = timed({"weightsteer": ours, "bare generate": bare}, rounds - 1)
            rate = {k: counts[k] / med[k] for k in med}
            cells.append(
                {
                    "model": name,
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
        del model
    save(
        "generation",
        cells,
        [
            "model",
            "prompts x new tokens",
            "batch",
            "weightsteer tokens/s",
            "bare generate tokens/s",
            "ratio (target >= 0.9)",
        ],
        lambda c: [
            c["model"],
            f"{c['prompts']} x {c['new_tokens']}",
            str(c["batch"]),
            f"{c['weightsteer_tok_s']:.0f}",
            f"{c['bare_tok_s']:.0f}",
            f"{c['ratio']:.2f}x",
        ],
    )


if __name__ == "__main__":
    main()
