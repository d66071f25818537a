"""core/ stays UI-free: it must import without streamlit or plotly."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_core_imports_no_streamlit_or_plotly():
    modules = sorted(p.stem for p in (ROOT / "core").glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module('core.' + m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('streamlit', 'plotly'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert len(modules) >= 6
    assert result.returncode == 0, result.stdout + result.stderr


def _core_imports() -> dict[str, set[str]]:
    """{module: core modules it imports anywhere in its file, lazy imports included}."""
    graph = {}
    for path in (ROOT / "core").glob("*.py"):
        if path.stem == "__init__":
            continue
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module == "core":
                found |= {f"core.{a.name}" for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
        graph[path.stem] = {m.removeprefix("core.") for m in found if m.startswith("core.")}
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), list(graph[start])
    while todo:
        m = todo.pop()
        if m not in seen and m in graph:
            seen.add(m)
            todo.extend(graph[m])
    return seen


def test_the_network_modules_are_on_no_import_cycle():
    graph = _core_imports()
    assert "plan" not in _reachable(graph, "spec")  # spec is data; plan registers itself
    network = ("spec", "jsondata", "layers", "planners", "plan", "blocks", "model", "presets")
    on_cycle = [m for m in network if m in _reachable(graph, m)]
    assert on_cycle == []
    assert "plan" not in _reachable(graph, "blocks")  # shortcut names come from spec
