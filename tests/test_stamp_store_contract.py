"""The stamp store's contract, on every implementation: ``SqlStampStore`` on SQLite (embedded)
and on the real PostgreSQL test server (the cloud's), in a schema of this module's own."""

from __future__ import annotations

import concurrent.futures
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from fixtures_servers import POSTGRES
from panoptes_network.adapters.sql_stamp_store import SqlStampStore
from panoptes_network.adapters.sql_tables import define_tables, engine_for
from panoptes_network.adapters.stamp_store import StampStore
from panoptes_network.core.errors import TransientError
from panoptes_network.local.emulators import free_port
from sample_stamps import stamp_row


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StampStore:
    if request.param == "sqlite":
        return SqlStampStore(f"sqlite:///{tmp_path / 'stamps.sqlite'}")
    return SqlStampStore(POSTGRES, request.getfixturevalue("postgres_schema"))


def new_image() -> str:
    return f"PAN001_XXXXXX_{uuid.uuid4().hex[:8]}"


def test_the_store_names_its_database(store: StampStore, request: pytest.FixtureRequest) -> None:
    assert store.database == request.node.callspec.params["store"]


def test_rows_come_back_as_written_pixels_included(store: StampStore) -> None:
    image = new_image()
    pixels = np.arange(120, dtype=np.float32).reshape(10, 12) / 7 - 50.5  # not square: width != height
    written = [stamp_row(image, i, pixels + i) for i in (2, 0, 1)]
    assert store.replace(image, written) == 3
    rows = store.rows(image)
    assert [row["source_id"] for row in rows] == [0, 1, 2]
    for row in rows:
        expected = next(w for w in written if w["source_id"] == row["source_id"])
        assert {k: v for k, v in row.items() if k != "pixels"} == {k: v for k, v in expected.items() if k != "pixels"}
        assert row["pixels"].dtype == np.float32 and np.array_equal(row["pixels"], expected["pixels"])
    assert store.count(image) == 3


def test_an_image_without_rows_reads_empty(store: StampStore) -> None:
    assert store.rows(new_image()) == [] and store.count(new_image()) == 0


def test_replacing_an_images_stamps_never_duplicates_them(store: StampStore) -> None:
    image, other = new_image(), new_image()
    pixels = np.arange(100, dtype=np.float32).reshape(10, 10) - 50.5
    store.replace(image, [stamp_row(image, i, pixels) for i in range(5)])
    store.replace(other, [stamp_row(other, 0, pixels)])
    assert store.replace(image, [stamp_row(image, i, pixels * 2) for i in range(3)]) == 3
    rows = store.rows(image)
    assert [r["source_id"] for r in rows] == [0, 1, 2]
    assert np.array_equal(rows[2]["pixels"], pixels * 2)
    assert store.count(other) == 1
    assert store.replace(image, []) == 0 and store.count(image) == 0  # an image that lost its matches


def test_concurrent_replacements_of_one_images_stamps_take_turns(store: StampStore) -> None:
    image = new_image()
    pixels = np.zeros((10, 10), dtype=np.float32)
    store.replace(new_image(), [])  # the tables exist before the race
    start = threading.Barrier(4)

    def replace(attempt: int) -> int:
        start.wait()
        return store.replace(image, [stamp_row(image, i, pixels + attempt) for i in range(200)])

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert list(pool.map(replace, range(4))) == [200] * 4  # none failed on a duplicate key
    stored = store.rows(image)
    assert [row["source_id"] for row in stored] == list(range(200))
    assert len({row["pixels"].tobytes() for row in stored}) == 1  # all from one attempt, not a mix


def test_a_failed_replacement_keeps_the_previous_rows(store: StampStore) -> None:
    image = new_image()
    pixels = np.zeros((10, 10), np.float32)
    store.replace(image, [stamp_row(image, 0, pixels)])
    duplicate_key = [stamp_row(image, 1, pixels), stamp_row(image, 1, pixels)]
    with pytest.raises(sa.exc.IntegrityError):
        store.replace(image, duplicate_key)
    assert [r["source_id"] for r in store.rows(image)] == [0]


def test_an_unreachable_database_is_a_transient_failure() -> None:
    image = new_image()
    store = SqlStampStore(f"postgresql://postgres@127.0.0.1:{free_port()}/test", "absent")
    with pytest.raises(TransientError, match="unavailable"):
        store.replace(image, [stamp_row(image, 0, np.zeros((10, 10), np.float32))])
    with pytest.raises(TransientError, match="unavailable"):
        store.rows(image)


@pytest.fixture(params=["sqlite", "postgresql"])
def older_table(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStampStore]:
    """A store whose ``stamps`` table an older version made: without the ``saturated`` column."""
    if request.param == "sqlite":
        store, schema = SqlStampStore(f"sqlite:///{tmp_path / 'stamps.sqlite'}"), None
    else:
        schema = f"test_old_{uuid.uuid4().hex[:10]}"
        store = SqlStampStore(POSTGRES, schema)
    engine = engine_for(store.url)
    stamps = define_tables(schema).tables[f"{schema}.stamps" if schema else "stamps"]
    ddl = str(sa.schema.CreateTable(stamps).compile(dialect=engine.dialect))
    with engine.begin() as connection:
        if schema:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        connection.exec_driver_sql("\n".join(line for line in ddl.splitlines() if "saturated" not in line))
    yield store
    if schema:
        with engine.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


def test_a_table_without_the_saturated_column_is_refused_with_the_statement_that_adds_it(
    older_table: SqlStampStore,
) -> None:
    image = new_image()
    with pytest.raises(TransientError, match="ALTER TABLE") as refused:
        older_table.count(image)
    (statement,) = re.findall(r"ALTER TABLE [^;]+", str(refused.value))
    assert "saturated BOOLEAN" in statement and "NOT NULL" in statement
    with engine_for(older_table.url).begin() as connection:
        connection.exec_driver_sql(statement)
    row = stamp_row(image, 0, np.zeros((10, 10), np.float32)) | {"saturated": True}
    assert older_table.replace(image, [row]) == 1 and older_table.rows(image)[0]["saturated"] is True
