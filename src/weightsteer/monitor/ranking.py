"""Does the cosine separate the fine-tunes you worry about from the rest? AUROC with a
bootstrap CI, from labelled fine-tunes (``monitor --labels``).

The score of a fine-tune is its cosine with dW signed by ``toward``: ``pos`` when the
worrying fine-tunes should move toward the vector's POS side (an "evil" vector whose POS
is evil), ``neg`` when toward NEG (a dishonest fine-tune against an honesty vector).
AUROC = P(score of a labelled fine-tune > score of a control) + P(tie) / 2: 1 separates
them perfectly, 0.5 is chance. The CI resamples fine-tunes within each class.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from weightsteer.core.errors import UserError

TRUE = {"1", "true", "yes", "y", "t"}
FALSE = {"0", "false", "no", "n", "f"}


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """P(score of a label-1 item > score of a label-0 item), ties counted half."""
    s, y = np.asarray(scores, float), np.asarray(labels, int)
    pos, neg = s[y == 1], s[y == 0]
    if not len(pos) or not len(neg):
        raise UserError("AUROC needs fine-tunes of both labels (1 and 0)")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def auroc_interval(
    scores: Sequence[float], labels: Sequence[int], draws: int = 2000, ci: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:  # fmt: skip
    """Percentile bootstrap CI of ``auroc``, fine-tunes resampled within each class."""
    s, y = np.asarray(scores, float), np.asarray(labels, int)
    pos, neg = s[y == 1], s[y == 0]
    rng = np.random.default_rng(seed)
    p = pos[rng.integers(0, len(pos), (draws, len(pos)))]
    n = neg[rng.integers(0, len(neg), (draws, len(neg)))]
    diff = p[:, :, None] - n[:, None, :]
    values = ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(1, 2))
    lo = (1 - ci) / 2
    return float(np.quantile(values, lo)), float(np.quantile(values, 1 - lo))


def read_labels(path: Path) -> dict[str, int]:
    """fine-tune -> 1 (the kind to catch) or 0 (a control), from a table with columns
    ``finetune`` and ``label`` (1/0, true/false)."""
    from weightsteer.core.table_files import read_table, require_columns

    table = read_table(str(path), what="--labels")
    require_columns(table, ["finetune", "label"], "--labels", str(path))
    out: dict[str, int] = {}
    for i, row in enumerate(table.to_dict("records")):
        text = str(row["label"]).strip().lower()
        if text.endswith(".0"):
            text = text[:-2]
        if text not in TRUE | FALSE:
            raise UserError(
                f"--labels {path} row {i}: label {row['label']!r} is not 1/0 or true/false"
            )
        out[str(row["finetune"])] = int(text in TRUE)
    if not out:
        raise UserError(f"--labels {path} has no rows")
    return out


def ranking_table(results, labels: dict[str, int], toward: str) -> pd.DataFrame:
    """One row per labelled fine-tune: its label, cosine, contrast and signed scores."""
    sign = 1.0 if toward == "pos" else -1.0
    rows = []
    for r in results:
        a = r.overall
        contrast = a.contrast if r.common else float("nan")
        rows.append(
            {
                "finetune": r.source,
                "label": labels[r.source],
                "cosine": a.cosine,
                "contrast": contrast,
                "score": sign * a.cosine,
                "contrast_score": sign * contrast,
            }
        )
    return pd.DataFrame(rows)


def auroc_rows(table: pd.DataFrame) -> list[dict]:
    """AUROC with its CI for the cosine and (when measured) the contrast cosine."""
    out = []
    for column, name in (("score", "cos"), ("contrast_score", "contrast")):
        if table[column].isna().any():
            continue
        value = auroc(table[column], table["label"])
        lo, hi = auroc_interval(table[column], table["label"])
        out.append({"statistic": name, "auroc": value, "lo": lo, "hi": hi})
    return out


def plot_ranking(table: pd.DataFrame, aurocs: list[dict], path: Path, toward: str) -> None:
    """Each fine-tune's cosine (and contrast), labelled ones in red, controls in grey, with
    the AUROC in each panel's title."""
    from weightsteer.core.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(aurocs), figsize=(4.2 * len(aurocs), 3.2), squeeze=False)
    columns = {"cos": "cosine", "contrast": "contrast"}
    for ax, a in zip(axes.flat, aurocs, strict=True):
        col = columns[a["statistic"]]
        for label, color, name in ((0, "grey", "control"), (1, "tab:red", "labelled")):
            sub = table[table["label"] == label]
            jitter = np.linspace(-0.15, 0.15, len(sub)) if len(sub) > 1 else np.zeros(len(sub))
            ax.plot(label + jitter, sub[col], "o", color=color, ms=5, label=name)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xticks([0, 1], ["control", "labelled"])
        ax.set_ylabel(f"{col} with dW", fontsize=8)
        ax.set_title(
            f"{a['statistic']}: AUROC {a['auroc']:.2f} [{a['lo']:.2f}, {a['hi']:.2f}] "
            f"(toward {toward.upper()})",
            fontsize=9,
        )
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    save_figure(fig, path)
