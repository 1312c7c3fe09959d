"""Only core/settings.py reads the environment.

Every other module gets a ``Settings`` value (or an explicit argument from a caller that has one),
so what a step does never depends on a variable read behind its back. The check reads each
module's syntax tree: ``os.environ`` (and ``.get``, ``[...]``), ``os.getenv``, ``os.environb``,
``from os import environ`` and the same through ``import os as x``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "panoptes_network"
SETTINGS = PACKAGE / "core" / "settings.py"
ENVIRONMENT_NAMES = {"environ", "environb", "getenv", "getenvb"}


def environment_reads(source: str) -> list[str]:
    """``line: what`` for each read of the process environment in ``source``."""
    tree = ast.parse(source)
    os_names = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name == "os"
    }
    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            reads += [f"{node.lineno}: from os import {a.name}" for a in node.names if a.name in ENVIRONMENT_NAMES]
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in ENVIRONMENT_NAMES
            and isinstance(node.value, ast.Name)
            and node.value.id in os_names
        ):
            reads.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return sorted(reads, key=lambda read: int(read.split(":")[0]))


@pytest.mark.parametrize(
    "source",
    [
        "import os\nos.environ['X']",
        "import os\nos.environ.get('X')",
        "import os\nos.getenv('X')",
        "import os\n{**os.environ}",
        "import os as system\nsystem.environ",
        "from os import environ",
        "from os import getenv as read",
    ],
)
def test_each_form_of_reading_the_environment_is_found(source: str) -> None:
    assert len(environment_reads(source)) == 1


@pytest.mark.parametrize(
    "source",
    [
        "import os\nos.getpid()\nos.path.join('a', 'b')",
        "settings.environ.get('X')",  # an attribute of something that is not the os module
        "from os import path",
    ],
)
def test_other_uses_of_os_are_not_reads(source: str) -> None:
    assert environment_reads(source) == []


def test_settings_reads_the_environment() -> None:
    """The check sees the one module allowed to read it (so it looks at the right files)."""
    assert environment_reads(SETTINGS.read_text())


def test_no_other_module_reads_the_environment() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 50
    found = {
        str(path.relative_to(PACKAGE)): reads
        for path in modules
        if path != SETTINGS and (reads := environment_reads(path.read_text()))
    }
    assert found == {}, "read the environment through core/settings.py (Settings) instead"
