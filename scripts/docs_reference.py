"""The generated reference pages of the docs: every config key (from the configs
themselves, as ``weightsteer config-help`` lists them) and every verb's flags (from the
CLI's own help). ``make docs`` runs it before ``mkdocs build``; the pages are not in git.

    python scripts/docs_reference.py docs/reference
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer.main

from weightsteer.cli import app
from weightsteer.pipeline.config import describe


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def configuration() -> str:
    lines = [
        "# Configuration",
        "",
        "Every key of a run config (TOML), its default and what it means, generated from the",
        "configs themselves (`weightsteer config-help` prints the same). A registered entry's",
        "own settings are the sub-section under its name: `[train.<family>]`,",
        '`[compare."<method>"]`, `[eval.<suite>]`, `[analysis.<name>]`.',
    ]
    section = None
    for key, default, description in describe():
        top = key.split(".", 1)[0]
        if top != section:
            section = top
            lines += ["", f"## `{top}`", "", "| key | default | meaning |", "|---|---|---|"]
        lines.append(f"| `{key}` | `{cell(default)}` | {cell(description)} |")
    return "\n".join(lines) + "\n"


def cli() -> str:
    group = typer.main.get_command(app)
    lines = [
        "# CLI reference",
        "",
        "Every verb and its flags, generated from the CLI's own help (`weightsteer VERB --help`).",
    ]

    def verb(path: str, command) -> None:
        lines.extend(["", f"## `{path}`", ""])
        lines.extend([(command.help or "").strip().split("\n\n")[0], ""])
        params = [p for p in command.params if not getattr(p, "hidden", False)]
        if params:
            lines.extend(["| flag | default | meaning |", "|---|---|---|"])
            for p in params:
                flags = ", ".join(getattr(p, "opts", None) or [p.name])
                default = "" if p.default is None or callable(p.default) else f"`{p.default}`"
                helptext = getattr(p, "help", "") or ""
                lines.append(f"| `{flags}` | {default} | {cell(helptext)} |")
        for sub, child in sorted(getattr(command, "commands", {}).items()):
            verb(f"{path} {sub}", child)

    for name, command in group.commands.items():
        verb(f"weightsteer {name}", command)
    return "\n".join(lines) + "\n"


def main(out: str) -> None:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "configuration.md").write_text(configuration())
    (folder / "cli.md").write_text(cli())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
