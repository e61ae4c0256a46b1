"""The pipeline's stages: ``data -> train -> extract -> eval -> compare -> report`` (and
``analyze`` on demand), one file each.

Each stage walks its units (``RunLayout`` names them), skips those whose content key is
unchanged, keeps the user's own files, and writes the rest atomically (``run.py``).
``runner.py`` runs them in order after ``preflight``.
"""

from weightsteer.pipeline.stages.common import ALL_RANKS, STAGES
from weightsteer.pipeline.stages.report import report_files
from weightsteer.pipeline.stages.runner import STAGE_FUNCS, preflight, run_stages

__all__ = ["ALL_RANKS", "STAGES", "STAGE_FUNCS", "preflight", "report_files", "run_stages"]
