"""Put generated numbers into the README and the docs: every number they quote comes from
a run or a benchmark file, never typed.

    python scripts/docs_numbers.py demo runs/demo        # runs/demo/headline.md
    python scripts/docs_numbers.py bench benchmarks/results   # make bench's tables
    python scripts/docs_numbers.py kl-holdout runs/demo      # scripts/kl_holdout.py's table

Replaces, in README.md and docs/*.md, every block between ``<!-- numbers:<name> -->`` and
``<!-- /numbers -->`` with what the source holds: a run's ``headline.md``, or the
benchmark summary with the calibration and memory tables (``make bench`` writes them;
the block says which run of the benchmarks they came from).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_block(results: Path) -> str:
    """The summary (every ratio with its target), then calibration's and memory's tables,
    and the seconds each script took."""
    parts = ["Every ratio of the last `make bench`, next to its target:", ""]
    parts.append((results / "summary.md").read_text().strip())
    for name, title in (("calibration", "Calibration, per way"), ("memory", "Memory, per stage")):
        path = results / f"{name}.md"
        if path.is_file():
            parts += [
                "",
                f"{title} (`benchmarks/results/{name}.md`):",
                "",
                path.read_text().strip(),
            ]
    timing = results / "timing.json"
    if timing.is_file():
        secs = json.loads(timing.read_text())
        cells = ", ".join(f"{k} {round(v)}" for k, v in secs.items())
        parts += ["", f"Seconds per script: {cells}."]
    return "\n".join(parts)


SOURCES = {
    "demo": lambda path: (path / "headline.md").read_text().strip(),
    "bench": bench_block,
    "kl-holdout": lambda path: (path / "kl-holdout.md").read_text().strip(),
}


def fill(name: str, block: str, files: list[Path]) -> int:
    pattern = re.compile(rf"(<!-- numbers:{re.escape(name)} -->\n).*?(\n<!-- /numbers -->)", re.S)
    filled = 0
    for path in files:
        text = path.read_text()
        if pattern.search(text):
            path.write_text(pattern.sub(lambda m: m.group(1) + block + m.group(2), text))
            filled += 1
    return filled


def main(name: str, source: str) -> None:
    if name not in SOURCES:
        sys.exit(f"unknown block {name!r}; choose one of {', '.join(SOURCES)}")
    block = SOURCES[name](Path(source))
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    if not fill(name, block, files):
        sys.exit(f"no <!-- numbers:{name} --> ... <!-- /numbers --> block in the README or docs")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
