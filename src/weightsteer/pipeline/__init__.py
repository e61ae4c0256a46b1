"""The pipeline: a TOML config -> a run folder, stage by stage, content-keyed and resumable.

``config.py`` assembles ``RunConfig`` from the sections' own configs, ``layout.py`` owns
the run folder's paths, ``run.py`` the manifest and its units, ``stages.py`` the stages.
"""

from weightsteer.pipeline.config import RunConfig, describe, load_config, parse_config
from weightsteer.pipeline.layout import RunLayout
from weightsteer.pipeline.run import Context, Run
from weightsteer.pipeline.stages import STAGES, preflight, report_files, run_stages

__all__ = [
    "STAGES",
    "Context",
    "Run",
    "RunConfig",
    "RunLayout",
    "describe",
    "load_config",
    "parse_config",
    "preflight",
    "report_files",
    "run_stages",
]
