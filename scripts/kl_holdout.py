"""Does a KL budget hold on prompts it was not tuned on? The measurement behind
``compare.statistic``'s default.

    python scripts/kl_holdout.py runs/demo      # writes runs/demo/kl-holdout.{json,md}

(the measurements are kept in ``kl-holdout-raw.json`` with the digests of the run's vectors
and manifest: a second call on the same run only summarises)
    python scripts/kl_holdout.py runs/smollm2-demo --prompts 64 --source my-prompts.jsonl

For every weight vector of a run and both signs, the per-token KLs of every calibration
and audit prompt of the run (the compare stage's own prompts and settings: the unsteered
model's greedy continuation) are measured once on a grid of strengths. Then, for each
statistic and each of 40 random splits of the prompts into two halves: the strength where
the statistic of one half equals the run's verdict budget (log-log interpolation on the
grid, the statistic being monotone there), and the statistic of the other half at that
strength. Reported: the median |log ratio| and the share of cases off by more than the
run's ``compare.audit_factor``. ``make docs-numbers`` copies the table into
docs/methods.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

SPLITS, GRID = 40, np.geomspace(0.03, 8.0, 21)


def pooled(stat: str):
    def reduce(prompts: list[np.ndarray]) -> float:
        x = np.concatenate(prompts)
        if stat == "mean":
            return float(x.mean())
        if stat == "p95":
            return float(np.quantile(x, 0.95))
        k = max(1, round(0.05 * len(x)))  # cvar95: the mean of the worst 5% of tokens
        return float(np.sort(x)[-k:].mean())

    return reduce


STATISTICS = {"mean": pooled("mean"), "p95": pooled("p95"), "cvar95": pooled("cvar95")}


def measure(run_dir: Path, prompts: int | None = None, source: str | None = None) -> dict:
    """Per vector and sign, ``[strength][prompt] -> per-token KLs``; ``prompts``: that many
    instead of the run's calibration + audit prompts; ``source``: another prompt table
    (a ``prompt`` column) than the run's ``compare.prompts``."""
    from rich.console import Console

    from weightsteer.core.models import render_chat, with_system
    from weightsteer.core.vector import WeightVector
    from weightsteer.methods.kl_cost import BaseLogprobs, token_kls
    from weightsteer.methods.weight import WeightSteering
    from weightsteer.pipeline import Context, Run
    from weightsteer.pipeline.stages.compare import calibration_chats

    ctx = Context(Run.open(run_dir), Console(stderr=True), progress=False)
    c = ctx.cfg.compare
    if prompts is not None:
        c = c.model_copy(update={"n_calibration": prompts - prompts // 2, "n_audit": prompts // 2})
    if source is not None:
        c = c.model_copy(update={"prompts": source})
    _, (calibration, audit) = calibration_chats(ctx, c)
    chats = [*calibration, *audit]
    model, tok = ctx.target()
    cache = BaseLogprobs()
    enc = [
        tok.encode(render_chat(tok, with_system(ch, None)), add_special_tokens=False)
        for ch in chats
    ]
    bounds = np.cumsum([0, *(len(g) for g in cache.continuations(model, tok, enc, c.tokens))])
    out: dict = {"budget": c.target_kl, "factor": c.audit_factor or 1.5, "kls": {}}
    for path in sorted(ctx.run.layout.root.glob("vectors/*.safetensors")):
        iv = WeightSteering(vector=WeightVector.load(path), family=path.stem)
        with iv.attach(model) as set_strength:
            for sign in (1, -1):
                per = []
                for s in GRID:
                    flat = token_kls(
                        model, tok, chats, iv, set_strength, sign * float(s), tokens=c.tokens,
                        batch_size=c.batch_size, base_cache=cache,
                    )  # fmt: skip
                    per.append([flat[a:b].tolist() for a, b in itertools.pairwise(bounds)])
                out["kls"][f"{path.stem} {'+' if sign > 0 else '−'}"] = per
        print(f"measured {path.stem}", file=sys.stderr, flush=True)
    return out


def held_out_ratio(curve_a: np.ndarray, curve_b: np.ndarray, budget: float) -> float | None:
    """``curve_b`` at the strength where ``curve_a`` first reaches ``budget`` (log-log
    interpolation between grid points); None where it never does."""
    hit = np.nonzero((curve_a[:-1] < budget) & (curve_a[1:] >= budget))[0]
    if not len(hit) or curve_a[hit[0]] <= 0 or min(curve_b[hit[0]], curve_b[hit[0] + 1]) <= 0:
        return None
    i = hit[0]
    t = (math.log(budget) - math.log(curve_a[i])) / (
        math.log(curve_a[i + 1]) - math.log(curve_a[i])
    )
    return math.exp(math.log(curve_b[i]) + t * (math.log(curve_b[i + 1]) - math.log(curve_b[i])))


def summarise(data: dict) -> dict:
    """Per budget (the run's verdict budget, the default 0.25 nat and the seeds' 1 nat) and
    statistic: the median error and the share of cases off by more than the audit factor."""
    factor = data["factor"]
    budgets = sorted({data["budget"], 0.25, 1.0})
    n = len(next(iter(data["kls"].values()))[0])
    rng = np.random.default_rng(0)
    splits = [rng.permutation(n) for _ in range(SPLITS)]
    rows = []
    for name, reduce in STATISTICS.items():

        def along(per: list, half: np.ndarray, reduce=reduce) -> np.ndarray:
            return np.array([reduce([np.asarray(at[j]) for j in half]) for at in per])

        curves = [  # per side and split, the statistic of each half along the grid
            [(along(per, order[: n // 2]), along(per, order[n // 2 :])) for order in splits]
            for per in data["kls"].values()
        ]
        for budget in budgets:
            found = [held_out_ratio(a, b, budget) for side in curves for a, b in side]
            logs = np.array([abs(math.log(r / budget)) for r in found if r is not None])
            rows.append({
                "statistic": name, "budget": budget, "cases": len(logs),
                "median_error": float(np.expm1(np.median(logs))) if len(logs) else float("nan"),
                "share_off": float(np.mean(logs > math.log(factor))) if len(logs) else float("nan"),
            })  # fmt: skip
    return {"factor": factor, "sides": len(data["kls"]), "prompts": n, "splits": SPLITS,
            "rows": rows}  # fmt: skip


def markdown(s: dict) -> str:
    lines = [
        f"Tuned on one half of {s['prompts']} calibration + audit prompts, read on the other "
        f"({s['sides']} weight sides × {s['splits']} random splits; a budget in each "
        "statistic's own nats; cases: the splits where the half reaches the budget on the "
        "strength grid):",
        "",
        f"| statistic | budget (nat) | cases | median error on the other half | off by > "
        f"{s['factor']:g}x |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in s["rows"]:
        lines.append(
            f"| {r['statistic']} | {r['budget']:g} | {r['cases']} | {r['median_error']:.0%} | "
            f"{r['share_off']:.0%} |"
        )
    return "\n".join(lines)


def main(run_dir: Path, prompts: int | None, source: str | None) -> None:
    from weightsteer.core.files import digest

    # the measurements, kept with what they were made from: a second call with the same
    # vectors, manifest and options only summarises
    key = {"vectors": digest(run_dir / "vectors"), "manifest": digest(run_dir / "manifest.json"),
           "prompts": prompts, "source": source}  # fmt: skip
    raw = run_dir / "kl-holdout-raw.json"
    kept = json.loads(raw.read_text()) if raw.is_file() else {}
    if kept.get("key") == key:
        data = kept
    else:
        data = {**measure(run_dir, prompts, source), "key": key}
        raw.write_text(json.dumps(data))
    summary = summarise(data)
    (run_dir / "kl-holdout.json").write_text(json.dumps(summary, indent=1) + "\n")
    (run_dir / "kl-holdout.md").write_text(markdown(summary) + "\n")
    print(markdown(summary))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--prompts", type=int, help="prompts measured (default: the run's)")
    parser.add_argument("--source", help="a prompt table instead of the run's compare.prompts")
    args = parser.parse_args()
    torch.set_num_threads(2)
    main(args.run, args.prompts, args.source)
