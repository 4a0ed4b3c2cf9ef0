"""Imports point one way: leaf modules -> strategies -> engine -> reports -> API / CLI.

Every ``import`` of the three packages is read from the source (function-level ones
included; ``if TYPE_CHECKING:`` blocks are typing only and skipped) and checked against
the layer table of the README's "Layout and data flow".
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LEAF = {"backtest.errors", "backtest.schema", "backtest.versions", "backtest.metrics", "backtest.kernels",
        "backtest.index_kernels", "backtest.atomic", "backtest.dates", "backtest.progress", "backtest.forked",
        "reports.stats"}  # reports.stats: pure statistics (numpy, arch), used by the grid and the reports
TOP = {"backtest.api", "backtest.cli", "backtest"}
#: the only engine modules reports may read (the config's number check; the named event windows)
REPORTS_MAY_USE = {"backtest.config", "backtest.windows"}


def layer(module: str) -> int:
    if module in LEAF:
        return 1
    if module.startswith("strategies"):
        return 2
    if module in TOP:
        return 5
    if module.startswith("reports"):
        return 4
    return 3  # the engine: every other backtest module


def _modules() -> list[tuple[str, Path]]:
    out = []
    for package in ("backtest", "strategies", "reports"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
            out.append((name, path))
    return out


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    ours = {m for m in found if m.split(".")[0] in ("backtest", "strategies", "reports")}
    known = {name for name, _ in _modules()}
    return {m for m in ours if m in known}


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_no_import_climbs_a_layer(module: str, path: Path) -> None:
    mine = layer(module)
    for target in sorted(_imports(path)):
        if target == module or target in ("backtest", "strategies", "reports"):
            continue  # a package's own __init__ (lazy) is not a layer
        if module.startswith("reports") and layer(target) == 3:
            assert target in REPORTS_MAY_USE, f"{module} (reports) imports the engine module {target}"
            continue
        assert layer(target) <= mine, f"{module} (layer {mine}) imports {target} (layer {layer(target)})"


def test_nothing_below_reports_renders() -> None:
    for module, path in _modules():
        if layer(module) <= 3:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            assert not any(m.split(".")[0] == "matplotlib" for m in names), module
