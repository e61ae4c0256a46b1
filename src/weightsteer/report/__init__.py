"""The run report: run_report.py writes report.md from a run's tables, with the
comparison (compare.py), analysis (analysis.py) sections, tables and figures."""

from weightsteer.report.run_report import (
    HEADLINE,
    MARK,
    REPORT,
    RunFiles,
    headline_lines,
    plain_metrics,
    suite_lines,
    write_report,
    write_table_report,
)

__all__ = [
    "HEADLINE",
    "MARK",
    "REPORT",
    "RunFiles",
    "headline_lines",
    "plain_metrics",
    "suite_lines",
    "write_report",
    "write_table_report",
]
