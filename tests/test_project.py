"""Project-wide rules, checked on every run: layering, lint, types, generated code freshness."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "raftkv"

# Who may import whom inside raftkv (DESIGN.md "Layers": imports point down only). Top-level
# modules (raftkv.metrics, raftkv.errors, raftkv.logging_setup) are named by their module name.
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "pb": {"pb"},
    "storage": {"core", "storage", "pb"},
    "kv": {"core", "storage", "kv", "pb"},
    "node": {"core", "storage", "kv", "node", "pb", "metrics", "errors"},
    "transport": {"core", "storage", "kv", "node", "transport", "pb", "metrics", "errors"},
    "server": {
        "core", "storage", "kv", "node", "transport", "server", "pb", "metrics", "errors",
        "logging_setup",
    },
    "client": {"client", "pb", "errors"},
    "loadgen": {"loadgen", "client", "pb", "errors"},
    "cli": {
        "core", "storage", "kv", "node", "transport", "server", "client", "cli", "pb", "metrics",
        "errors", "logging_setup", "loadgen",
    },
    "metrics": {"metrics"},
    "errors": {"errors"},
    "logging_setup": {"logging_setup"},
}
CORE_FORBIDDEN = {"asyncio", "grpc", "plyvel", "time", "prometheus_client", "threading", "socket"}


def _layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0].removesuffix(".py") if len(parts) > 1 or parts[0] != "__init__.py" else ""


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _sources() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "pb" not in p.relative_to(PACKAGE).parts[:1]]


def test_layers_import_downwards_only() -> None:
    violations = []
    for path in _sources():
        layer = _layer_of(path)
        if not layer:
            continue
        allowed = ALLOWED.get(layer)
        assert allowed is not None, f"{path}: layer {layer!r} missing from ALLOWED"
        for name in _imports(path):
            if name == "raftkv" or not name.startswith("raftkv."):
                continue
            target = name.split(".")[1]
            if target not in allowed:
                violations.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not violations, "layering violations:\n" + "\n".join(violations)


def test_core_uses_only_the_standard_library() -> None:
    violations = []
    for path in (PACKAGE / "core").rglob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in CORE_FORBIDDEN or (
                top not in sys.stdlib_module_names and top != "raftkv"
            ):
                violations.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not violations, "the core must stay sans-I/O:\n" + "\n".join(violations)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_is_clean() -> None:
    result = _run("ruff", "check", "raftkv", "tests", "bench", "proto")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_protobuf_modules_are_fresh() -> None:
    result = subprocess.run(
        [sys.executable, "proto/generate.py", "--check"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", ["raftkv", "raftkv-cli"])
def test_console_scripts_print_help(script: str) -> None:
    module = {"raftkv": "raftkv.cli.server_main", "raftkv-cli": "raftkv.cli.client_main"}[script]
    result = subprocess.run(
        [sys.executable, "-c", f"import {module} as m; m.main()", "--help"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
