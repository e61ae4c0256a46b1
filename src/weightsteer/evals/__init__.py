"""Eval suites: the suite contract and registry (suite_contract.py), one file per suite
(suites/), scoring an intervention (``score_intervention.py``), the results table
(results.py) and the metrics read from it (bootstrap.py, metrics.py,
retained.py)."""

from weightsteer.evals.suite_contract import (
    SUITES,
    Builder,
    EvalRow,
    EvalSettings,
    OwnReport,
    Suite,
    SuiteContext,
    SuiteReport,
    SuiteScores,
    SuiteSource,
    build_suites,
    eval_config_class,
    generic_rows,
    own_reports,
    read_suite_table,
    register,
    report_only,
    score_suite,
    suite_prompts,
)

__all__ = [
    "SUITES",
    "Builder",
    "EvalRow",
    "EvalSettings",
    "OwnReport",
    "Suite",
    "SuiteContext",
    "SuiteReport",
    "SuiteScores",
    "SuiteSource",
    "build_suites",
    "eval_config_class",
    "generic_rows",
    "own_reports",
    "read_suite_table",
    "register",
    "report_only",
    "score_suite",
    "suite_prompts",
]
