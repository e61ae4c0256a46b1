"""The report's figures (one panel per suite): score vs strength, SI, norms, comparison."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from weightsteer.core.param_names import DEFAULT_TARGETS
from weightsteer.core.plots import pyplot, save_figure
from weightsteer.evals.markdown import label, measure


def _suite_grid(n: int, row_height: float):
    """A figure with one panel per suite, four to a row."""
    cols = min(4, n)
    rows = math.ceil(n / cols)
    return pyplot().subplots(rows, cols, figsize=(3.6 * cols, row_height * rows), squeeze=False)


def _finish_grid(fig, axes, n: int, path: Path) -> None:
    """Blank the unused panels; one legend for the whole figure, below the panels (every
    panel shares its entries, and none of them is covered)."""
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles, labels, loc="lower center", fontsize=7, ncol=min(6, len(labels)), frameon=False
        )
        rows = math.ceil(len(labels) / 6)  # legend rows at 7 pt, ~0.25 in each with spacing
        fig.tight_layout(rect=(0, min(0.45, (0.1 + 0.25 * rows) / fig.get_figheight()), 1, 1))
    else:
        fig.tight_layout()
    save_figure(fig, path, layout=False)


def figure_scores(m: pd.DataFrame, path: Path) -> None:
    """Mean score vs strength per suite and method; the band is the paired CI of the shift
    from strength 0 (what decides whether the intervention moved anything)."""
    suites = list(dict.fromkeys(m["eval"]))
    fig, axes = _suite_grid(len(suites), 2.8)
    for ax, suite in zip(axes.flat, suites, strict=False):
        sub = m[m["eval"] == suite]
        for (method, family), rows in sub.groupby(["method", "family"], sort=False):
            rows = rows.sort_values("strength")
            ax.plot(rows["strength"], rows["mean"], marker="o", ms=3, label=label(method, family))
            zero = rows.loc[rows["strength"] == 0, "mean"].iloc[0]
            lo, hi = zero + rows["delta_lo"], zero + rows["delta_hi"]
            ax.fill_between(rows["strength"], lo.fillna(zero), hi.fillna(zero), alpha=0.15)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(suite, fontsize=9)
        ax.set_xlabel("strength", fontsize=8)
        ax.set_ylabel("mean score", fontsize=8)
        ax.tick_params(labelsize=7)
    _finish_grid(fig, axes, len(suites), path)


def figure_si(m: pd.DataFrame, path: Path) -> bool:
    """SI (k=1) at the largest ±s per suite and method, with CI whiskers."""
    if "si_k1" not in m or m["si_k1"].isna().all():
        return False
    top = m[m["si_k1"].notna()]
    top = top[top["strength"] == top.groupby("eval")["strength"].transform("max")]
    suites = list(dict.fromkeys(top["eval"]))
    fig, axes = _suite_grid(len(suites), 2.9)  # four to a row: readable at page width
    for ax, suite in zip(axes.flat, suites, strict=False):
        sub = top[top["eval"] == suite]
        names = [label(a, b) for a, b in zip(sub["method"], sub["family"], strict=True)]
        err = [sub["si_k1"] - sub["si_k1_lo"], sub["si_k1_hi"] - sub["si_k1"]]
        ax.bar(range(len(sub)), sub["si_k1"], yerr=err, capsize=2, color="tab:blue")
        ax.set_xticks(range(len(sub)), names, rotation=45, ha="right", fontsize=7)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"{suite}: SI k=1 at ±{sub['strength'].iloc[0]:g}", fontsize=9)
        ax.set_ylabel("SI k=1", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(suites) :]:
        ax.axis("off")
    save_figure(fig, path)
    return True


def figure_norms(vec_row: dict, path: Path) -> None:
    import numpy as np

    plt = pyplot()

    summary = vec_row["summary"]
    order = {k: i for i, k in enumerate(DEFAULT_TARGETS)}
    kinds = sorted({r["module"] for r in summary}, key=lambda k: (order.get(k, 99), k))
    layers = sorted({r["layer"] for r in summary if r["layer"] is not None})
    grid = np.full((len(layers), len(kinds)), np.nan)
    for r in summary:
        if r["layer"] is not None:
            grid[layers.index(r["layer"]), kinds.index(r["module"])] = r["norm"]
    fig, ax = plt.subplots(figsize=(1 + 0.8 * len(kinds), 1 + 0.3 * len(layers)))
    im = ax.imshow(grid, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(kinds)), kinds, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(layers)), [str(x) for x in layers], fontsize=7)
    ax.set_ylabel("layer", fontsize=8)
    ax.set_title(f"||dW|| {vec_row['name']}", fontsize=9)
    fig.colorbar(im, ax=ax).set_label("‖dW‖ (Frobenius) per layer and module", fontsize=7)
    save_figure(fig, path)


def figure_compare(m: pd.DataFrame, budget: float, path: Path) -> None:
    """Δ at +budget and −budget per method and suite, with CI whiskers; a side that missed
    its budget hollow, a prompt (its own fixed cost, not the budget) as a star with its
    KL in the method's name."""
    suites = list(dict.fromkeys(m["eval"]))
    names, ticks = [], []
    for (a, b), rows in m.groupby(["method", "family"], sort=False):
        names.append(label(a, b))
        fixed = rows[rows["status"] == "fixed"]
        kls = [f"{fixed.loc[fixed['strength'] == s, 'kl'].mean():.2g}" for s in (1.0, -1.0)]
        ticks.append(f"{label(a, b)} * ({' / '.join(kls)} nat)" if len(fixed) else label(a, b))
    fig, axes = _suite_grid(len(suites), 0.22 * len(names) + 1.0)
    for ax, suite in zip(axes.flat, suites, strict=False):
        sub = m[m["eval"] == suite]
        for sign, color, off in ((1, "tab:blue", -0.15), (-1, "tab:red", 0.15)):
            fixed = sub["status"].eq("fixed") & (sub["strength"] == sign * 1.0)
            rows = sub[(sub["strength"] == sign * budget) & ~sub["status"].eq("fixed")]
            for part, marker, hollow, name in (
                (rows[rows["at_budget"].astype(bool)], "o", False, f"{sign * budget:+g} nat"),
                (rows[~rows["at_budget"].astype(bool)], "o", True, "missed the budget"),
                (sub[fixed], "*", False, "a prompt at its own KL"),
            ):
                if part.empty:
                    continue
                pairs = zip(part["method"], part["family"], strict=True)
                y = [names.index(label(a, b)) + off for a, b in pairs]
                err = [part["delta"] - part["delta_lo"], part["delta_hi"] - part["delta"]]
                once = sign > 0 or (marker == "o" and not hollow)  # each legend entry once
                ax.errorbar(part["delta"], y, xerr=err, fmt=marker, ms=7 if marker == "*" else 3,
                            color=color, mfc="white" if hollow else color, capsize=2,
                            label=name if once else None)  # fmt: skip
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_yticks(range(len(names)), ticks, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(suite, fontsize=9)
        ax.set_xlabel("Δ score vs unsteered", fontsize=8)
        ax.tick_params(labelsize=7)
    _finish_grid(fig, axes, len(suites), path)


def figure_pareto(m: pd.DataFrame, path: Path, statistic: str) -> None:
    """Per suite: effect ((Δ at +b − Δ at −b) / 2) vs achieved KL (mean of both sides) of
    every calibrated method at every budget, joined per method; hollow where a side
    missed its budget, a star for a prompt (its own cost)."""
    cal = m[m["status"].fillna("").astype(bool) & m["strength"].gt(0)]
    if cal.empty:
        return
    suites = list(dict.fromkeys(cal["eval"]))
    fig, axes = _suite_grid(len(suites), 2.8)
    colors = _palette(
        list(dict.fromkeys(label(a, b) for a, b in zip(cal["method"], cal["family"], strict=True)))
    )
    for ax, suite in zip(axes.flat, suites, strict=False):
        sub = m[m["eval"] == suite].set_index(["method", "family", "strength"])
        for (method, family), rows in cal[cal["eval"] == suite].groupby(
            ["method", "family"], sort=False
        ):
            name = label(method, family)
            color = colors[name]
            pts = []
            for _, up in rows.sort_values("strength").iterrows():
                key = (method, family, -up["strength"])
                if key not in sub.index:
                    continue
                down = sub.loc[key]
                pts.append(
                    (
                        (up["kl"] + down["kl"]) / 2,
                        (up["delta"] - down["delta"]) / 2,
                        bool(up["at_budget"] and down["at_budget"]),
                        up["status"] == "fixed",
                    )
                )
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, lw=1, label=name)
            for x, y, hit, fixed in pts:
                ax.plot(
                    x,
                    y,
                    marker="*" if fixed else "o",
                    ms=8 if fixed else 4,
                    color=color,
                    mfc=color if hit or fixed else "white",
                )
        _log_axes(ax, y=False)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(suite, fontsize=9)
        ax.set_xlabel(f"achieved KL (nat, {statistic})", fontsize=8)
        ax.set_ylabel("effect (score)", fontsize=8)
        ax.tick_params(labelsize=7)
    _finish_grid(fig, axes, len(suites), path)


