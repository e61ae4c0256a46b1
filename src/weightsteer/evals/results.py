"""The long results table (design.md): one row per (method, strength, seed, eval, row).

This module owns the schema: every producer builds rows with ``result_rows`` and every
consumer reads with ``read_results``, which refuses a table with missing columns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from weightsteer.core.errors import UserError
from weightsteer.core.files import atomic_path

COLUMNS = {
    "method": "string",  # "weight", later "prompt:simple", "act:mean_diff", ...
    "family": "string",  # adapter family of a weight vector ("" for other methods)
    "strength": "float64",  # alpha, or the method's coefficient
    "calibrated_kl": "float64",  # the KL budget the strength was calibrated to (NaN: none)
    "kl": "float64",  # the KL the strength achieved on the calibration prompts (NaN: none)
    "audit_kl": "float64",  # the same statistic on the audit prompts (NaN: none)
    "status": "string",  # the calibration's outcome: ok, fixed, too weak, ... ("": none)
    "seed": "int64",
    "eval": "string",  # suite name
    "row_id": "string",
    "group": "string",  # a breakdown key within the suite ("" for none; tinymfv: foundation)
    "label": "int64",  # +1 / -1: which choice the POS behaviour gives
    "logratio": "float64",  # log p(first choice) - log p(second choice)
    "pmass": "float64",  # p(first) + p(second): how much the model answers in format
    "score": "float64",  # logratio * label: larger = more POS behaviour
    "text": "string",  # a generative suite's answer ("" for choice suites)
    # a capability suite's measure (suite_info "measure"): 1/0 right answer, or mean token
    # NLL; NaN for behaviour suites
    "value": "float64",
    # an analysis variant of a weight vector (``analysis/``: keep:layer2, dir_only, ...);
    # "full" for the unchanged vector in an analysis table, "" elsewhere
    "variant": "string",
}


def result_rows(
    *,
    method: str,
    family: str,
    strength: float,
    seed: int,
    suite,
    logratio,
    pmass,
    calibrated_kl: float = float("nan"),
    kl: float = float("nan"),
    audit_kl: float = float("nan"),
    status: str = "",
    texts: list[str] | None = None,
    values=None,
    variant: str = "",
) -> pd.DataFrame:
    """Rows for one suite scored under one intervention at one strength (``calibrated_kl``,
    ``kl``, ``audit_kl``, ``status``: how the strength was calibrated, if it was)."""
    label = [r.label for r in suite.rows]
    lr = [float(x) for x in logratio]
    df = pd.DataFrame(
        {
            "method": method,
            "family": family,
            "strength": float(strength),
            "calibrated_kl": calibrated_kl,
            "kl": kl,
            "audit_kl": audit_kl,
            "status": status,
            "seed": seed,
            "eval": suite.name,
            "row_id": [r.row_id for r in suite.rows],
            "group": [r.group for r in suite.rows],
            "label": label,
            "logratio": lr,
            "pmass": [float(x) for x in pmass],
            "score": [x * y for x, y in zip(lr, label, strict=True)],
            "text": texts if texts is not None else "",
            "value": [float(x) for x in values] if values is not None else float("nan"),
            "variant": variant,
        }
    )
    return df.astype(COLUMNS)


# columns added after the first tables were written, and what older tables hold there
FILLED = {
    "group": "",
    "text": "",
    "kl": float("nan"),
    "audit_kl": float("nan"),
    "status": "",
    "value": float("nan"),
    "variant": "",
}
META_KEY = b"weightsteer"
CALIBRATION_KEY = b"weightsteer.calibration"
SUITES_KEY = b"weightsteer.suites"


def suite_info(suites) -> dict[str, dict]:
    """What a report needs to know of each scored suite: whether its rows come from the
    training questions' own distribution (``iid``; the verdict leads with the others)."""
    return {
        s.name: {"iid": bool(s.meta.get("iid", False)), "rows": len(s.rows), "measure": s.measure}
        for s in suites
    }


