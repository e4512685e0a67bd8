"""app/'s import graph keeps its layers: no cycle between its parts, features import no later
stage, nothing below the transports imports the web framework, and no torch anywhere.

Read from the source with ``ast`` (every import, also those inside functions), so a lazy
import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import ROOT

APP = ROOT / "app"
# the transports and the app factory: the only parts that may speak HTTP framework
WEB_PARTS = {"app.api", "app.main"}
WEB_FRAMEWORKS = ("fastapi", "starlette", "uvicorn")
# what the feature functions may never reach: later stages and the parts that orchestrate them
AFTER_FEATURES = ("app.windows", "app.fusion", "app.answer", "app.api", "app.pipeline", "app.workers", "app.startup")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute, wherever in the file the import stands."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # `from app.features import audio` imports the module app.features.audio
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def app_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in APP.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def part(module: str) -> str:
    """The part of app/ a module belongs to: its top-level package or module (app.features, app.config)."""
    return ".".join(module.split(".")[:2])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_part_of_app_imports_another_that_imports_it_back() -> None:
    parts: dict[str, set[str]] = defaultdict(set)
    for module, imported in app_graph().items():
        parts[part(module)].update(part(m) for m in imported if part(m) != part(module))
    assert cycles(parts) == [], "package cycle between parts of app/"


def test_no_module_cycle_inside_a_part_either() -> None:
    assert cycles(app_graph()) == []


@pytest.mark.parametrize("forbidden", AFTER_FEATURES)
def test_features_never_import_a_later_stage(forbidden: str) -> None:
    offenders = {
        module: sorted(m for m in imported if part(m) == forbidden)
        for module, imported in app_graph().items()
        if part(module) == "app.features"
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_only_the_transports_import_the_web_framework() -> None:
    offenders = {}
    for path in APP.rglob("*.py"):
        module = module_name(path)
        if part(module) in WEB_PARTS:
            continue
        web = sorted(m for m in imports_of(path) if m.split(".")[0] in WEB_FRAMEWORKS)
        if web and module != "app.__main__":  # `python -m app` starts uvicorn
            offenders[module] = web
    assert offenders == {}


def test_app_never_imports_torch() -> None:
    offenders = [module_name(p) for p in APP.rglob("*.py") if any(m.split(".")[0] == "torch" for m in imports_of(p))]
    assert offenders == []


def test_the_graph_reader_sees_imports_inside_functions() -> None:
    # the checks above are only as good as the reader: `python -m app` imports app.api.deps in main()
    assert "app.api.deps" in imports_of(APP / "__main__.py")


def test_the_crop_geometry_needs_only_numpy_and_opencv() -> None:
    # training/build_face_models.py crops with it inside its build venv, which has no pydantic
    # and no onnxruntime
    allowed = {"__future__", "math", "collections", "dataclasses", "numpy", "cv2"}
    for name in ("geometry", "detection"):
        imported = imports_of(APP / "features" / "visual" / f"{name}.py")
        outside = {m.split(".")[0] for m in imported if not m.startswith("app.features.visual.detection")}
        assert outside <= allowed, name
