"""Every config the repo ships parses: a key renamed in the code, or an override for a
family a config does not train, fails here and not in a user's first run."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from weightsteer.pipeline import parse_config

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_parses(path):
    cfg = parse_config(tomllib.loads(path.read_text()))
    assert cfg.name == path.stem
