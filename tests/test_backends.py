"""The settings choose each backend of a context: the stamps database and the reference catalog
(in the data directory unless ``DATABASE_URL`` says otherwise), the same for embedded and cloud."""

from __future__ import annotations

from pathlib import Path

import pytest

from panoptes_network.adapters.backends import cloud_context, local_context, reference_catalog
from panoptes_network.adapters.sql_catalog import SqlCatalog
from panoptes_network.adapters.sql_stamp_store import SqlStampStore
from panoptes_network.adapters.tycho2_index_catalog import Tycho2IndexCatalog
from panoptes_network.core.settings import Settings

POSTGRES_URL = "postgresql://user@db.example:5432/panoptes"


def test_embedded_defaults_are_sqlite_in_the_data_dir_and_the_tycho2_index(tmp_path: Path) -> None:
    context, _ = local_context(Settings(data_dir=tmp_path), tmp_path)
    assert context.stamps == SqlStampStore(f"sqlite:///{tmp_path.resolve() / 'stamps.sqlite'}", None)
    assert context.stamps.database == "sqlite"
    assert context.catalog == Tycho2IndexCatalog()
    assert not (tmp_path / "stamps.sqlite").exists()  # nothing opened before it is used


def test_the_environment_names_the_database_its_schema_and_the_catalog(tmp_path: Path) -> None:
    env = {
        "PANOPTES_DATA_DIR": str(tmp_path),
        "DATABASE_URL": POSTGRES_URL,
        "PANOPTES_DATABASE_SCHEMA": "test_instance",
        "PANOPTES_REFERENCE_CATALOG": "sql",
    }
    context = cloud_context(Settings.from_env(env))  # builds without any network
    assert context.stamps == SqlStampStore(POSTGRES_URL, "test_instance")
    assert context.stamps.database == "postgresql"
    assert context.catalog == SqlCatalog(POSTGRES_URL, "test_instance")


def test_an_unknown_reference_catalog_fails_when_the_context_is_built(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PANOPTES_REFERENCE_CATALOG"):
        reference_catalog(Settings.from_env({"PANOPTES_REFERENCE_CATALOG": "gaia"}))
