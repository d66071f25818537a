"""The code's shape, as the design issue set it: small files and functions, `app -> core`
the only direction between the folders, core free of Streamlit, no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("core", "app") for p in (ROOT / folder).rglob("*.py"))
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60


def _name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """The modules of this project that `path` imports (at any depth of the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:  # `from core import run` imports core.run, not core alone
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in MODULES else node.module)
    return {m for m in found if m.split(".")[0] in ("core", "app")}


MODULES = {_name(p): p for p in SOURCES}
GRAPH = {
    name: {m for m in _imports(path) if m in MODULES} - {name} for name, path in MODULES.items()
}


def test_the_checker_sees_the_project():
    assert "core.run" in MODULES and "app.streamlit_app" in MODULES
    assert "core.run" in GRAPH["core.jobs"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_files_and_functions_stay_small(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_FILE_LINES, f"{path.name}: split it into modules"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_core_never_imports_the_app_or_streamlit():
    for name, path in MODULES.items():
        if name.startswith("core"):
            text = path.read_text(encoding="utf-8")
            assert not any(m.startswith("app") for m in GRAPH[name]), name
            assert "import streamlit" not in text and "from streamlit" not in text, name


def test_no_import_cycles():
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join((*path[path.index(name) :], name)))
        if name in done:
            return
        for dep in sorted(GRAPH[name]):
            visit(dep, (*path, name))
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, ())
