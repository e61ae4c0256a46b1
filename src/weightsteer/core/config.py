"""What every config section shares: frozen, unknown keys refused, a stable content hash.

Each section lives next to the code that uses it (``ModelConfig`` with model loading,
``TrainConfig`` with training, a suite's config in the suite's file); the pipeline
assembles them into one ``RunConfig``. A section that lists registered entries (families,
methods, suites, analyses) grows one sub-section per entry with settings of its own
(``with_entry_sections``), keyed by the entry's name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from weightsteer.core.errors import UserError
from weightsteer.core.registry import Registry


class Section(BaseModel):
    """Base of every config section: frozen (derive a new one, never mutate), strict."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def content_key(obj: Any) -> str:
    """Stable short hash of a JSON-able object."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def known_names(names: tuple[str, ...], kind: str, check: Callable[[str], Any]) -> tuple[str, ...]:
    """``names`` without repeats, each accepted by ``check`` (a registry lookup); for a
    field validator, so the message carries the key path."""
    if len(set(names)) != len(names):
        raise ValueError(f"a {kind} is listed twice")
    for name in names:
        try:
            check(name)
        except UserError as e:
            raise ValueError(str(e)) from None
    return names


def _check_depths(v: tuple[float, float]) -> tuple[float, float]:
    if not 0 <= v[0] < v[1] <= 1:
        raise ValueError(f"layers must be two depth fractions 0 <= lo < hi <= 1, got {list(v)}")
    return v


# A ``[lo, hi)`` range of depth fractions (which decoder blocks a field means), checked
DepthRange = Annotated[tuple[float, float], AfterValidator(_check_depths)]


ENTRY_MARK = "weightsteer_entry"  # marks a registry entry's sub-section of a section


def entry_key(name: str) -> str:
    """The Python field name of a registry entry's sub-section (``act:pca`` -> ``act_pca``);
    the TOML key stays the entry's name (``[compare."act:pca"]``)."""
    return "".join(c if c.isalnum() else "_" for c in name)


def with_entry_sections(
    base: type[Section], registry: Registry, title: str, **fields: Any
) -> type[Section]:
    """``base`` plus one sub-section per entry of ``registry`` that has a config, under the
    entry's name, and ``fields`` (overrides of ``base``'s): how a section grows the knobs
    of every registered family, method, suite or analysis without naming them."""
    sections: dict[str, Any] = {}
    for entry in registry.entries():
        if entry.config is None:
            continue
        key = entry_key(entry.name)
        if key in base.model_fields or key in fields:
            raise ValueError(f"{registry.kind} {entry.name!r} clashes with the key {key!r}")
        sections[key] = (
            entry.config,
            Field(
                default_factory=entry.config,
                alias=entry.name,
                description=f"settings of {registry.kind} {entry.name}",
                json_schema_extra={ENTRY_MARK: True},
            ),
        )
    # entries' keys are their names, whatever characters those have; the Python name works too
    aliased = type(
        base.__name__,
        (base,),
        {
            "__module__": base.__module__,
            "model_config": ConfigDict(
                validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
            ),
        },
    )
    return cast(
        type[Section],
        create_model(title, __base__=aliased, __module__=base.__module__, **sections, **fields),
    )


def entry_fields(section: BaseModel) -> dict[str, str]:
    """A section's sub-sections that belong to registry entries: field name -> entry name."""
    out = {}
    for name, field in type(section).model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get(ENTRY_MARK):
            out[name] = field.alias or name
    return out


def own_dump(section: BaseModel, used: set[str] | None = None) -> dict[str, Any]:
    """``section`` as JSON for a content key: its own fields, and the sub-sections of the
    entries named in ``used`` (every entry whose settings differ from its defaults when
    ``used`` is None). A registered entry a run does not use, or leaves at its defaults,
    changes no key: installing a plugin invalidates nothing."""
    data = section.model_dump(mode="json")
    for name, entry in entry_fields(section).items():
        value = getattr(section, name)
        keep = entry in used if used is not None else value != type(value)()
        if not keep:
            data.pop(entry, None)
    return data


def entry_settings(section: BaseModel, registry: Registry, name: str) -> Any:
    """The settings of entry ``name`` in ``section`` (grown by ``with_entry_sections``),
    or its defaults when ``section`` has none for it (a config made before it existed)."""
    entry = registry.entry(name)
    return entry.settings(getattr(section, entry_key(name), None))
