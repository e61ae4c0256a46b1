"""Every `weightsteer ...` command in the README and the docs parses: known verb, known
options; and the README shows every verb."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import typer.main

from weightsteer.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


def readme_commands(pages: list[Path] = PAGES) -> list[str]:
    text = "\n".join(p.read_text() for p in pages)
    blocks = [b.split("```", 1)[0] for b in text.split("```bash\n")[1:]]
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    # a launcher's line (accelerate launch, torchrun) runs `-m weightsteer.cli <verb> ...`
    lines = ["weightsteer " + ln.split(" -m weightsteer.cli ", 1)[1] if " -m weightsteer.cli " in ln
             else ln for ln in lines]  # fmt: skip
    return [line.split("#", 1)[0].strip() for line in lines if line.startswith("weightsteer ")]


def test_the_readme_shows_every_verb():
    verbs = {shlex.split(c)[1] for c in readme_commands([README])}
    group = typer.main.get_command(app)
    assert set(group.commands) <= verbs | {"toy"}, set(group.commands) - verbs


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_parses(command):
    group = typer.main.get_command(app)
    args = shlex.split(command)[1:]
    cmd = group
    name = "weightsteer"
    while hasattr(cmd, "commands"):  # a group: descend into the verb
        name, args = args[0], args[1:]
        assert name in cmd.commands, f"unknown verb {name!r} in: {command}"
        cmd = cmd.commands[name]
    cmd.make_context(name, list(args))  # raises on an unknown option or a missing one