def _palette(names: list[str]) -> dict[str, str]:
    """One distinct colour per name (tab10, or tab20 beyond ten names)."""
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def _log_axes(ax, y: bool = True) -> None:
    """Log axes without the overlapping minor tick labels matplotlib puts on short
    ranges; an x range under three decades gets ticks at 1, 2 and 5 of each decade, so it
    never shows a single label. Call after plotting."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    if hi / lo < 1e3:
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    if y:
        ax.set_yscale("log")


def figure_kl_strength(cals: list[dict], path: Path, statistic: str) -> bool:
    """Every KL the strength searches measured: KL vs |strength| per method, seed and sign
    (log-log; filled: +, hollow: −), the budgets as dotted lines; one panel per kind of
    method, since strengths are not comparable between kinds."""
    rows = [
        (label(c["method"], c["family"]), c["method"].split(":")[0], c["seed"], c["sign"],
         abs(s), kl)
        for c in cals
        if c.get("status") != "fixed"
        for s, kl in c["evaluations"]
        if kl > 0
    ]  # fmt: skip
    if not rows:
        return False
    frame = pd.DataFrame(rows, columns=["name", "kind", "seed", "sign", "s", "kl"])
    frame = frame.drop_duplicates()
    kinds = list(dict.fromkeys(frame["kind"]))
    colors = _palette(list(dict.fromkeys(frame["name"])))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.6 * len(kinds), 3.6), squeeze=False)
    budgets = sorted({c.get("budget", c["target"]) for c in cals if c.get("status") != "fixed"})
    for ax, kind in zip(axes.flat, kinds, strict=True):
        sub = frame[frame["kind"] == kind]
        for (name, seed, sign), g in sub.groupby(["name", "seed", "sign"], sort=False):
            g = g.sort_values("s")
            filled = sign > 0
            ax.plot(g["s"], g["kl"], "-", lw=0.6, alpha=0.5, color=colors[name])
            ax.plot(g["s"], g["kl"], "o", ms=3, color=colors[name],
                    mfc=colors[name] if filled else "white",
                    label=name if filled and seed == sub["seed"].min() else None)  # fmt: skip
        for b in budgets:
            ax.axhline(b, color="grey", lw=0.5, ls=":")
        _log_axes(ax)
        ax.set_title(f"{kind}: KL vs strength (filled +, hollow −)", fontsize=9)
        ax.set_xlabel("|strength|", fontsize=8)
        ax.set_ylabel(f"KL (nat, {statistic})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, ncol=2)
    save_figure(fig, path)
    return True


def figure_pmass(m: pd.DataFrame, path: Path) -> bool:
    """Choice mass vs strength per suite and method: where a method pushes the model off
    the answer format (its logratios then say little)."""
    m = m[m["pmass"].notna()]
    if m.empty:
        return False
    suites = list(dict.fromkeys(m["eval"]))
    fig, axes = _suite_grid(len(suites), 2.6)
    for ax, suite in zip(axes.flat, suites, strict=False):
        sub = m[m["eval"] == suite]
        for (method, family), rows in sub.groupby(["method", "family"], sort=False):
            rows = rows.sort_values("strength")
            ax.plot(rows["strength"], rows["pmass"], marker="o", ms=3, label=label(method, family))
        ax.set_ylim(0, 1.02)
        ax.set_title(suite, fontsize=9)
        ax.set_xlabel("strength", fontsize=8)
        ax.set_ylabel("choice mass", fontsize=8)
        ax.tick_params(labelsize=7)
    _finish_grid(fig, axes, len(suites), path)
    return True


def figure_seeds(effects: pd.DataFrame, budget: float, path: Path) -> bool:
    """Per suite, each method's effect at the budget seed by seed (one dot per seed):
    the spread the verdict's seed sd summarises."""
    if effects.empty or effects.groupby(["method", "family"])["seed"].nunique().max() < 2:
        return False
    suites = list(dict.fromkeys(effects["eval"]))
    names = list(
        dict.fromkeys(
            label(a, b) for a, b in zip(effects["method"], effects["family"], strict=True)
        )
    )
    fixed = set(map(tuple, effects.loc[effects["fixed"], ["method", "family"]].to_numpy()))
    ticks = [f"{n} *" if any(label(*k) == n for k in fixed) else n for n in names]
    fig, axes = _suite_grid(len(suites), 0.22 * len(names) + 1.0)
    for ax, suite in zip(axes.flat, suites, strict=False):
        sub = effects[effects["eval"] == suite]
        for part, kw, name in (
            (sub[sub["hit"] & ~sub["fixed"]], {"marker": "o"}, f"one seed at {budget:g} nat"),
            (sub[~sub["hit"]], {"marker": "o", "facecolors": "white"}, "a side missed the budget"),
            (sub[sub["fixed"]], {"marker": "*", "s": 40}, "a prompt at its own KL"),
        ):
            y = [names.index(label(a, b))
                 for a, b in zip(part["method"], part["family"], strict=True)]  # fmt: skip
            ax.scatter(part["effect"], y, color="tab:blue", label=name, **{"s": 12, **kw})
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_yticks(range(len(names)), ticks, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(suite, fontsize=9)
        ax.set_xlabel(f"effect per seed (score), at {budget:g} nat", fontsize=8)
        ax.tick_params(labelsize=7)
    _finish_grid(fig, axes, len(suites), path)
    return True


def figure_capability(
    m: pd.DataFrame, behaviour: str, capabilities: dict[str, str], path: Path
) -> bool:
    """Behaviour shift against capability change, one panel per capability suite
    (``capabilities``: suite -> measure): each method's points at every strength, joined
    in strength order, x = the capability's paired change, y = Δ score on ``behaviour``;
    the origin is the unsteered model. Circles: positive strengths, squares: negative;
    hollow: a side that missed its KL budget."""
    beh = m[m["eval"] == behaviour].set_index(["method", "family", "strength"])
    suites = [s for s in capabilities if s in set(m["eval"])]
    if beh.empty or not suites:
        return False
    fig, axes = _suite_grid(len(suites), 3.0)
    names = list(dict.fromkeys(label(a, b) for a, b, _ in beh.index))
    colors = _palette(names)
    for ax, suite in zip(axes.flat, suites, strict=False):
        cap = m[m["eval"] == suite]
        for (method, family), rows in cap.groupby(["method", "family"], sort=False):
            pts = []
            for _, r in rows.sort_values("strength").iterrows():
                key = (method, family, r["strength"])
                if key in beh.index:
                    fixed = not r["status"] or r["status"] == "fixed"  # no budget to miss
                    hit = bool(r["at_budget"]) or fixed or r["strength"] == 0
                    pts.append((r["value_delta"], beh.loc[key]["delta"], hit, r["strength"]))
            if not pts:
                continue
            name = label(method, family)
            color = colors.get(name, "black")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, lw=1, label=name)
            for x, y, hit, s in pts:
                marker = "o" if s > 0 else "s" if s < 0 else "x"
                ax.plot(x, y, marker, ms=4, color=color, mfc=color if hit else "white")
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        what = measure(capabilities[suite])
        better = "higher" if what.higher_is_better else "lower"
        ax.set_title(f"{behaviour} vs {suite}", fontsize=9)
        ax.set_xlabel(f"Δ {what.unit} ({better} is better)", fontsize=8)
        ax.set_ylabel(f"Δ score on {behaviour}", fontsize=8)
        ax.tick_params(labelsize=7)
    _finish_grid(fig, axes, len(suites), path)
    return True
