"""Where a benchmark's numbers go: ``benchmarks/results/<name>.json`` (every cell) and
``<name>.md`` (a markdown table, also printed); and ``timed``, how its ways take turns."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def save(name: str, cells: list[dict], header: list[str], row: Callable[[dict], list[str]]):
    """Write the cells and a table with columns ``header`` and one ``row(cell)`` each."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(cells, indent=2) + "\n")
    md = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    md += ["| " + " | ".join(row(c)) + " |" for c in cells]
    (RESULTS / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def timed(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, taking turns round after round (a machine's drift
    hits all of them alike); the first round is a warm-up."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(repeats + 1):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            if r:
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}
