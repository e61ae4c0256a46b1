"""Tables read from where researchers keep them: a shipped file, a local file, the HF hub.

``builtin:<name>`` (a ``.jsonl`` shipped in ``weightsteer/data``), a local ``.jsonl`` /
``.csv`` / ``.parquet`` file, or ``hf:<dataset id>`` (``datasets.load_dataset`` with an
optional config and split). Question pools and eval suites read through here, so every
source works everywhere and fails with the same clear lines.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from weightsteer.core.errors import UserError

SOURCES = "builtin:<name>, a .jsonl/.csv/.parquet file or hf:<dataset id>"


def builtin_tables() -> list[str]:
    return sorted(
        p.name.removesuffix(".jsonl")
        for p in resources.files("weightsteer.data").iterdir()
        if p.name.endswith(".jsonl")
    )


def read_table(
    source: str, *, what: str, hf_config: str | None = None, hf_split: str = "train"
) -> pd.DataFrame:
    """The rows of ``source`` as a DataFrame; ``what`` names the table in messages."""
    if source.startswith("builtin:"):
        name = source.removeprefix("builtin:")
        if name not in builtin_tables():
            raise UserError(
                f"{what}: no built-in table {name!r}; known: {', '.join(builtin_tables())}"
            )
        with resources.as_file(resources.files("weightsteer.data") / f"{name}.jsonl") as p:
            table = pd.read_json(p, lines=True, dtype=False)
    elif source.startswith("hf:"):
        table = _read_hf(source.removeprefix("hf:"), what, hf_config, hf_split)
    else:
        table = _read_file(Path(source), what)
    if table.empty:
        raise UserError(f"{what}: {source} has no rows")
    return table


def _read_file(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"{what}: file {path} does not exist (sources: {SOURCES})")
    readers = {
        ".jsonl": lambda: pd.read_json(path, lines=True, dtype=False),
        ".csv": lambda: pd.read_csv(path, dtype=str, keep_default_na=False),
        ".parquet": lambda: pd.read_parquet(path),
    }
    if path.suffix not in readers:
        raise UserError(f"{what}: file {path}: use .jsonl, .csv or .parquet")
    try:
        return readers[path.suffix]()
    except Exception as e:  # pandas raises many types for malformed files
        raise UserError(f"{what}: file {path} could not be read: {e}") from None


def _read_hf(dataset_id: str, what: str, config: str | None, split: str) -> pd.DataFrame:
    import datasets

    try:
        ds = datasets.load_dataset(dataset_id, config, split=split)
    except Exception as e:  # network, missing dataset, bad split: all user-fixable
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UserError(
            f"{what}: could not load HF dataset {dataset_id!r} ({type(e).__name__}: {first}); "
            "without network access, pass a local file in the same schema"
        ) from None
    return ds.to_pandas()


def require_columns(table: pd.DataFrame, columns: Any, what: str, source: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(
            f"{what}: {source} lacks column(s) {', '.join(missing)} (it has: "
            f"{', '.join(map(str, table.columns))})"
        )
