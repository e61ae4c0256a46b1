"""Scoring throughput: weightsteer's choice scoring vs a raw batched forward of the same
tokens, side by side in one run.

``score_choices`` left-pads similar lengths together and runs the head on the last
position only; the anchor is what a user would write: the same left-padded batches
through ``model(...)`` (the head on every position), ``log_softmax`` of the last
position, the choice tokens gathered. Both in float32 on this CPU, taking turns round
after round (medians; a toyworld pass takes ~30 ms, so it gets 21 rounds). Ratio =
anchor seconds / weightsteer seconds (>= 1: weightsteer is faster). Models: toyworld (64
rendered chats, batch 8 / 32 / 64), and the Qwen3-0.6B shape with random weights (16 of
the same chats as token ids, batch 8 / 16: a forward of that size takes seconds on 2
cores).

    python benchmarks/bench_scoring.py    # writes benchmarks/results/scoring.{json,md}

Target (issue 23): weightsteer >= 0.9x the anchor's rows/s.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_core import SHAPE
from results_io import save, timed


def anchor(model, tok, prompts, choice_ids, batch_size):
    from weightsteer.core.models import left_padded_batches

    out = torch.empty(len(prompts), 2)
    with torch.no_grad():
        for idx, ids, mask in left_padded_batches(tok, prompts, batch_size):
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
            logp = torch.log_softmax(logits[:, -1].float(), dim=-1)
            out[idx] = logp[:, choice_ids]
    return out


def main() -> None:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from weightsteer.core.models import load_model, load_tokenizer, render_chat
    from weightsteer.core.scoring import YES_NO, choice_token_ids, score_choices
    from weightsteer.toy.build import ensure_toyworld
    from weightsteer.toy.world import World

    torch.set_num_threads(2)
    folder = ensure_toyworld(progress=False)
    tok = load_tokenizer(folder)
    rows = World(0).suites()["narrow"][:64]
    prompts = [render_chat(tok, [{"role": "user", "content": r.user}]) for r in rows]
    encoded = [tok.encode(p, add_special_tokens=False) for p in prompts]
    pos, neg = choice_token_ids(tok, YES_NO)
    choice_ids = [pos[0][0], neg[0][0]]
    toy = load_model(folder, dtype="float32")
    torch.manual_seed(0)
    qwen = Qwen3ForCausalLM(Qwen3Config(**SHAPE, pad_token_id=tok.pad_token_id)).eval()
    cells = []
    for name, model, n, sizes, repeats in (
        ("toyworld", toy, 64, (8, 32, 64), 21),
        ("Qwen3-0.6B shape", qwen, 16, (8, 16), 2),
    ):
        for b in sizes:
            med = timed(
                {
                    "ours": lambda m=model, b=b, n=n: score_choices(
                        m, tok, prompts[:n], YES_NO, batch_size=b
                    ),
                    "raw": lambda m=model, b=b, n=n: anchor(m, tok, encoded[:n], choice_ids, b),
                },
                repeats,
            )
            ours, raw = med["ours"], med["raw"]
            cells.append(
                {
                    "model": name,
                    "rows": n,
                    "batch": b,
                    "weightsteer_s": ours,
                    "anchor_s": raw,
                    "ratio": raw / ours,
                    "rows_per_s": n / ours,
                    "anchor_rows_per_s": n / raw,
                }
            )
            print(cells[-1], flush=True)
    save(
        "scoring",
        cells,
        ["model", "rows", "batch", "weightsteer rows/s", "raw forward rows/s", "ratio (>= 0.9)"],
        lambda c: [
            c["model"],
            str(c["rows"]),
            str(c["batch"]),
            f"{c['rows_per_s']:.1f}",
            f"{c['anchor_rows_per_s']:.1f}",
            f"{c['ratio']:.2f}x",
        ],
    )


if __name__ == "__main__":
    main()
