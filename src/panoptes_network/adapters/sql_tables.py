"""The plate-solver's SQL tables, one definition for PostgreSQL (Cloud SQL) and SQLite (embedded).

SQLAlchemy Core keeps one code path for both: the same table objects, the same statements;
only the URL differs. ``postgresql://`` URLs use psycopg 3. A schema name (PostgreSQL only)
lets tests and test instances work side by side in one database.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from panoptes_network.core.errors import TransientError

_create_lock = threading.Lock()

# Stamp columns: catalog values, measured values (x, y 0-based full-frame px), separation.
REQUIRED_FLOATS = ("catalog_ra", "catalog_dec", "x", "y", "ra", "dec", "flux", "separation_arcsec")
OPTIONAL_FLOATS = ("catalog_mag", "catalog_x", "catalog_y", "flux_err", "peak", "fwhm", "ellipticity")


def normalised_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever driver the URL names (or does not)."""
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def backend_name(url: str) -> str:
    """``postgresql`` or ``sqlite``, whatever driver the URL names."""
    return sa.engine.make_url(url).get_backend_name()


@contextlib.contextmanager
def unavailable_is_transient(what: str) -> Iterator[None]:
    """A database that cannot be reached (or dropped the connection) is a transient failure."""
    try:
        yield
    except sa.exc.OperationalError as exc:
        raise TransientError(f"{what} unavailable: {exc.orig or exc}", exc) from exc


@functools.lru_cache(maxsize=16)
def engine_for(url: str) -> Engine:
    """One pooled engine per database URL and process (created lazily, on first use).

    An SQLite file's folder is created, as the embedded data directory's other files are."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(normalised_url(url), pool_pre_ping=True)


def define_tables(schema: str | None = None) -> sa.MetaData:
    """The ``stamps`` and ``reference_stars`` tables, in ``schema`` when given."""
    metadata = sa.MetaData(schema=schema)
    sa.Table(
        "stamps",
        metadata,
        sa.Column("image_id", sa.String(64), primary_key=True),
        sa.Column("source_id", sa.Integer, primary_key=True),  # row of the image's source list
        sa.Column("sequence_id", sa.String(64), nullable=False, index=True),
        sa.Column("catalog", sa.String(32), nullable=False),
        sa.Column("catalog_id", sa.String(64), nullable=False, index=True),
        *(sa.Column(name, sa.Float, nullable=False) for name in REQUIRED_FLOATS),
        *(sa.Column(name, sa.Float) for name in OPTIONAL_FLOATS),
        sa.Column("flags", sa.Integer, nullable=False),
        sa.Column("duplicate", sa.Boolean, nullable=False),
        # a saturated pixel in the star's footprint: its centroid and flux are not to be trusted
        sa.Column("saturated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("stamp_x0", sa.Integer, nullable=False),
        sa.Column("stamp_y0", sa.Integer, nullable=False),
        sa.Column("stamp_width", sa.Integer, nullable=False),
        sa.Column("stamp_height", sa.Integer, nullable=False),
        sa.Column("pixels", sa.LargeBinary, nullable=False),  # float32 little-endian, row-major
    )
    sa.Table(
        "reference_stars",
        metadata,
        sa.Column("picid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ra", sa.Float, nullable=False),
        sa.Column("dec", sa.Float, nullable=False, index=True),
        sa.Column("vmag", sa.Float),
        sa.Column("tmag", sa.Float),
        sa.Column("gaia_id", sa.BigInteger),
        sa.Column("twomass_id", sa.String(32)),
    )
    return metadata


@functools.lru_cache(maxsize=64)
def ready_tables(url: str, schema: str | None) -> sa.MetaData:
    """The tables, created in the database on first use (once per process, URL and schema)."""
    metadata = define_tables(schema)
    engine = engine_for(url)
    with _create_lock:
        try:
            with unavailable_is_transient("database"), engine.begin() as connection:
                if schema is not None and engine.dialect.name == "postgresql":
                    connection.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
                metadata.create_all(connection, checkfirst=True)
        except sa.exc.IntegrityError:  # another worker created them between check and create
            metadata.create_all(engine, checkfirst=True)
    with unavailable_is_transient("database"), engine.connect() as connection:
        missing = missing_columns(connection, metadata)
    if missing:
        raise TransientError(
            "the database's tables predate columns this version writes; add them (README, "
            f"'Upgrading the stamps table'), then replay the dead letters: {'; '.join(missing)}"
        )
    return metadata


def missing_columns(connection: sa.Connection, metadata: sa.MetaData) -> list[str]:
    """``ALTER TABLE ... ADD COLUMN ...`` for each defined column an existing table lacks.

    ``CREATE TABLE IF NOT EXISTS`` leaves a table made by an older version as it was; its
    inserts would then fail as if the database were down."""
    inspector = sa.inspect(connection)
    statements = []
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name, schema=table.schema)}
        for column in table.columns:
            if column.name not in present:
                definition = sa.schema.CreateColumn(column).compile(dialect=connection.dialect)
                statements.append(f"ALTER TABLE {table.fullname} ADD COLUMN {definition}")
    return statements


def ready_table(url: str, schema: str | None, name: str) -> sa.Table:
    """One of the tables (``stamps`` or ``reference_stars``), ready to use."""
    return ready_tables(url, schema).tables[f"{schema}.{name}" if schema else name]
