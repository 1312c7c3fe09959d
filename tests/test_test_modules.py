"""The tests' own rule: no test module imports another. Shared code lives in helper modules
without the ``test_`` prefix (fixtures registered by conftest.py's ``pytest_plugins``)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_test_module_imports_another() -> None:
    offenders = {
        path.name: sorted(name for name in imported_modules(path) if name.startswith("test_"))
        for path in sorted(TESTS.rglob("*.py"))
    }
    assert {name: imports for name, imports in offenders.items() if imports} == {}


def test_the_rule_sees_both_import_forms(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import test_a\nfrom test_b import x\nfrom helper import y\nimport os.path\n")
    assert imported_modules(sample) == {"test_a", "test_b", "helper", "os"}
