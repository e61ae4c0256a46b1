"""Put generated numbers into the README and the docs: every number they quote comes from
a run or a benchmark file, never typed.

    python scripts/docs_numbers.py demo runs/demo        # runs/demo/headline.md
    python scripts/docs_numbers.py bench benchmarks/results   # make bench's tables
    python scripts/docs_numbers.py kl-holdout runs/demo      # scripts/kl_holdout.py's table
    python scripts/docs_numbers.py authority-toy runs/authority-toy   # the seeds' table
    python scripts/docs_numbers.py mfv-frames runs/mfv-frames  # scripts/mfv_frames.py's

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


def authority_block(run: Path) -> str:
    """An Authority run's seeds' table at its budget and the three questions, cut from its
    report (``### tinymfv (calibrated)``), with the run it came from."""
    text = (run / "report.md").read_text()
    part = text[text.index("### tinymfv (calibrated)") :]
    part = part[: part.index("\n## ")] if "\n## " in part else part
    start = part.index("Seeds' columns at")
    table = part[start : part.index("Every foundation at", start)].strip()
    questions = part[part.index("### The seeds' three questions") :].strip()
    frame = next(line for line in part.splitlines() if line.startswith("Frame:"))
    manifest = json.loads((run / "manifest.json").read_text())
    head = (f"From `runs/{run.name}` (config hash `{manifest['config_hash']}`, "
            f"`weightsteer run --config configs/{run.name}.toml`). {frame}")  # fmt: skip
    return "\n\n".join([head, table, questions.replace("### ", "#### ", 1)])


def engine_block(runs: Path) -> str:
    """The vLLM engine's bench table, and the data and eval stages' seconds of the SmolLM2
    demo config with each engine (``runs/smollm2-demo-hf``, ``runs/smollm2-demo-vllm``)."""
    parts = []
    bench = ROOT / "benchmarks" / "results" / "engine.md"
    if bench.is_file():
        parts += ["`make bench` (`benchmarks/results/engine.md`):", "", bench.read_text().strip()]
    hf, vllm = (json.loads((runs / n / "manifest.json").read_text())["stages"]
                for n in ("smollm2-demo-hf", "smollm2-demo-vllm"))  # fmt: skip
    rows = ["| stage | transformers s | vLLM s | vLLM over transformers |", "|---|---|---|---|"]
    for stage in ("data", "eval"):
        a, b = hf[stage]["seconds"], vllm[stage]["seconds"]
        rows.append(f"| {stage} | {a:.0f} | {b:.0f} | {a / b:.2f}x |")
    parts += ["", "The stages of `configs/smollm2-demo.toml` with each engine "
              "(`runs/smollm2-demo-hf`, `runs/smollm2-demo-vllm`; each vLLM stage counts its "
              "server's start, and eval generates the DoRA vector's answers with transformers):",
              "", *rows]  # fmt: skip
    return "\n".join(parts).strip()


SOURCES = {
    "engine": engine_block,
    "demo": lambda path: (path / "headline.md").read_text().strip(),
    "authority-toy": authority_block,
    "authority-smollm2": authority_block,
    "mfv-frames": lambda path: (path / "smollm2.md").read_text().strip(),
    "bench": bench_block,
    "kl-holdout": lambda path: (path / "kl-holdout.md").read_text().strip(),
}


def fill(name: str, block: str, files: list[Path]) -> int:
    # non-greedy up to the first closing tag: an empty block never reaches into the next
    start = rf"(<!-- numbers:{re.escape(name)} -->\n)"
    pattern = re.compile(start + r"(?:.*?\n)?(<!-- /numbers -->)", re.S)
    filled = 0
    for path in files:
        text = path.read_text()
        if pattern.search(text):
            path.write_text(pattern.sub(lambda m: m.group(1) + block + "\n" + m.group(2), text))
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
