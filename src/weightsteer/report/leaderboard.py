"""The leaderboard: every compared method ranked per suite at the verdict's budget, in the
form of the seeds' table (method, effect mean ± sd over seeds, SI, an off-target column),
with the random direction (``act:random``) as the floor each effect is read against.

Effect: ``(Δ at +b − Δ at −b) / 2`` per row and seed, averaged (``paired_effects``; a
prompt at its own fixed cost, marked ``*``). ``− act:random``: the paired difference to
the random direction of the same cost on the same rows, with its CI: a method whose CI is
not above 0 moves the behaviour no more than a direction chosen at random. Off-target:
the paired change of each capability suite at the + side (what steering costs). Sides
that missed the budget are not ranked (not at equal cost) and are named below the table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from weightsteer.core.plots import pyplot, save_figure
from weightsteer.evals.bootstrap import MetricsConfig
from weightsteer.evals.markdown import ci_cell, label, measure
from weightsteer.evals.metrics import paired_effects
from weightsteer.report.comparison_section import Compared, capability_measures, verdict_order
from weightsteer.report.markdown_tables import budget_sides, kl_cell

NULL = "act:random"


def ranked(compared: Compared, suite: str, settings: MetricsConfig) -> pd.DataFrame:
    """One row per method at the budget on both sides (or a prompt at its own cost):
    its effect with CI and seed sd, the difference to the random direction, SI, KL and
    the capability suites' change, best effect first. ``missed``: in ``attrs``."""
    m, budget = compared.metrics, compared.budget
    assert m is not None
    sub = m[m["eval"] == suite]
    units, info, missed = [], {}, []
    for (method, family), rows in sub.groupby(["method", "family"], sort=False):
        sides = budget_sides(rows, budget)
        if sides is None:
            continue
        if not sides.ok:
            missed.append(label(method, family))
            continue
        units.append((method, family, sides.s))
        info[method, family] = {"up": sides.up, "down": sides.down, "fixed": sides.fixed}
    if not units:
        out = pd.DataFrame()
        out.attrs["missed"] = missed
        return out
    eff, pairs = paired_effects(compared.frame, suite, units, settings)
    null = next((u for u in units if u[0] == NULL and u[2] == budget), None)
    records = []
    for unit, e in zip(units, eff.to_dict("records"), strict=True):
        up = info[unit[:2]]["up"]
        rec = {**e, "label": label(*unit[:2]), "fixed": info[unit[:2]]["fixed"],
               "si_k1": up["si_k1"], "kl": kl_cell(up, info[unit[:2]]["down"])}  # fmt: skip
        if null is not None and unit != null:
            p = pairs[(pairs["a"] == unit) & (pairs["b"] == null)].iloc[0]
            rec |= {"vs_null": p["diff"], "vs_null_lo": p["diff_lo"], "vs_null_hi": p["diff_hi"]}
        for cap in capability_measures(compared.suites):
            c = m[(m["eval"] == cap) & (m["method"] == unit[0]) & (m["family"] == unit[1])
                  & (m["strength"] == unit[2])]  # fmt: skip
            if not c.empty:
                r = c.iloc[0]
                rec[f"cap:{cap}"] = (r["value_delta"], r["value_delta_lo"], r["value_delta_hi"])
        records.append(rec)
    out = pd.DataFrame.from_records(records).sort_values("effect", ascending=False)
    out.attrs["missed"] = missed
    return out.reset_index(drop=True)


