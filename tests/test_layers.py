"""The package tree shows the layers, and the layers hold.

The README's layer table lists every module of ``src/panoptes_network/`` (and only modules
that exist); each module imports nothing its layer must not, read from its import statements
(the reasons: docs/ARCHITECTURE.md "Layers"); only ``core/settings.py`` reads the
environment; only the records module spells a collection name.
"""

from __future__ import annotations

import ast
import functools
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "panoptes_network"
LAYERS = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file())

# The adapter modules a step or the core may name: the interfaces. Every other module of
# adapters/ is an implementation (a cloud client, SQL, an external program), reached through
# ``Context`` only.
ADAPTER_INTERFACES = ("storage", "publisher", "metadata", "reference_catalog", "stamp_store")
IMPLEMENTATIONS = "adapter implementations"
ENVIRONMENT = "os.environ"  # also os.getenv, os.putenv, from os import environ

# What each layer must not import. A name covers everything below it (``google`` covers
# ``google.cloud.storage``); a layer of this package is named by its folder.
# fmt: off
MUST_NOT_IMPORT: dict[str, tuple[str, ...]] = {
    "core":       ("flask", "google",                             "steps", "drivers", "operations", "deploy", IMPLEMENTATIONS),
    "steps":      ("flask", "google", "sqlalchemy", "subprocess",          "drivers", "operations", "deploy", IMPLEMENTATIONS, ENVIRONMENT),
    "science":    ("flask", "google", "sqlalchemy", "subprocess", "steps", "drivers", "operations", "deploy", "adapters"),
    "adapters":   ("flask",                                       "steps", "drivers", "operations", "deploy"),
    "synthetic":  ("flask", "google",                             "steps", "drivers", "operations", "deploy"),
    "operations": ("flask",                                       "steps", "drivers",               "deploy"),
    "local":      (                                               "steps", "drivers", "operations", "deploy"),
    "deploy":     ("flask", "google",                             "steps", "drivers", "operations"),
    "drivers":    (                                                                                 "deploy",),
    "explorer":   (         "google", "sqlalchemy", "subprocess", "steps", "drivers", "operations", "deploy", IMPLEMENTATIONS, ENVIRONMENT, "local", "synthetic"),
}
# fmt: on
# An interface names no backend: implementations import those.
INTERFACES_MUST_NOT_IMPORT = ("google", "sqlalchemy", "sqlite3", "subprocess", IMPLEMENTATIONS)
# Science runs a program only in a module named for it.
PROGRAM_RUNNERS = {"science/solve_field.py": "solve-field"}
# The explorer reads headers as `panoptes-network header` does; the rest of science is the pipeline's.
EXPLORER_SCIENCE = ("panoptes_network.science.fits_header", "panoptes_network.science.header_metadata")
# Only the drivers start the local stack (and the stack's own modules use each other).
STACK_USERS = ("local", "drivers")
# The one reader of the environment; local/ sets the emulators' variables for the clients it
# builds and passes the environment on to the servers it starts.
ENVIRONMENT_READERS = ("core/settings.py", "local/")

RECORDS_MODULE = "core/records.py"
COLLECTIONS = frozenset({"images", "observations", "units", "objects", "leases", "counted_images"})
DATABASE_URL = re.compile(r"\b(sqlite|postgres(ql)?)(\+\w+)?://")


def modules() -> list[str]:
    """Every module, as its path in the package (``core/names.py``); package markers aside."""
    return sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def layer_of(module: str) -> str:
    """The layer folder of a module (``""`` for the package root's own modules)."""
    first, _, rest = module.partition("/")
    return first if rest else ""


@functools.cache
def tree(module: str) -> ast.Module:
    return ast.parse((PACKAGE / module).read_text(), module)


def qualified(name: str) -> str:
    """``steps`` -> ``panoptes_network.steps``; other names (``google``) stay as they are."""
    return f"panoptes_network.{name}" if name.split(".")[0] in LAYERS else name


def implementations() -> list[str]:
    adapters = {Path(m).stem for m in modules() if layer_of(m) == "adapters"}
    return [qualified(f"adapters.{name}") for name in sorted(adapters - set(ADAPTER_INTERFACES))]


def forbidden(names: tuple[str, ...]) -> list[str]:
    return [found for name in names for found in (implementations() if name == IMPLEMENTATIONS else [qualified(name)])]


def imported(module: str) -> set[str]:
    """What a module imports: modules, the names it takes from them, and ``os.environ`` when
    it touches the environment."""
    names: set[str] = set()
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, f"{module}: relative import"
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            names.add(f"os.{node.attr}")
    return {ENVIRONMENT if name in ("os.getenv", "os.putenv", "os.unsetenv") else name for name in names}


def covers(rule: str, name: str) -> bool:
    return name == rule or name.startswith(f"{rule}.")


def violations(module: str, rules: list[str]) -> list[str]:
    """``module: name`` for each forbidden import (a name taken from a forbidden module is not
    repeated)."""
    found = imported(module)
    bad = {name for name in found for rule in rules if covers(rule, name)}
    return [f"{module}: {name}" for name in sorted(bad) if name.rpartition(".")[0] not in bad]


