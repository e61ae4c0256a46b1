"""The house rules, checked rather than hoped for: small modules and functions, no import
loop inside a package (function-level imports too), one registry convention with named
entry-point groups, and every entry's own settings in the run config."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from weightsteer.core.errors import UserError
from weightsteer.core.registry import Entry, Registry

PACKAGE = Path(__file__).parents[1] / "src" / "weightsteer"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def test_no_module_over_400_lines_and_no_function_over_80():
    too_long = []
    for name, path in modules().items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {n} lines")
    assert not too_long, too_long


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of the package ``name`` imports, at any depth of its code."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in known else node.module)
    return {m for m in out if m in known and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_import_loop_inside_any_package():
    mods = modules()
    known = set(mods)
    graph = {
        name: {m for m in imports(name, path, known) if package_of(m) == package_of(name)}
        for name, path in mods.items()
    }
    assert cycles(graph) == []


def test_the_loop_finder_finds_a_loop():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def registries() -> dict[str, Registry]:
    from weightsteer.adapters import FAMILIES
    from weightsteer.analysis import ANALYSES
    from weightsteer.core.sources import SOURCES
    from weightsteer.evals import SUITES
    from weightsteer.evals.scorers import SCORERS
    from weightsteer.evals.suites.tinymfv import VIGNETTE_SOURCES
    from weightsteer.methods import METHODS
    from weightsteer.pairs.questions import PROMPT_SOURCES, QUESTION_SOURCES

    regs = [FAMILIES, ANALYSES, SOURCES, SUITES, SCORERS, METHODS, PROMPT_SOURCES,
            VIGNETTE_SOURCES]  # fmt: skip
    return {r.group: r for r in [*regs, QUESTION_SOURCES]}


def test_every_entry_point_group_is_named_and_documented():
    import weightsteer.core.registry as registry

    groups = set(registries())
    assert len(groups) == 9  # one group per kind, none spelled by default
    for group in groups:
        assert f"``{group}``" in registry.__doc__, group
    pyproject = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())
    declared = {g for g in pyproject["project"]["entry-points"] if g.startswith("weightsteer.")}
    assert declared <= groups, declared - groups


def test_a_name_is_registered_once():
    reg: Registry = Registry("thing", "weightsteer.things")

    def first():
        pass

    def second():
        pass

    reg.register("x")(first)
    reg.register("x")(first)  # the same entry again (a module reloaded): fine
    with pytest.raises(UserError, match="registered twice"):
        reg.register("x")(second)
    assert reg.get("x") is first
    assert reg.entry("x") == Entry("x", first, None, {})


def test_every_entry_with_settings_has_its_section_in_the_run_config():
    """Each family, method, suite and analysis with a config of its own is a sub-section
    under its name, and config-help lists its keys."""
    from weightsteer.adapters import FAMILIES
    from weightsteer.analysis import ANALYSES
    from weightsteer.evals import SUITES
    from weightsteer.methods import METHODS
    from weightsteer.pipeline.config import describe

    keys = {k for k, _, _ in describe()}
    sections = {"train": FAMILIES, "compare": METHODS, "eval": SUITES, "analysis": ANALYSES}
    listed = 0
    for section, reg in sections.items():
        for entry in reg.entries():
            if entry.config is None:
                continue
            name = entry.name if entry.name.isidentifier() else f'"{entry.name}"'
            for field in entry.config.model_fields:
                assert f"{section}.{name}.{field}" in keys, (section, entry.name, field)
                listed += 1
    assert listed >= 10  # the family options, the activation settings, the suites' own
