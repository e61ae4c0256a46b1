"""Every ratio ``make bench`` measured, with its target, in one table: the last step of
``make bench``, reading ``benchmarks/results/*.json``.

    python benchmarks/summary.py    # writes benchmarks/results/summary.{json,md}

A benchmark whose results are missing is listed as not run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from results_io import RESULTS, save


def _load(name: str):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _row(bench: str, what: str, value: str, target: str, met: bool | None) -> dict:
    return {
        "benchmark": bench,
        "measure": what,
        "value": value,
        "target": target,
        "met": {True: "yes", False: "NO", None: "–"}[met],
    }


def core(r: dict) -> list[dict]:
    q = r["ratios"]
    return [
        _row(
            "core",
            "extraction speed vs the naive route",
            f"{q['extraction_speedup']:.0f}x",
            ">= 10x",
            q["extraction_speedup"] >= 10,
        ),
        _row(
            "core",
            "extraction peak memory / one model",
            f"{q['peak_memory_over_one_model_ours']:.2f}",
            "<= 1.2",
            q["peak_memory_over_one_model_ours"] <= 1.2,
        ),
        _row(
            "core",
            "vector file / dense fp32 diff of the model",
            f"{100 * q['file_over_dense_full_model']:.1f}%",
            "<= 5%",
            q["file_over_dense_full_model"] <= 0.05,
        ),
        _row(
            "core",
            "alpha switch / one forward 8x64",
            f"{q['switch_over_forward']:.2f}",
            "< 1",
            q["switch_over_forward"] < 1,
        ),
    ]


def toyworld(r: dict) -> list[dict]:
    b = r["build"]
    return [
        _row(
            "toyworld",
            "build seconds (2 cores)",
            f"{b['build_seconds']:.0f} s",
            "<= 300 s",
            b["build_seconds"] <= 300,
        ),
        _row(
            "toyworld",
            "build reached its behaviour targets",
            str(b["reached_targets"]),
            "True",
            bool(b["reached_targets"]),
        ),
    ]


def ratios(name: str, cells: list[dict], label, target: float | None, key="ratio") -> list:
    out = []
    for c in cells:
        v = c[key]
        met = None if target is None else v >= target
        goal = "–" if target is None else f">= {target:g}x"
        out.append(_row(name, label(c), f"{v:.2f}x", goal, met))
    return out


def main() -> None:
    rows: list[dict] = []
    makers = {
        "core": core,
        "toyworld": toyworld,
        "scoring": lambda cs: ratios(
            "scoring", cs, lambda c: f"{c['model']} batch {c['batch']} vs raw forward", 0.9
        ),
        "inference": lambda cs: [
            r
            for c in cs
            if c["way"] != "unsteered"
            for r in ratios(
                "inference",
                [c],
                lambda c: f"{c['model']} {c['way']} vs unsteered",
                0.99 if c["way"] == "steered in place" else None,
            )
        ],
        "generation": lambda cs: ratios(
            "generation",
            cs,
            lambda c: f"{c.get('model', 'toyworld')} batch {c['batch']} vs bare generate",
            0.9,
        ),
        "engine": lambda cs: ratios(
            "engine",
            cs,
            lambda c: f"SmolLM2 {c['workload']}: vLLM ({c['vllm']}) vs transformers",
            2,
        ),
        "training": lambda cs: ratios(
            "training",
            cs,
            lambda c: f"{c.get('model', 'toyworld')} {c['family']} vs bare Trainer",
            0.9,
        ),
        "calibration": lambda cs: ratios(
            "calibration",
            [c for c in cs if c["way"] != "plain"],
            lambda c: f"{c['model']} {c['intervention']}: {c['way']} vs plain",
            None,
            key="speedup",
        ),
        "methods": lambda cs: [
            r
            for c in cs
            if c["method"] != "act:mean_diff"
            for r in (
                _row(
                    "methods",
                    f"{c['method']} fit vs act:mean_diff",
                    f"{c['fit_ratio']:.2f}x",
                    "–",
                    None,
                ),
                _row(
                    "methods",
                    f"{c['method']} one strength vs act:mean_diff",
                    f"{c['strength_ratio']:.2f}x",
                    "–",
                    None,
                ),
            )
        ],
        "memory": lambda cs: ratios(
            "memory", cs, lambda c: f"SmolLM2 {c['stage']} peak RSS / one model", None
        ),
    }
    for name, make in makers.items():
        got = _load(name)
        rows += make(got) if got else [_row(name, "(not run)", "–", "–", None)]
    timing = _load("timing")
    if timing:
        minutes = timing["total"] / 60
        rows.append(
            _row("make bench", "wall time", f"{minutes:.1f} min", "<= 15 min", minutes <= 15)
        )
    save(
        "summary",
        rows,
        ["benchmark", "measure", "value", "target", "met"],
        lambda r: [r["benchmark"], r["measure"], r["value"], r["target"], r["met"]],
    )


if __name__ == "__main__":
    main()
