"""SQL over the data dir's Parquet products: each of ``core.parquet_tables`` as a DuckDB view over
every matching file under its bucket folder (DuckDB reads Parquet in place, in this process).

A table whose files do not exist yet (no lightcurves before that step ran) is left out and
listed as such. A view without a ``sequence_id`` column gets one from the file's folder, so every
table joins on it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb

from panoptes_network.core.parquet_tables import PARQUET_TABLES, ParquetTable
from panoptes_network.core.settings import Settings

SEQUENCE_FROM_PATH = (
    r"regexp_replace(regexp_extract(filename, '(PAN\d{3}/[0-9A-Za-z]{6}/\d{8}T\d{6})/[^/]*$', 1), '/', '_', 'g')"
)


@dataclasses.dataclass(frozen=True)
class View:
    table: ParquetTable
    files: int  # how many files it reads (0: not defined)


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def open_views(data_dir: Path, settings: Settings) -> tuple[duckdb.DuckDBPyConnection, list[View]]:
    """An in-memory DuckDB with a view per table that has files under ``data_dir``."""
    connection = duckdb.connect(":memory:")
    views = []
    for table in PARQUET_TABLES:
        folder = data_dir / "buckets" / settings.bucket(table.bucket)
        files = sum(1 for _ in folder.rglob(f"*{table.suffix}")) if folder.is_dir() else 0
        if files:
            source = f"read_parquet({quoted(f'{folder}/**/*{table.suffix}')}, union_by_name = true, filename = true)"
            columns = {row[0] for row in connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
            sequence = "" if "sequence_id" in columns else f", {SEQUENCE_FROM_PATH} AS sequence_id"
            connection.execute(f"CREATE VIEW {table.name} AS SELECT * EXCLUDE (filename){sequence} FROM {source}")
        views.append(View(table, files))
    return connection, views
