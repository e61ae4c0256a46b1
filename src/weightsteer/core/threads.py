"""How many CPU threads a run uses and how idle ones wait: read before torch is imported
(the CLI's first step), so nothing here imports it."""

from __future__ import annotations

from pathlib import Path


def thread_settings(
    threads: int | None, env: dict[str, str], load: float, cpus: int
) -> dict[str, str]:
    """The OpenMP settings a run starts with (``benchmarks/bench_threads.py`` measured why).

    ``threads`` (``--threads``) sets ``OMP_NUM_THREADS``. Idle OpenMP threads spin while
    they wait: alone that is fastest, but next to other busy processes a spinning step ran
    3-220x slower than alone on 2 cores, at random. So when the machine is already busy
    (1-minute load >= half its cores) and the user set no wait policy, idle threads sleep
    (``OMP_WAIT_POLICY=PASSIVE``: never worse than 2.5x in the same measurement). Whatever
    the user set stays. ``load``: other processes running now (``busy_elsewhere``), not a
    past average: alone, passive waiting cost a fresh ``make demo`` 2.4x in training, as
    the pip install just before it had left the 1-minute load at 1."""
    out: dict[str, str] = {}
    if threads is not None:
        out["OMP_NUM_THREADS"] = str(threads)
    if "OMP_WAIT_POLICY" not in env and load >= cpus / 2:
        out["OMP_WAIT_POLICY"] = "PASSIVE"
    return out


def busy_elsewhere(
    samples: int = 3, gap: float = 0.01, source: Path = Path("/proc/loadavg")
) -> float:
    """How many threads of other processes are running now: the median over ``samples``
    reads of the kernel's runnable count (``/proc/loadavg``), less this process's own.
    Where there is no ``/proc/loadavg``, the 1-minute load average (0 when none)."""
    import os
    import statistics
    import time

    counts = []
    for i in range(samples):
        try:
            field = source.read_text().split()[3]
        except (OSError, IndexError):
            return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        counts.append(int(field.split("/")[0]) - 1)
        if i + 1 < samples:
            time.sleep(gap)
    return max(0.0, float(statistics.median(counts)))
