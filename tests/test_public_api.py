"""The package's face: ``import weightsteer as ws`` and the README's ten-line example."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import torch

import weightsteer as ws

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def first_python_block(path: Path) -> str:
    return re.search(r"```python\n(.*?)```", path.read_text(), re.S).group(1)


def library_snippet() -> str:
    return first_python_block(README)


def test_the_readme_opens_with_the_two_commands_and_the_api():
    """A newcomer's first screen: how to run the demo and the tests, then the API; the
    library page shows the same snippet (this test runs it)."""
    first_screen = "\n".join(README.read_text().splitlines()[:25])
    assert "make demo" in first_screen and "make test" in first_screen
    assert "import weightsteer as ws" in first_screen
    assert first_python_block(ROOT / "docs" / "library.md") == library_snippet()
    assert len(README.read_text().splitlines()) <= 250


def test_every_public_name_resolves():
    for name in ws.__all__:
        assert getattr(ws, name) is not None, name


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, weightsteer; import weightsteer.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_readme_library_example_runs_as_written(tiny_dir, tmp_path, monkeypatch, capsys):
    """The exact snippet, with the tiny test model in place of toyworld."""
    code = library_snippet()
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    assert code.count('"toyworld")') >= 2
    code = code.replace('ws.load_model("toyworld")', f"ws.load_model({str(tiny_dir)!r})")
    code = code.replace('ws.load_tokenizer("toyworld")', f"ws.load_tokenizer({str(tiny_dir)!r})")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed] == ["-1", "0", "0.5"]
    assert (tmp_path / "honesty-lora" / "vector.safetensors").is_file()
    fresh = ws.load_model(tiny_dir, dtype="float32")
    for (n, p), q in zip(scope["model"].named_parameters(), fresh.parameters(), strict=True):
        assert torch.equal(p, q), n  # the sweep restored the weights exactly
