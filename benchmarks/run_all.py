"""``make bench``: every benchmark of issue 23 in turn, each timed, then the summary table.

    python benchmarks/run_all.py    # benchmarks/results/*.{json,md}, timing.json, summary.md

Each script runs in its own process (one torch job at a time: two on 2 cores slow each
other by up to 16x). ``bench_threads.py``, the wait-policy measurement behind the CLI's
default, is not part of it (``make bench-threads``): it is a fixed fact of the machine,
not a target, and takes 4 minutes of the 15 ``make bench`` may use.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from results_io import RESULTS

BENCHES = (
    "bench_core",
    "bench_toyworld",
    "bench_scoring",
    "bench_inference",
    "bench_generation",
    "bench_engine",
    "bench_training",
    "bench_calibration",
    "bench_methods",
    "bench_memory",
)


def main() -> None:
    here = Path(__file__).parent
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    for name in BENCHES:
        print(f"== {name}", flush=True)
        t = time.perf_counter()
        done = subprocess.run([sys.executable, str(here / f"{name}.py")], check=False)
        seconds[name] = round(time.perf_counter() - t, 1)
        if done.returncode:
            sys.exit(f"{name} failed (exit {done.returncode}); the results before it are kept")
    seconds["total"] = round(time.perf_counter() - start, 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "timing.json").write_text(json.dumps(seconds, indent=2) + "\n")
    subprocess.run([sys.executable, str(here / "summary.py")], check=True)
    minutes = ", ".join(f"{k.removeprefix('bench_')} {v:.0f} s" for k, v in seconds.items())
    print(f"\nmake bench: {minutes} (target: within 15 minutes)")


if __name__ == "__main__":
    main()
