"""The monitor's table (csv, jsonl, parquet) and figure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from weightsteer.monitor.agreement import MonitorResult

TABLE_FORMATS = (".csv", ".jsonl", ".parquet")


def monitor_table(results: Sequence[MonitorResult]) -> pd.DataFrame:
    table = pd.DataFrame([r for res in results for r in res.rows()])
    table["layer"] = table["layer"].astype("Int64")
    return table


def write_table(table: pd.DataFrame, path: Path, *, overwrite: bool = False) -> None:
    from weightsteer.core.files import atomic_path

    with atomic_path(path, overwrite=overwrite) as tmp:
        if path.suffix == ".csv":
            table.to_csv(tmp, index=False)
        elif path.suffix == ".jsonl":
            table.to_json(tmp, orient="records", lines=True)
        else:
            table.to_parquet(tmp, index=False)


def plot_monitor(results: Sequence[MonitorResult], path: Path, title: str) -> None:
    """Per layer (one line per fine-tune) and per module kind (grouped bars): the contrast
    cosine when every result has a common mode, else the plain cosine."""
    from weightsteer.core.plots import pyplot, save_figure

    metric = "contrast" if results and all(r.common for r in results) else "cosine"
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    modules = list(dict.fromkeys(k for r in results for k in r.by("module")))
    width = 0.8 / max(len(results), 1)
    for i, res in enumerate(results):
        label = f"{Path(res.source).name} ({getattr(res.overall, metric):+.3f})"
        layers = {k: a for k, a in res.by("layer").items() if k is not None}
        left.plot(list(layers), [getattr(a, metric) for a in layers.values()], marker="o",
                  label=label)  # fmt: skip
        by_module = res.by("module")
        xs = [j + (i - (len(results) - 1) / 2) * width for j in range(len(modules))]
        right.bar(xs, [getattr(by_module[m], metric) for m in modules], width=width, label=label)
    ylabel = "contrast cos (common mode out)" if metric == "contrast" else "cos(tau, dW)"
    for ax in (left, right):
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_ylabel(ylabel)
    from matplotlib.ticker import MaxNLocator

    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_xlabel("layer")
    left.legend(fontsize=7)
    right.set_xticks(range(len(modules)), modules, rotation=30, fontsize=8)
    right.set_xlabel("module")
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


# -- while training -------------------------------------------------------------------------
