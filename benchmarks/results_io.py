"""Where a benchmark's numbers go: ``benchmarks/results/<name>.json`` (every cell) and
``<name>.md`` (a markdown table, also printed)."""

from __future__ import annotations

import json
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
