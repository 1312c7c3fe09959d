"""Postage-stamp rows in SQL: written per image, replacing whatever that image had before.

One code path for PostgreSQL (Cloud SQL, ``DATABASE_URL``) and SQLite (embedded,
``{data_dir}/stamps.sqlite``). Reprocessing an image deletes its rows and inserts the new ones
in one transaction, so readers see the old set or the new one, never both or a duplicate.
Two such transactions for one image (attempts overlapping after a lease takeover) take turns:
PostgreSQL through a per-image advisory lock, SQLite because it has one writer at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from panoptes_network.adapters.sql_tables import engine_for, ready_table
from panoptes_network.core.errors import TransientError


def pixels_to_bytes(pixels: np.ndarray) -> bytes:
    """A stamp's pixels as stored: float32 little-endian, row-major."""
    return np.ascontiguousarray(pixels, dtype="<f4").tobytes()


def pixels_from_bytes(data: bytes, width: int, height: int) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").reshape(height, width)


def replace_image_stamps(url: str, schema: str | None, image_id: str, rows: Sequence[Mapping[str, Any]]) -> int:
    """Replace every stamp row of ``image_id`` with ``rows`` in one transaction; return the count."""
    table = ready_table(url, schema, "stamps")
    try:
        with engine_for(url).begin() as connection:
            if connection.dialect.name == "postgresql":  # held until commit
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(f"stamps:{image_id}"))))
            connection.execute(sa.delete(table).where(table.c.image_id == image_id))
            if rows:
                connection.execute(sa.insert(table), [dict(row) for row in rows])
    except sa.exc.OperationalError as exc:
        raise TransientError(f"stamp database unavailable: {exc.orig or exc}", exc) from exc
    return len(rows)


def image_stamps(url: str, schema: str | None, image_id: str) -> list[dict[str, Any]]:
    """The stored rows of one image, by source id."""
    table = ready_table(url, schema, "stamps")
    with engine_for(url).connect() as connection:
        result = connection.execute(sa.select(table).where(table.c.image_id == image_id).order_by(table.c.source_id))
        return [dict(row._mapping) for row in result]
