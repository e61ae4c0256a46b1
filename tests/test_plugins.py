"""What a newcomer adds is one file each, found through entry points: a family with its own
option, a method with its own knob, an analysis that needs the other families, and a
suite with its own report table (``tests/plugin_example/ws_example``), run through a tiny
toyworld pipeline in a process that sees them only as an installed plugin would be seen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from safetensors.torch import load_file

EXAMPLE = Path(__file__).parent / "plugin_example"
GROUPS = {
    "weightsteer.adapter_families": "ws_example.family",
    "weightsteer.methods": "ws_example.method",
    "weightsteer.analyses": "ws_example.analysis",
    "weightsteer.suites": "ws_example.suite",
}

CONFIG = """
name = "plug"
[questions]
n_train = 8
n_eval = 8
[data]
paraphrases = 1
max_new_tokens = 16
[train]
families = ["lora", "fixed_scale"]
seeds = [0]
rank = 2
epochs = 2
layers = [0.25, 1.0]
[train.fixed_scale]
scale = 3.0
[eval]
suites = ["colours"]
alphas = [-1, 0, 1]
[eval.colours]
n = 6
[compare]
methods = ["weight", "act:mean_diff", "act:gain"]
budgets = [1.0]
n_calibration = 4
n_audit = 2
tokens = 8
[compare."act:gain"]
gain = 0.25
[analysis]
analyses = ["family_mean"]
calibrated = false
"""


def installed_plugin(root: Path) -> Path:
    """A dist-info folder declaring the example's entry points, as ``pip install`` of a
    plugin package with them in its ``pyproject.toml`` would leave one."""
    info = root / "ws_example-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ws-example\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "".join(f"[{group}]\nexample = {module}\n\n" for group, module in GROUPS.items())
    )
    return root


@pytest.fixture(scope="module")
def plugin_run(toy_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plugin")
    (tmp / "plug.toml").write_text(CONFIG)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(installed_plugin(tmp / "site")), str(EXAMPLE)]),
    }
    for argv in (["run", "--config", "plug.toml"], ["analyze", "--run", "runs/plug"]):
        done = subprocess.run(
            [sys.executable, "-m", "weightsteer.cli", *argv],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "runs" / "plug"


def test_the_family_option_reaches_the_adapter(plugin_run):
    config = json.loads(
        (plugin_run / "adapters/fixed_scale/seed0/pos/adapter_config.json").read_text()
    )
    assert config["lora_alpha"] == 3.0 * config["r"]  # [train.fixed_scale] scale = 3


def test_the_method_knob_scales_its_direction(plugin_run):
    folder = plugin_run / "compare" / "activation"
    gain, mean = (load_file(folder / f"act-{n}.safetensors") for n in ("gain", "mean_diff"))
    assert set(gain) == set(mean) and gain
    for name in gain:  # the same pairs, layers and position: gain x the mean difference
        assert float((gain[name] - 0.25 * mean[name]).abs().max()) < 1e-6


def test_the_analysis_is_given_the_other_families(plugin_run):
    tables = list((plugin_run / "analysis").rglob("family_mean.parquet"))
    assert len(tables) == 2  # one per vector
    for t in tables:
        assert set(pd.read_parquet(t)["variant"]) == {"full", "family_mean:2"}


def test_the_suite_has_its_own_settings_and_report_table(plugin_run):
    df = pd.concat(pd.read_parquet(p) for p in (plugin_run / "results").glob("*.parquet"))
    assert df[df["eval"] == "colours"]["row_id"].nunique() == 6  # [eval.colours] n = 6
    report = (plugin_run / "report.md").read_text()
    assert "## colours: truthful share" in report
    assert "| weight | +1 |" in report
