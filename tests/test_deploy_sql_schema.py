"""The Cloud SQL schema file ``bin/deploy infra`` imports, applied to a real PostgreSQL.

Cloud SQL cannot run here, the test server can (``PANOPTES_TEST_POSTGRES``, as for the
plate-solver's database tests). The committed file is run as a SQL import runs it: the whole
file, unqualified names, into the session's schema (here a fresh one by ``search_path``, in
Cloud SQL the database's ``public``). It must apply twice without error and without touching
the rows, give exactly the tables the plate-solver's own code creates from ``sql_tables``,
and let that code write and read its stamps.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from fixtures_servers import POSTGRES, postgres_engine
from panoptes_network.adapters.sql_tables import define_tables, engine_for, ready_tables
from panoptes_network.adapters.stamp_database import image_stamps, pixels_from_bytes, replace_image_stamps
from panoptes_network.deploy.sql_schema import SCHEMA_FILE, schema_file_text
from plate_solver_inputs import stamp_row

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def schemas() -> Iterator[tuple[str, str]]:
    """Two fresh schemas on the test server: one for the imported file, one for the tables the
    plate-solver creates itself; both dropped afterwards."""
    engine = postgres_engine()
    run = uuid.uuid4().hex[:10]
    names = (f"test_import_{run}", f"test_solver_{run}")
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{names[0]}"'))  # the solver's is created by its code
    yield names
    with engine.begin() as connection:
        for name in names:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


def import_schema_file(schema: str, text: str) -> None:
    """Run the whole file in one go, its unqualified names landing in ``schema``."""
    with engine_for(POSTGRES).begin() as connection:
        connection.exec_driver_sql(f'SET LOCAL search_path TO "{schema}"')
        connection.exec_driver_sql(text)


def structure(schema: str) -> dict[str, list[tuple]]:
    """Columns (order, type, length, nullability, default), primary keys and index definitions
    (without the schema, which sql_tables also puts in index names when one is given)."""
    queries = {
        "columns": """SELECT table_name, ordinal_position, column_name, data_type, character_maximum_length,
                      is_nullable, column_default FROM information_schema.columns WHERE table_schema = :s""",
        "primary keys": """SELECT k.table_name, k.column_name, k.ordinal_position
                           FROM information_schema.table_constraints c JOIN information_schema.key_column_usage k
                           USING (constraint_schema, constraint_name)
                           WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = :s""",
        "indexes": """SELECT tablename, replace(indexname, 'ix_' || :s || '_', 'ix_'),
                      replace(replace(indexdef, :s || '.', ''), 'ix_' || :s || '_', 'ix_')
                      FROM pg_indexes WHERE schemaname = :s""",
    }
    with engine_for(POSTGRES).connect() as connection:
        return {key: sorted(map(tuple, connection.execute(sa.text(q), {"s": schema}))) for key, q in queries.items()}


def test_the_schema_file_applies_twice_and_gives_the_plate_solvers_tables(schemas: tuple[str, str]) -> None:
    imported, solver = schemas
    text = (ROOT / SCHEMA_FILE).read_text()
    assert text == schema_file_text(), "stale: run bin/deploy files"

    import_schema_file(imported, text)
    image = f"PAN001_XXXXXX_{uuid.uuid4().hex[:8]}"
    pixels = np.arange(100, dtype=np.float32).reshape(10, 10) - 50.5
    assert replace_image_stamps(POSTGRES, imported, image, [stamp_row(image, i, pixels) for i in range(3)]) == 3
    imported_structure = structure(imported)
    import_schema_file(imported, text)  # the import of an unchanged or changed schema, again
    assert structure(imported) == imported_structure
    rows = image_stamps(POSTGRES, imported, image)
    assert [row["source_id"] for row in rows] == [0, 1, 2], "importing again keeps the rows"
    assert np.array_equal(pixels_from_bytes(rows[1]["pixels"], 10, 10), pixels)

    ready_tables(POSTGRES, solver)  # what the plate-solver creates where no schema was imported
    assert structure(solver) == imported_structure
    defined = {table.name: [column.name for column in table.columns] for table in define_tables().sorted_tables}
    columns: dict[str, list[str]] = {}
    for table, _, column, *_ in imported_structure["columns"]:
        columns.setdefault(table, []).append(column)
    assert columns == defined
    assert {name for _, name, _ in imported_structure["indexes"]} >= {"ix_stamps_sequence_id", "ix_stamps_catalog_id"}
