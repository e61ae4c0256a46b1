"""The ``weightsteer`` command line. Thin: parse, call the library, print.

One file per verb group (``runs``, ``recipe``, ``vectors``, ``monitor``, ``toy``); importing them
registers their verbs on ``app``, and ``--help`` lists the verbs in pipeline order.
"""

from weightsteer.cli import monitor, recipe, runs, toy, vectors  # noqa: F401  (registers verbs)
from weightsteer.cli.app import app, main

ORDER = ("run", "data", "train", "extract", "info", "eval", "compare", "steer", "export",
         "monitor", "report", "analyze", "config-help", "toy")  # fmt: skip


def _name(info) -> str:
    return info.name or info.callback.__name__.replace("_", "-")


app.registered_commands.sort(key=lambda c: ORDER.index(_name(c)) if _name(c) in ORDER else 99)
app.registered_groups.sort(key=lambda g: ORDER.index(g.name) if g.name in ORDER else 99)

__all__ = ["app", "main"]
