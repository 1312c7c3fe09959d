"""Each service image installs only what its service imports: pyproject.toml's common dependencies
and one extra per service, named after it (``bin/install service NAME``).

Checked on the source, not in a clean venv per service: following every ``import`` statement from
the service's entry points (function-level imports included, which importing the step would not
run) takes a second where six venvs would take minutes of the suite; the `containers` test then
runs every step for real inside its image, which has nothing else installed.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from panoptes_network.core.topology import load_topology

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "panoptes_network"
SERVICE_ENTRY = "panoptes_network.drivers.service"  # every image's main.py: create_service(NAME)
# Loaded by name rather than imported: SQLAlchemy's postgresql+psycopg dialect (sql_tables.py), for the
# stamps and the SQL reference catalog (process-observation reads the catalog for its stamp cube).
LOADED_BY_NAME = {"plate-solver": {"psycopg"}, "process-observation": {"psycopg"}}
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SERVICES = list(load_topology().service_names)


def entry_module(service: str) -> str:
    """What the service runs beyond the factory: its step, or its web app's module."""
    web = load_topology().web_service(service)
    return web.module if web is not None else load_topology().service(service).step


def module_file(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def executed_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Import statements, except those under ``if TYPE_CHECKING:`` (never run)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def third_party_imports(roots: list[str]) -> dict[str, str]:
    """Top-level third-party module -> the first project module importing it, over everything
    ``roots`` import, transitively."""
    seen: set[str] = set()
    found: dict[str, str] = {}
    pending = list(roots)
    while pending:
        module = pending.pop()
        path = module_file(module)
        if module in seen or path is None:
            continue
        seen.add(module)
        parts = module.split(".")
        for parent in range(1, len(parts)):  # importing a.b.c runs a/__init__ and a/b/__init__
            pending.append(".".join(parts[:parent]))
        for node in executed_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level or node.module is None:
                    continue
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                names = [alias.name for alias in node.names]
            for name in names:
                top = name.split(".")[0]
                if top == PACKAGE:
                    pending.append(name)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, module)
    return found


def canonical(name: str) -> str:
    return name.lower().replace("_", "-")


def installed_closure(requirements: list[str]) -> set[str]:
    """Every distribution pip installs for ``requirements`` (their dependencies, transitively)."""
    closure: set[str] = set()
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        name = canonical(requirement.name)
        if name in closure:
            continue
        closure.add(name)
        for text in importlib.metadata.requires(requirement.name) or []:
            dependency = Requirement(text)
            extras = requirement.extras or {""}
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": e}) for e in extras):
                pending.append(dependency)
    return closure


def service_requirements(service: str) -> list[str]:
    return [*PROJECT["dependencies"], *PROJECT["optional-dependencies"][service]]


@functools.cache
def module_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()  # slow: reads every installed distribution


def distributions_of(module: str) -> set[str]:
    return {canonical(d) for d in module_distributions().get(module, [])}


def test_every_service_has_its_extra() -> None:
    assert [s for s in SERVICES if s not in PROJECT["optional-dependencies"]] == []


@pytest.mark.parametrize("service", SERVICES)
def test_the_image_installs_everything_the_service_imports(service: str) -> None:
    step = entry_module(service)
    installed = installed_closure(service_requirements(service))
    missing = {
        module: f"imported by {importer}"
        for module, importer in third_party_imports([SERVICE_ENTRY, step]).items()
        if not distributions_of(module) & installed
    }
    assert missing == {}, f"add to the '{service}' extra in pyproject.toml"


@pytest.mark.parametrize("service", SERVICES)
def test_the_extra_holds_only_what_the_service_imports(service: str) -> None:
    step = entry_module(service)
    imported = set(third_party_imports([SERVICE_ENTRY, step])) | LOADED_BY_NAME.get(service, set())
    extra = [Requirement(text) for text in PROJECT["optional-dependencies"][service]]
    unused = [r.name for r in extra if not any(canonical(r.name) in distributions_of(m) for m in imported)]
    assert unused == [], f"the '{service}' image installs what it never imports"


def test_the_walk_follows_function_level_imports_and_skips_type_checking(tmp_path: Path) -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import numpy\ndef f():\n    import scipy\n"
    )
    assert [a.name for node in executed_imports(tree) if isinstance(node, ast.Import) for a in node.names] == ["scipy"]


def test_a_service_that_imports_a_missing_package_is_found() -> None:
    """The walk sees pyarrow behind the plate-solver's step, which image-received does not install."""
    found = third_party_imports([SERVICE_ENTRY, load_topology().service("plate-solver").step])
    assert "pyarrow" in found
    assert not distributions_of("pyarrow") & installed_closure(service_requirements("image-received"))
