"""The package's shape: no import circles (inside a folder too) and imports only in the documented direction
(ui/cli → api → methods → core), read from the source, every import statement counted (also those inside functions
and ``TYPE_CHECKING`` blocks: a circle there is still a circle in the design)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS = {  # a module may import only modules of its own layer or a lower one
    "interface": ("diffinv.cli", "diffinv.ui"),
    "api": ("diffinv.api",),
    "methods": ("diffinv.inversion", "diffinv.editing", "diffinv.personalization"),
    "core": ("diffinv.steps", "diffinv.denoiser", "diffinv.sampling", "diffinv.pipelines", "diffinv.images",
             "diffinv.text"),
}  # fmt: skip
ORDER = ("core", "methods", "api", "interface")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in (SRC / "diffinv").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    return modules


def _imports() -> dict[str, set[str]]:
    """Module → the diffinv modules it imports (a module importing its own parent package is not counted)."""
    modules = _modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    edges[name].add(target)
    return edges


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return circles


def test_no_import_circles():
    assert _circles(_imports()) == []


def _layer(module: str) -> str | None:
    for layer, prefixes in LAYERS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return layer
    return None


def test_imports_point_down_the_layers():
    wrong = []
    for module, targets in _imports().items():
        layer = _layer(module)
        for target in targets:
            other = _layer(target)
            if layer and other and ORDER.index(other) > ORDER.index(layer):
                wrong.append(f"{module} ({layer}) imports {target} ({other})")
    assert wrong == []


@pytest.mark.parametrize("edges", [{"a": {"b"}, "b": {"a"}, "c": set()}])
def test_the_circle_finder_finds_a_circle(edges):
    assert _circles(edges) == [["a", "b"]]