def write_results(
    frames: Iterable[pd.DataFrame],
    path: str | Path,
    config: dict | None = None,
    *,
    calibration: list[dict] | None = None,
    suites: dict[str, dict] | None = None,
) -> Path:
    """Write the table; ``config`` (the run config that scored it), ``calibration`` (how
    its strengths were found, ``methods/calibrate.py``) and ``suites`` (``suite_info``) go
    into the parquet metadata, so a report of the file alone knows its settings."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = pd.concat(list(frames), ignore_index=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    extra = {META_KEY: config, CALIBRATION_KEY: calibration, SUITES_KEY: suites}
    meta = {k: json.dumps(v).encode() for k, v in extra.items() if v is not None}
    if meta:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    with atomic_path(path, overwrite=True) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


# what each metadata key holds when this tool wrote it (another tool's or version's table
# may hold anything: it is refused by name, never half read)
META_TYPES = {META_KEY: dict, CALIBRATION_KEY: list, SUITES_KEY: dict}


def _metadata(path: str | Path, key: bytes):
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as e:  # pyarrow raises several types for damaged files
        raise UserError(f"results table {path} cannot be read ({e})") from None
    if key not in meta:
        return None
    try:
        value = json.loads(meta[key])
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"results table {path} has damaged {key.decode()} metadata ({e})") from None
    want = META_TYPES[key]
    if value is not None and not (
        isinstance(value, want)
        and (key != SUITES_KEY or all(isinstance(v, dict) for v in value.values()))
        and (key != CALIBRATION_KEY or all(isinstance(v, dict) for v in value))
    ):
        raise UserError(
            f"results table {path}: its {key.decode()} metadata is a {type(value).__name__}, "
            f"not the {want.__name__} of records weightsteer writes (another tool or version "
            "wrote it); score it again with this version"
        )
    return value


def results_config(path: str | Path) -> dict | None:
    """The config stored with a table by ``write_results``, if any."""
    return _metadata(path, META_KEY)


def results_calibration(path: str | Path) -> list[dict]:
    """The calibration records stored with a table by ``write_results`` (none: [])."""
    return _metadata(path, CALIBRATION_KEY) or []


def results_suites(paths: Iterable[str | Path]) -> dict[str, dict]:
    """``suite_info`` of every table in ``paths`` merged (tables without it: {})."""
    out: dict[str, dict] = {}
    for p in paths:
        out.update(_metadata(p, SUITES_KEY) or {})
    return out


def read_results(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate result tables, checking each against the schema."""
    frames = []
    for p in paths:
        try:
            df = pd.read_parquet(p)
        except Exception as e:  # pyarrow raises several types for damaged files
            raise UserError(
                f"results table {p} cannot be read ({e}); rerun the eval stage"
            ) from None
        for col, empty in FILLED.items():  # tables written before the column existed
            if col not in df.columns:
                df[col] = empty
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise UserError(f"results table {p} lacks columns {', '.join(missing)}")
        frames.append(_typed(df, p))
    if not frames:
        raise UserError("no results tables to read; run the eval stage first")
    return conditioned_suites(pd.concat(frames, ignore_index=True))


NOT_NAN = ("method", "strength", "seed", "eval", "row_id", "label")  # keys and labels


def _typed(df: pd.DataFrame, path) -> pd.DataFrame:
    """The schema's columns in the schema's types, or one line naming the column that is
    not (a table another tool or version wrote: a string seed, a missing label)."""
    out = {}
    for col, dtype in COLUMNS.items():
        if col in NOT_NAN and df[col].isna().any():
            raise UserError(
                f"results table {path}: column {col} has missing values (NaN) in "
                f"{int(df[col].isna().sum())} rows; a weightsteer table has none there"
            )
        try:
            out[col] = df[col].astype(dtype)
        except (ValueError, TypeError):
            raise UserError(
                f"results table {path}: column {col} holds {df[col].dtype} values that are "
                f"not {dtype} (e.g. {df[col].iloc[0]!r}); another tool or version wrote it"
            ) from None
    return pd.DataFrame(out)


def conditioned_suites(df: pd.DataFrame) -> pd.DataFrame:
    """A suite whose rows come in groups ``cued`` and ``plain`` (the sycophancy suite with
    ``condition``): ``<suite>`` keeps its cued rows, and ``<suite>:known`` is the cued
    rows of the items (row id before ``:``) whose every plain row scores > 0 (answered
    right) at strength 0, in every table that has strength 0. The plain rows themselves
    only define the condition. Without strength-0 rows nothing is derived."""
    out = [df[~df["eval"].isin(_paired_suites(df))]]
    for suite in _paired_suites(df):
        sub = df[df["eval"] == suite]
        cued = sub[sub["group"] == "cued"]
        out.append(cued)
        plain = sub[(sub["group"] == "plain") & (sub["strength"] == 0)]
        if plain.empty:
            continue
        item = plain["row_id"].str.rsplit(":", n=1).str[0]
        known = set(item[plain.groupby(item)["score"].transform("min").gt(0)])
        keep = cued["row_id"].str.rsplit(":", n=1).str[0].isin(known)
        if keep.any():
            out.append(cued[keep].assign(eval=f"{suite}:known"))
    return pd.concat(out, ignore_index=True).astype(COLUMNS)


def _paired_suites(df: pd.DataFrame) -> list[str]:
    return [s for s, g in df.groupby("eval", sort=False)["group"] if {"cued", "plain"} <= set(g)]
