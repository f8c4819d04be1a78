"""Folders are layers and import one way (core <- stats <- config/storage <- tasks <- flows <- CLI)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Each folder is one layer; a module may import from its own layer and the layers below. The folder,
# not a list of modules, decides: there are no exceptions. Folder -> (package, layer).
LAYERS = {
    "driftline/core": ("driftline.core", 0),
    "driftline/stats": ("driftline.stats", 1),
    "driftline/config": ("driftline.config", 2),
    "driftline/storage": ("driftline.storage", 2),
    "tasks": ("driftline.tasks", 3),
    "checks": ("driftline.checks", 3),
    "flows": ("driftline.flows", 4),
    "deployments": ("driftline.deployments", 5),
    "driftline/cli": ("driftline.cli", 5),
}


def _folder(path: Path) -> str:
    relative = path.relative_to(ROOT).as_posix()
    for folder in sorted(LAYERS, key=len, reverse=True):
        if relative.startswith(folder + "/"):
            return folder
    raise AssertionError(f"{relative} is in no layer folder")


def _module_name(path: Path) -> str:
    folder = _folder(path)
    package = LAYERS[folder][0]
    rest = path.relative_to(ROOT / folder).with_suffix("").parts
    parts = [package, *rest]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer_of_module(module: str) -> int | None:
    """The layer of an imported driftline module; None for the bare package (its __init__ holds only
    the version)."""
    for package, layer in sorted(LAYERS.values(), key=lambda kv: -len(kv[0])):
        if module == package or module.startswith(package + "."):
            return layer
    return None


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
    return [
        p for folder in LAYERS for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.relative_to(ROOT).parts
    ]


def test_every_module_lives_in_a_layer_folder() -> None:
    """No loose modules beside the layers: driftline/ holds only its __init__ and the layer folders."""
    loose = [p.name for p in (ROOT / "driftline").glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"modules outside a layer folder: {loose}"
    packages = {p.name for p in (ROOT / "driftline").iterdir() if (p / "__init__.py").exists()}
    assert packages == {f.split("/")[1] for f in LAYERS if f.startswith("driftline/")}, packages


def test_layers_import_one_way() -> None:
    violations = []
    for path in _sources():
        module = _module_name(path)
        layer = LAYERS[_folder(path)][1]
        for imported in _imports(path):
            if imported.split(".")[0] in ("tasks", "flows", "checks", "deployments"):
                violations.append(f"{module} imports top-level {imported!r}; use driftline.{imported}")
            if not imported.startswith("driftline"):
                continue
            imported_layer = _layer_of_module(imported)
            if imported_layer is not None and imported_layer > layer:
                violations.append(f"{module} (layer {layer}) imports {imported} (layer {imported_layer})")
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
        # A deprecation warning (ModelProfile.extras) is no I/O.
        "warnings",
    }
    for path in (ROOT / "driftline" / "stats").rglob("*.py"):
        for imported in _imports(path):
            assert imported.split(".")[0] in allowed, f"{path.name} imports {imported}"


@pytest.mark.slow
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
