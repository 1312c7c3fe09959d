"""The SQL reference catalog: the table ``reference_stars`` (PostgreSQL in the cloud, SQLite
embedded), a TESS Input Catalog subset (picid, ra, dec, vmag, tmag, gaia_id, twomass_id) filled
by ``panoptes-network catalog load FILE`` from CSV or FITS (``SqlCatalog.load_file``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from astropy.table import Table

from panoptes_network.adapters.sql_tables import backend_name, engine_for, ready_table, unavailable_is_transient
from panoptes_network.science.catalog_stars import CatalogStars, angular_distance


@dataclasses.dataclass(frozen=True)
class SqlCatalog:
    """``reference_stars`` in the SQL database (PostgreSQL in the cloud, SQLite locally)."""

    url: str
    schema: str | None = None
    name: str = "tic"

    @property
    def database(self) -> str:
        """``postgresql`` or ``sqlite``."""
        return backend_name(self.url)

    def cone(self, ra: float, dec: float, radius_deg: float, mag_range: tuple[float, float]) -> CatalogStars:
        table = ready_table(self.url, self.schema, "reference_stars")
        query = sa.select(table).where(
            table.c.dec.between(dec - radius_deg, dec + radius_deg),
            table.c.vmag.between(*mag_range),
            _ra_window(table.c.ra, ra, dec, radius_deg),
        )
        with unavailable_is_transient("catalog database"), engine_for(self.url).connect() as connection:
            rows = connection.execute(query.order_by(table.c.picid)).all()
        columns = {column.name: np.array([row._mapping[column] for row in rows]) for column in table.c}
        stars_ra = columns["ra"].astype(np.float64)
        stars_dec = columns["dec"].astype(np.float64)
        keep = angular_distance(ra, dec, stars_ra, stars_dec) <= radius_deg
        extra = {key: columns[key][keep] for key in ("vmag", "tmag", "gaia_id", "twomass_id")}
        ids = np.array([str(p) for p in columns["picid"][keep]], dtype=object)
        return CatalogStars(
            self.name, ids, stars_ra[keep], stars_dec[keep], columns["vmag"][keep].astype(np.float64), extra
        )

    def load_file(self, path: Path, chunk: int = 10_000) -> int:
        """Load a CSV or FITS table into ``reference_stars``; rows with a known picid are replaced."""
        table = Table.read(path, format="ascii.csv" if path.suffix.lower() in (".csv", ".txt") else None)
        target = ready_table(self.url, self.schema, "reference_stars")
        count = 0
        with unavailable_is_transient("catalog database"), engine_for(self.url).begin() as connection:
            for rows in _catalog_rows(table, chunk):
                connection.execute(sa.delete(target).where(target.c.picid.in_([row["picid"] for row in rows])))
                connection.execute(sa.insert(target), rows)
                count += len(rows)
        return count


def _ra_window(column: sa.ColumnElement[float], ra: float, dec: float, radius_deg: float) -> sa.ColumnElement[bool]:
    """A cheap RA pre-filter for the cone, wrapping through 0/360 and opening near the poles."""
    if abs(dec) + radius_deg >= 89.0:
        return sa.true()
    half = radius_deg / np.cos(np.radians(abs(dec) + radius_deg))
    low, high = ra - half, ra + half
    if low < 0:
        return sa.or_(column >= low + 360.0, column <= high)
    if high >= 360:
        return sa.or_(column >= low, column <= high - 360.0)
    return column.between(low, high)


# Accepted spellings of each reference_stars column in a TIC export (case-insensitive).
COLUMN_NAMES = {
    "picid": ("picid", "id", "tic_id", "ticid"),
    "ra": ("ra", "ra_orig", "raj2000"),
    "dec": ("dec", "dec_orig", "dej2000"),
    "vmag": ("vmag", "v_mag"),
    "tmag": ("tmag", "t_mag"),
    "gaia_id": ("gaia_id", "gaia", "gaia_dr2", "source_id"),
    "twomass_id": ("twomass_id", "twomass", "2mass"),
}
REQUIRED_COLUMNS = ("picid", "ra", "dec")


def _catalog_rows(table: Table, chunk: int) -> Iterator[list[dict[str, Any]]]:
    """Rows for ``reference_stars`` in chunks; missing values (masked, NaN) become NULL."""
    lower = {name.lower(): name for name in table.colnames}
    found = {key: next((lower[n] for n in names if n in lower), None) for key, names in COLUMN_NAMES.items()}
    missing = [key for key in REQUIRED_COLUMNS if found[key] is None]
    if missing:
        raise ValueError(f"catalog file lacks column(s) {', '.join(missing)} (has {', '.join(table.colnames)})")
    for start in range(0, len(table), chunk):
        part = table[start : start + chunk]
        rows = []
        for record in part:
            row: dict[str, Any] = {}
            for key, column in found.items():
                value: Any = None if column is None else record[column]
                absent = value is None or value is np.ma.masked or value == ""  # no column, or no value
                if absent or (isinstance(value, float | np.floating) and np.isnan(value)):
                    value = None
                elif key in ("picid", "gaia_id"):
                    value = int(value)
                elif key == "twomass_id":
                    value = str(value)
                elif value is not None:
                    value = float(value)
                row[key] = value
            rows.append(row)
        yield rows
