"""The report: ``report.md`` and ``figures/*.png``, from the results table only.

Numbers (``evals/metrics.py`` computes them all): ``score`` is the choice logratio signed toward
the POS behaviour, per row. A cell "+1.23 [0.95, 1.50]" is the mean paired shift of the
score at that strength against strength 0 on the same rows, averaged over seeds, with its
bootstrap CI (rows and seeds resampled). SI is surgical informedness (k = 1 and 2): how
many wrong-side rows the intervention fixes minus how many right-side rows it breaks, in
both directions, discounted by the squared choice mass. ``pmass`` is the probability
mass on the two choices: below ``metrics.pmass_min`` the model has left the answer
format and its logratio says little.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from weightsteer.core.errors import UserError
from weightsteer.core.files import atomic_path, check_writable
from weightsteer.evals import generic_rows, own_reports
from weightsteer.evals.bootstrap import DEFAULTS, MetricsConfig
from weightsteer.evals.metrics import suite_metrics
from weightsteer.evals.results import read_results, results_suites
from weightsteer.report.analysis_section import analysis_lines
from weightsteer.report.comparison_section import (
    Compared,
    capability_lines,
    capability_measures,
    compare_lines,
    read_compared,
)
from weightsteer.report.figures import figure_norms, figure_pmass, figure_scores, figure_si
from weightsteer.report.leaderboard import leaderboard_lines
from weightsteer.report.markdown_tables import (
    ci_note,
    example_lines,
    shift_table,
    si_table,
)
from weightsteer.report.verdict import verdict_lines

REPORT = "report.md"
HEADLINE = "headline.md"  # the numbers the README quotes


def _vector_rows(paths: list[Path]) -> list[dict]:
    from weightsteer.core.vector import WeightVector

    rows = []
    for path in paths:
        vec = WeightVector.load(path)
        summary = vec.summary()
        ranks = sorted({r["rank"] for r in summary if r["rank"] is not None})
        rows.append(
            {
                "name": path.stem,
                "family": vec.meta.family,
                "seed": vec.meta.seed,
                "norm": vec.norm(),
                "tensors": len(summary),
                "rank": f"{ranks[0]}-{ranks[-1]}" if ranks else "dense",
                "mib": path.stat().st_size / 2**20,
                "summary": summary,
            }
        )
    return rows


def plain_metrics(df: pd.DataFrame, settings: MetricsConfig) -> pd.DataFrame | None:
    """``suite_metrics`` of every suite whose rows the generic tables read (None when
    there is none; ``evals.SuiteReport.generic``)."""
    plain = generic_rows(df)
    return suite_metrics(plain, settings) if not plain.empty else None


def suite_lines(
    df: pd.DataFrame,
    cfg: dict,
    figs: Path,
    counts: dict,
    m: pd.DataFrame | None = None,
    info: dict[str, dict] | None = None,
) -> list[str]:
    """The metric sections of a report: a figure, then per suite its tables (``m``: the
    ``plain_metrics`` of ``df`` when the caller has them already; ``info``: what each
    suite is, ``results_suites``), capability suites last."""
    settings = MetricsConfig.model_validate(cfg.get("metrics", {}))
    evals = list(dict.fromkeys(df["eval"]))
    plain = generic_rows(df)
    m = m if m is not None else plain_metrics(df, settings)
    lines = []
    if m is not None:
        caps = capability_measures(info or {})
        behaviour = m[~m["eval"].isin(caps)]
        figure_scores(m, figs / "score_vs_alpha.png")
        lines += ["![score vs strength](figures/score_vs_alpha.png)", ""]
        if figure_si(behaviour, figs / "si.png"):
            lines += ["![SI](figures/si.png)", ""]
        if figure_pmass(behaviour, figs / "pmass_vs_alpha.png"):
            lines += ["![choice mass vs strength](figures/pmass_vs_alpha.png)", ""]
        for suite in (s for s in dict.fromkeys(m["eval"]) if s not in caps):
            lines += [f"## {suite}", ""]
            if suite in counts:
                lines += ["Rows: " + ", ".join(f"{k} {v}" for k, v in counts[suite].items()), ""]
            lines += [*shift_table(m, suite, settings), *si_table(m, suite), ""]
            lines += example_lines(plain[plain["eval"] == suite])
        if caps:
            lines += ["## Capabilities", ""]
            lines += capability_lines(m, caps, info or {}, settings, figs, "sweep")
    for own in own_reports(evals, cfg):  # the tables a suite adds itself
        if own.report.sweep is not None:
            rows = df[df["eval"].isin(own.evals)]
            lines += own.report.sweep(rows, own.settings, settings)
    return lines


@dataclass(frozen=True)
class RunFiles:
    """What a run's report reads and writes (the pipeline's ``RunLayout`` fills it in)."""

    manifest: dict
    results: list[Path]  # results/*.parquet: the eval stage's tables
    compared: list[Path]  # compare/*.parquet: the calibrated comparison's tables
    vectors: list[Path]
    report: Path
    headline: Path
    figures: Path  # a folder next to ``report``
    analyses: list[Path] = field(default_factory=list)  # analysis/*.parquet (analyze)
    cosines: Path | None = None  # analysis/cosines.csv


def write_report(files: RunFiles) -> Path:
    """Write the report, its figures and the headline numbers of a run."""
    manifest = files.manifest
    paths = files.results
    vectors = _vector_rows(files.vectors)
    figs = files.figures
    figs.mkdir(exist_ok=True)
    for v in vectors:
        figure_norms(v, figs / f"norms-{v['name']}.png")

    cfg = manifest["config"]
    counts = manifest.get("counts", {})
    settings = MetricsConfig.model_validate(cfg.get("metrics", {}))
    df = read_results(paths) if paths else None
    m = plain_metrics(df, settings) if df is not None else None  # computed once, used twice
    compared = read_compared(files.compared, settings, cfg.get("compare", {}))
    lines = [
        f"# weightsteer run `{manifest['name']}`",
        "",
        f"Model `{cfg['model']['id']}`, behaviour `{cfg['behavior']['name']}`, questions "
        f"`{cfg['questions']['source']}`; config hash `{manifest['config_hash']}`.",
        "",
        "Score = choice logratio signed toward the POS behaviour, no system prompt. "
        "Δ = mean paired shift vs strength 0 with its CI "
        + ci_note(settings, len(cfg.get("train", {}).get("seeds", [0]))),
        "",
        *(verdict_lines(compared, settings) if compared is not None else []),
        *(leaderboard_lines(compared, settings, figs) if compared is not None else []),
        "## Vectors",
        "",
        "| vector | family | seed | ‖dW‖ | tensors | rank | MiB |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {v['name']} | {v['family']} | {v['seed']} | {v['norm']:.4g} | {v['tensors']} | "
            f"{v['rank']} | {v['mib']:.2f} |"
            for v in vectors
        ],
        "",
        *(
            suite_lines(df, cfg, figs, counts.get("eval", {}), m, results_suites(paths))
            if df is not None
            else []
        ),
        *compare_lines(files.compared, cfg, figs, counts.get("compare", {}), compared),
        *analysis_lines(files.analyses, files.cosines, settings, figs),
    ]
    lines += ["## Where the vectors live", ""]
    lines += [f"![{v['name']}](figures/norms-{v['name']}.png)" for v in vectors]
    stages = manifest.get("stages", {})
    lines += [
        "",
        "## Run",
        "",
        f"- data: {json.dumps(counts.get('data', {}))}",
        f"- train: {json.dumps(counts.get('train', {}))}",
        "- stage seconds (last run of each): "
        + ", ".join(f"{k} {v['seconds']}" for k, v in stages.items()),
        f"- versions: {json.dumps(manifest.get('versions', {}))}",
        f"- model fingerprint: {json.dumps(manifest.get('model', {}))}",
        "",
        "```json",
        json.dumps(cfg, indent=2),
        "```",
        "",
    ]
    with atomic_path(files.report, overwrite=True) as tmp:
        tmp.write_text("\n".join(lines))
    with atomic_path(files.headline, overwrite=True) as tmp:
        tmp.write_text("\n".join(headline_lines(manifest, m, compared, settings)) + "\n")
    return files.report


def headline_lines(
    manifest: dict,
    m: pd.DataFrame | None,
    compared: Compared | None,
    settings: MetricsConfig = DEFAULTS,
) -> list[str]:
    """The numbers the README quotes, generated (``headline.md``): the first suite's
    shift and SI tables, the verdict (OOD suites first), the first suite's leaderboard, and
    what model build they came from (``m``: the eval tables' ``plain_metrics``;
    ``compared``: ``read_compared``)."""
    cfg = manifest["config"]
    build = manifest.get("model_build") or {}
    made = f"model `{cfg['model']['id']}`"
    if build:  # what the model source records of its build (hashes shortened)
        made += " (" + ", ".join(f"{k.replace('_', ' ')} `{str(v)[:16] if 'sha' in k else v}`"
                                 for k, v in build.items()) + ")"  # fmt: skip
    stages = manifest.get("stages", {})
    lines = [
        f"Run `{manifest['name']}` of {made}, config hash `{manifest['config_hash']}`; stage "
        "seconds: " + ", ".join(f"{k} {v['seconds']:.0f}" for k, v in stages.items()) + ".",
        "",
    ]
    if m is not None:
        suite = next(iter(dict.fromkeys(m["eval"])))
        lines += [f"`{suite}`, every vector at fixed alpha:", "",
                  *shift_table(m, suite, settings)]  # fmt: skip
        lines += [*si_table(m, suite), ""]
    if compared is not None and compared.metrics is not None:
        # one level down in the README: the summary over suites, the first OOD suite in full
        lines += [("#" + line) if line.startswith("##") else line
                  for line in verdict_lines(compared, settings, detail=1)
                  + leaderboard_lines(compared, settings, None, first_only=True)]  # fmt: skip
    return lines


MARK = "<!-- written by weightsteer report -->"


def write_table_report(
    results: str | Path, cfg: dict | None = None, *, overwrite: bool = False
) -> Path:
    """A report of a results table outside a run (``weightsteer eval --out``): written
    next to it as ``<stem>.md`` with figures in ``<stem>-figures/``. An existing
    ``<stem>.md`` is replaced only when an earlier report wrote it, or with ``overwrite``."""
    results = Path(results)
    out = results.with_suffix(".md")
    if out.exists() and not overwrite and MARK not in out.read_text(errors="replace")[:200]:
        raise UserError(
            f"{out} exists and was not written by weightsteer report; move it or pass --overwrite"
        )
    df = read_results([results])
    info = results_suites([results])  # every read checked before anything is made
    # its own folder, reused; never a link nor a user's file of that name
    figs = check_writable(results.with_name(f"{results.stem}-figures"), overwrite=True,
                          is_dir=True)  # fmt: skip
    figs.mkdir(exist_ok=True)
    lines = [MARK, f"# weightsteer results `{results.name}`", "",
             *suite_lines(df, cfg or {}, figs, {}, info=info)]  # fmt: skip
    text = "\n".join(lines).replace("(figures/", f"({figs.name}/")
    with atomic_path(out, overwrite=True) as tmp:
        tmp.write_text(text)
    return out
