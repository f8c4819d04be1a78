"""Layers import one way: stats <- tasks/checks <- flows <- deployments/CLI; nothing runs at import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Folder -> package name, as mapped in pyproject.toml.
FOLDERS = {
    "driftline": "driftline",
    "tasks": "driftline.tasks",
    "checks": "driftline.checks",
    "flows": "driftline.flows",
    "deployments": "driftline.deployments",
}
LAYER = {
    # The shared vocabulary (statuses, kinds, the result record, errors) sits with the pure statistics.
    "driftline.results": 0,
    "driftline.errors": 0,
    "driftline.stats": 0,
    "driftline.tasks": 1,
    "driftline.checks": 1,
    "driftline.flows": 2,
    "driftline.deployments": 3,
    "driftline.cli": 3,
    "driftline.demo_runner": 3,
    # Reports and batch comparison read results and profiles like tasks do (a flow may write a report
    # as one of its steps); they import nothing above the task layer.
    "driftline.report": 1,
    "driftline.compare": 1,
    # validate's deployment checks use the extract step's table clause and the monitor registry.
    "driftline.checkup": 1,
}
# Shared leaf modules (config, results, storage, ...) sit below tasks: they may import only stats.
LEAF = 0.5


def _module_name(path: Path) -> str:
    relative = path.relative_to(ROOT)
    package = FOLDERS[relative.parts[0]]
    parts = [package, *relative.parts[1:]]
    parts[-1] = parts[-1].removesuffix(".py")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> float:
    for prefix, layer in sorted(LAYER.items(), key=lambda kv: -len(kv[0])):
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return LEAF


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _sources() -> list[Path]:
    return [p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.parts]


def test_layers_import_one_way() -> None:
    violations = []
    for path in _sources():
        module = _module_name(path)
        for imported in _imports(path):
            if imported.split(".")[0] in ("tasks", "flows", "checks", "deployments"):
                violations.append(f"{module} imports top-level {imported!r}; use driftline.{imported}")
            if not imported.startswith("driftline"):
                continue
            if _layer(imported) > _layer(module):
                violations.append(f"{module} (layer {_layer(module)}) imports {imported} (layer {_layer(imported)})")
    assert not violations, "\n".join(violations)


def test_statistics_are_pure() -> None:
    allowed = {
        "numpy",
        "scipy",
        "pandas",
        "driftline",
        "__future__",
        "math",
        "dataclasses",
        "typing",
        "collections",
        "enum",
        "functools",
    }
    for path in (ROOT / "driftline" / "stats").rglob("*.py"):
        for imported in _imports(path):
            assert imported.split(".")[0] in allowed, f"{path.name} imports {imported}"


def test_importing_everything_creates_nothing() -> None:
    """Importing every module opens no connection and starts no server (checked in a clean process)."""
    modules = sorted(_module_name(p) for p in _sources())
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "from driftline.storage import engine\n"
        "assert engine._ENGINES == {}, engine._ENGINES\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