def strings(module: str) -> Iterator[ast.Constant]:
    """The module's string constants (f-string parts included), docstrings left out."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree(module))
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


def readme_layer_table() -> dict[str, str]:
    """module path -> the layer row that names it, from the README's "Layers" table.

    A row's first cell names its folder (the first code span ending in ``/``; none for the
    package root), its second cell the folder's modules as code spans ending in ``.py``.
    """
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("\n### Layers\n") :].splitlines()
    start = next(i for i, line in enumerate(section) if line.startswith("|"))
    table = list(itertools.takewhile(lambda line: line.startswith("|"), section[start:]))
    named: dict[str, str] = {}
    for row in table[2:]:  # below the header and its separator
        layer_cell, modules_cell = row.strip("|").split("|")[:2]
        folder = next((span for span in re.findall(r"`([^`]+)`", layer_cell) if span.endswith("/")), "")
        for span in re.findall(r"`([^`]+\.py)`", modules_cell):
            assert f"{folder}{span}" not in named, f"{folder}{span} is named twice in the README"
            named[f"{folder}{span}"] = folder
    return named


def test_the_rules_name_real_layers_and_modules() -> None:
    assert set(MUST_NOT_IMPORT) <= set(LAYERS)
    assert {*STACK_USERS} <= set(LAYERS)
    adapters = {Path(m).stem for m in modules() if layer_of(m) == "adapters"}
    assert set(ADAPTER_INTERFACES) <= adapters
    assert set(PROGRAM_RUNNERS) <= set(modules())
    assert all(reader in modules() or reader.rstrip("/") in LAYERS for reader in ENVIRONMENT_READERS)


def test_the_readme_layer_table_lists_every_module() -> None:
    named = readme_layer_table()
    assert {layer_of(m) for m in modules()} <= {folder.rstrip("/") for folder in named.values()}
    unlisted = sorted(set(modules()) - set(named))
    assert not unlisted, f"add these to the README's layer table: {unlisted}"


def test_every_module_the_readme_names_exists() -> None:
    missing = sorted(m for m in readme_layer_table() if not (PACKAGE / m).is_file())
    assert not missing, f"the README's layer table names modules that do not exist: {missing}"


def rules_for(module: str) -> list[str]:
    """What ``module`` must not import: its layer's rules, less a subprocess for a program runner."""
    rules = forbidden(MUST_NOT_IMPORT[layer_of(module)])
    return [rule for rule in rules if not (rule == "subprocess" and module in PROGRAM_RUNNERS)]


@pytest.mark.parametrize("layer", sorted(MUST_NOT_IMPORT))
def test_a_layer_imports_nothing_it_must_not(layer: str) -> None:
    found = [v for m in modules() if layer_of(m) == layer for v in violations(m, rules_for(m))]
    assert not found, "\n".join(found)


def test_adapter_interfaces_name_no_backend() -> None:
    rules = forbidden(INTERFACES_MUST_NOT_IMPORT)
    found = [v for name in ADAPTER_INTERFACES for v in violations(f"adapters/{name}.py", rules)]
    assert not found, "\n".join(found)


def test_only_the_drivers_start_the_local_stack() -> None:
    found = [v for m in modules() if layer_of(m) not in STACK_USERS for v in violations(m, [qualified("local")])]
    assert not found, "\n".join(found)


def test_the_explorer_uses_only_the_header_reading_of_science() -> None:
    found = [
        f"{m}: {name}"
        for m in modules()
        if layer_of(m) == "explorer"
        for name in sorted(imported(m))
        if covers(qualified("science"), name) and not any(covers(allowed, name) for allowed in EXPLORER_SCIENCE)
    ]
    assert not found, "\n".join(found)


def test_only_settings_reads_the_environment() -> None:
    readers = [m for m in modules() if not any(m == r or m.startswith(r) for r in ENVIRONMENT_READERS)]
    found = [v for m in readers for v in violations(m, [ENVIRONMENT])]
    assert not found, "\n".join(found)


def test_no_step_builds_a_database_url() -> None:
    found = [
        f"{m}:{node.lineno}: {node.value!r}"
        for m in modules()
        if layer_of(m) == "steps"
        for node in strings(m)
        if DATABASE_URL.search(node.value)
    ]
    assert not found, "\n".join(found)


def test_only_the_records_module_spells_a_collection_name() -> None:
    found = [
        f"{m}:{node.lineno}: {node.value!r}"
        for m in modules()
        if m != RECORDS_MODULE
        for node in strings(m)
        if node.value in COLLECTIONS
    ]
    found.sort(key=lambda line: (line.split(":")[0], int(line.split(":")[1])))
    assert not found, "\n".join(found)


def test_the_checks_see_what_they_look_for() -> None:
    """The AST reading itself: imports, names taken from modules, the environment, strings."""
    assert {"panoptes_network.core.context", "panoptes_network.core.context.Context"} <= imported(
        "steps/plate_solve.py"
    )
    assert ENVIRONMENT in imported("core/settings.py")
    assert "google.cloud.storage" in imported("adapters/gcs_storage.py")
    assert covers("google", "google.cloud.storage") and not covers("google", "googleapis")
    assert qualified("adapters.gcs_storage") in implementations()
    assert qualified("adapters.storage") not in implementations()
    assert "subprocess" in imported("science/solve_field.py") and "subprocess" not in rules_for(
        "science/solve_field.py"
    )
    assert "subprocess" in rules_for("science/source_detection.py")
    assert not any(node.value.startswith("The messages that cross") for node in strings("core/messages.py"))
    assert any(node.value == "schema_version" for node in strings("core/messages.py"))
