"""The report stage: report.md and its figures from the run's tables."""

from __future__ import annotations

from weightsteer.pipeline.layout import RunLayout
from weightsteer.pipeline.run import Context, Run
from weightsteer.report import RunFiles


def report_files(run: Run) -> RunFiles:
    lay = run.layout
    return RunFiles(
        run.manifest,
        lay.results(),
        lay.compared(),
        lay.vectors(),
        lay.report,
        lay.headline,
        lay.figures,
        lay.analyses(),
        lay.root / RunLayout.rel_cosines(),
    )


def stage_report(ctx: Context) -> None:
    from weightsteer.report import write_report

    path = write_report(report_files(ctx.run))
    ctx.console.print(f"  report: {path}", highlight=False)
