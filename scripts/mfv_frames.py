"""Which tinymfv frame does a small real model answer? The measurement behind
``eval.tinymfv.frame``'s advice for SmolLM2 (issue 32).

    python scripts/mfv_frames.py                        # smollm2, the shipped sample
    python scripts/mfv_frames.py --model smollm2 --source my-vignettes.jsonl --out f.json

For every frame of ``eval.tinymfv.frame`` (json: the seeds', json-tight, plain, fewshot),
every vignette of the source is asked in both frames (is_wrong and is_acceptable) with no
system prompt, and the true/false probability mass at the answer token is measured.
Reported per frame: the mean pmass, the share of asks under 0.5, the mean P(true) (over
true/false) in each frame, and the two-frame wrongness ``w``: its mean and how often the
model calls a vignette wrong (w > 0.5; every MFV vignette is a violation, so a frame the
model reads should give most of them). Written as JSON and as a
markdown table beside it; ``make docs-numbers`` does not read it, the closing note of
issue 32 quotes it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

STYLES = ("json", "json-tight", "plain", "fewshot")


def measure(model, tok, source: str) -> dict[str, dict[str, float]]:
    from weightsteer.evals.suite_contract import SuiteContext, score_suite
    from weightsteer.evals.suites.tinymfv import TinyMfvConfig, tinymfv_suite

    out = {}
    for style in STYLES:
        cfg = TinyMfvConfig(source=source, frame=style, wrongness="two_frame",
                            conditions=("other_violate", "self_violate"))  # fmt: skip
        (suite,) = tinymfv_suite(cfg, SuiteContext(), None)
        s = score_suite(model, tok, suite, batch_size=16)
        pmass = s.pmass.numpy()
        p_true = 1 / (1 + np.exp(-s.logratio.numpy()))
        wrong = np.array([r.row_id.endswith(":wrong") for r in suite.rows])
        w = (p_true[wrong] + 1 - p_true[~wrong]) / 2
        out[style] = {
            "pmass": float(pmass.mean()),
            "low_share": float((pmass < 0.5).mean()),
            "called_wrong": float((w > 0.5).mean()),
            "mean_w": float(w.mean()),
            "p_true_is_wrong": float(p_true[wrong].mean()),
            "p_true_is_acceptable": float(p_true[~wrong].mean()),
            "asks": len(suite.rows),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--source", default="builtin:tinymfv-sample")
    ap.add_argument("--out", default="runs/mfv-frames/smollm2.json")
    args = ap.parse_args(argv)
    from weightsteer.core.errors import UserError
    from weightsteer.core.models import load_model, load_tokenizer

    try:
        model = load_model(args.model, dtype="float32")
        tok = load_tokenizer(args.model)
        result = measure(model, tok, args.source)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "source": args.source, "frames": result},
                              indent=2, sort_keys=True) + "\n")  # fmt: skip
    lines = [
        "| frame | mean pmass | asks under 0.5 | P(true) is_wrong | P(true) is_acceptable | "
        "mean w | vignettes called wrong |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| `{k}` | {v['pmass']:.3f} | {v['low_share']:.0%} | {v['p_true_is_wrong']:.2f} | "
              f"{v['p_true_is_acceptable']:.2f} | {v['mean_w']:.2f} | {v['called_wrong']:.0%} |"
              for k, v in result.items()]  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