def leaderboard_table(board: pd.DataFrame, compared: Compared, suite: str) -> list[str]:
    """The markdown of one suite's ``ranked`` board."""
    budget = compared.budget
    caps = [c for c in capability_measures(compared.suites) if f"cap:{c}" in board]
    has_null = "vs_null" in board
    head = ["#", "method", "effect ± sd over seeds", "effect [CI]"]
    head += [f"− {NULL} [CI]"] if has_null else []
    head += ["SI k=1 (+)", *[f"Δ {measure(compared.suites[c]['measure']).name} "
             f"({c}, +)" for c in caps], "KL + / −"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for i, r in enumerate(board.to_dict("records"), 1):
        sd = "" if r["seeds"] < 2 else f" ± {r['seed_sd']:.2f}"
        name = f"{r['label']}{' *' if r['fixed'] else ''}{' (null)' if r['method'] == NULL else ''}"
        cells = [str(i), name, f"{r['effect']:+.2f}{sd}",
                 ci_cell(r["effect"], r["effect_lo"], r["effect_hi"])]  # fmt: skip
        if has_null:
            v = r.get("vs_null", float("nan"))
            cells.append(ci_cell(v, r.get("vs_null_lo", v), r.get("vs_null_hi", v))
                         if v == v else "–")  # fmt: skip
        cells.append(f"{r['si_k1']:+.1f}" if r["si_k1"] == r["si_k1"] else "–")
        for c in caps:
            cell = r.get(f"cap:{c}")
            fmt = measure(compared.suites[c]["measure"]).delta_fmt
            cells.append(
                ci_cell(cell[0], cell[1], cell[2], fmt) if isinstance(cell, tuple) else "–"
            )
        cells.append(r["kl"])
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"At {budget:g} nat; * a prompt at its own fixed cost."]
    if has_null:
        above = int((board["vs_null_lo"] > 0).sum())
        others = int(board["vs_null"].notna().sum())
        notes.append(f"{above} of {others} methods move `{suite}` more than a random direction "
                     "of the same cost (− act:random CI above 0).")  # fmt: skip
    if board.attrs.get("missed"):
        notes.append("Not ranked, a side missed the budget: " + ", ".join(board.attrs["missed"]))
    return [*lines, "", " ".join(notes)]


def figure_leaderboard(boards: dict[str, pd.DataFrame], path: Path) -> bool:
    """Methods x suites: each method's effect, methods by their mean rank (best on top)."""
    plt = pyplot()
    boards = {s: b for s, b in boards.items() if not b.empty}
    if not boards:
        return False
    ranks = pd.concat([b.assign(rank=range(1, len(b) + 1), suite=s) for s, b in boards.items()])
    order = ranks.groupby("label")["rank"].mean().sort_values().index.tolist()
    grid = ranks.pivot_table(index="label", columns="suite", values="effect").reindex(order)
    grid = grid[list(boards)]
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * grid.shape[1], 1.0 + 0.28 * grid.shape[0]))
    lim = float(abs(grid).max().max()) or 1.0
    im = ax.imshow(grid.values, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for (i, j), v in pd.DataFrame(grid.values).stack().items():
        ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=6)
    ax.set_yticks(range(len(order)), order, fontsize=7)
    ax.set_xticks(range(grid.shape[1]), grid.columns, fontsize=7, rotation=45, ha="right")
    fig.colorbar(im, ax=ax, label="effect (Δ+ − Δ−) / 2", shrink=0.6)
    ax.set_title("effect at the budget, methods by mean rank", fontsize=9)
    save_figure(fig, path)
    return True


def leaderboard_lines(
    compared: Compared, settings: MetricsConfig, figs: Path | None, first_only: bool = False
) -> list[str]:
    """The leaderboard section: the figure (``figs``: where it goes; None: none), the first
    verdict suite's table (OOD first), the others folded (``first_only``: left out)."""
    if compared.metrics is None:
        return []
    evals = list(dict.fromkeys(compared.metrics["eval"]))
    suites = verdict_order(evals, compared.suites, settings.headline)
    suites = suites[:1] if first_only else suites
    boards = {s: ranked(compared, s, settings) for s in suites}
    if all(b.empty for b in boards.values()):
        return []
    lines = [f"## Leaderboard at {compared.budget:g} nat ({compared.statistic})", ""]
    if figs is not None and figure_leaderboard(boards, figs / "leaderboard.png"):
        lines += ["![leaderboard](figures/leaderboard.png)", ""]
    for i, (suite, board) in enumerate(boards.items()):
        if board.empty:
            continue
        table = leaderboard_table(board, compared, suite)
        if i == 0:
            lines += [f"### {suite}", "", *table, ""]
        else:
            lines += [f"<details><summary>{suite}</summary>", "", *table, "", "</details>", ""]
    return lines
