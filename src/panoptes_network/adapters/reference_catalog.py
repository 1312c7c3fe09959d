"""Reference stars for a field: one interface, two catalogs.

- ``TychoIndexCatalog``: the Tycho-2 stars inside the installed astrometry.net index files,
  read with ``query-starkd`` (a 9 degree cone in under 0.1 s). RA, Dec and VT magnitude only:
  the index keeps no Tycho ids, so a star's id is its J2000 position (``J303.21010+46.01920``).
  The default for embedded runs and tests: nothing to load.
- ``SqlCatalog``: a SQL table ``reference_stars`` (the TESS Input Catalog subset in Cloud SQL:
  picid, ra, dec, vmag, tmag, gaia_id, twomass_id), filled by ``panoptes-network catalog load
  FILE`` from CSV or FITS (``load_catalog_file``).
"""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import sqlalchemy as sa
from astropy.table import Table

from panoptes_network.adapters.sql_tables import engine_for, ready_table
from panoptes_network.core.errors import TransientError

TYCHO2_INDEX = Path("/usr/share/astrometry/index-tycho2-07.littleendian.fits")


@dataclasses.dataclass(frozen=True)
class CatalogStars:
    """Stars of one catalog as columns; ``extra`` holds catalog-specific columns (gaia_id...)."""

    catalog: str
    ids: np.ndarray  # str
    ra: np.ndarray  # degrees, J2000
    dec: np.ndarray
    mag: np.ndarray  # the catalog's optical magnitude (Tycho VT, TIC V)
    extra: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ra)


class ReferenceCatalog(Protocol):
    name: str

    def cone(self, ra: float, dec: float, radius_deg: float, mag_range: tuple[float, float]) -> CatalogStars:
        """Stars within ``radius_deg`` of (ra, dec) and inside ``mag_range`` (bright, faint)."""
        ...


def angular_distance(ra1: float, dec1: float, ra2: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    """Great-circle distance in degrees (haversine: exact at small separations)."""
    ra1, dec1, ra2, dec2 = map(np.radians, (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))))


def position_ids(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Ids for catalogs without any: the J2000 position to 1e-5 degree."""
    return np.array([f"J{r:09.5f}{d:+09.5f}" for r, d in zip(ra, dec)], dtype=object)


@dataclasses.dataclass(frozen=True)
class TychoIndexCatalog:
    index_path: Path = TYCHO2_INDEX
    name: str = "tycho2"

    def cone(self, ra: float, dec: float, radius_deg: float, mag_range: tuple[float, float]) -> CatalogStars:
        with tempfile.TemporaryDirectory(prefix="query-starkd-") as scratch:
            out = Path(scratch) / "cone.fits"
            command = [
                "query-starkd",
                "-r",
                f"{ra:.6f}",
                "-d",
                f"{dec:.6f}",
                "-R",
                f"{radius_deg:.6f}",
                "-T",
                "-o",
                str(out),
                str(self.index_path),
            ]
            done = subprocess.run(command, capture_output=True, timeout=60)
            if done.returncode != 0 or not out.exists():
                raise RuntimeError(
                    f"query-starkd failed ({done.returncode}): {done.stderr.decode(errors='replace')[-500:]}"
                )
            table = Table.read(out, format="fits")
        stars_ra, stars_dec, mag = (np.asarray(table[c], dtype=np.float64) for c in ("RA", "DEC", "MAG_VT"))
        keep = (
            (mag >= mag_range[0])
            & (mag <= mag_range[1])
            & (angular_distance(ra, dec, stars_ra, stars_dec) <= radius_deg)
        )
        order = np.lexsort((stars_dec[keep], stars_ra[keep]))  # deterministic whatever the kd-tree order
        stars_ra, stars_dec, mag = stars_ra[keep][order], stars_dec[keep][order], mag[keep][order]
        return CatalogStars(self.name, position_ids(stars_ra, stars_dec), stars_ra, stars_dec, mag)


@dataclasses.dataclass(frozen=True)
class SqlCatalog:
    """``reference_stars`` in the SQL database (PostgreSQL in the cloud, SQLite locally)."""

    url: str
    schema: str | None = None
    name: str = "tic"

    def cone(self, ra: float, dec: float, radius_deg: float, mag_range: tuple[float, float]) -> CatalogStars:
        table = ready_table(self.url, self.schema, "reference_stars")
        query = sa.select(table).where(
            table.c.dec.between(dec - radius_deg, dec + radius_deg),
            table.c.vmag.between(*mag_range),
            _ra_window(table.c.ra, ra, dec, radius_deg),
        )
        try:
            with engine_for(self.url).connect() as connection:
                rows = connection.execute(query.order_by(table.c.picid)).all()
        except sa.exc.OperationalError as exc:
            raise TransientError(f"catalog database unavailable: {exc.orig or exc}", exc) from exc
        columns = {key: np.array([row._mapping[key] for row in rows]) for key in table.c}
        stars_ra = columns["ra"].astype(np.float64)
        stars_dec = columns["dec"].astype(np.float64)
        keep = angular_distance(ra, dec, stars_ra, stars_dec) <= radius_deg
        extra = {key: columns[key][keep] for key in ("vmag", "tmag", "gaia_id", "twomass_id")}
        ids = np.array([str(p) for p in columns["picid"][keep]], dtype=object)
        return CatalogStars(
            self.name, ids, stars_ra[keep], stars_dec[keep], columns["vmag"][keep].astype(np.float64), extra
        )


def _ra_window(column: sa.ColumnElement, ra: float, dec: float, radius_deg: float) -> sa.ColumnElement:
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


def _catalog_rows(table: Table, chunk: int) -> Iterator[list[dict[str, object]]]:
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
            row = {}
            for key, column in found.items():
                value = None if column is None else record[column]
                if value is np.ma.masked or (isinstance(value, float | np.floating) and np.isnan(value)) or value == "":
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


def load_catalog_file(path: Path, url: str, schema: str | None = None, chunk: int = 10_000) -> int:
    """Load a CSV or FITS table into ``reference_stars``; rows with a known picid are replaced."""
    table = Table.read(path, format="ascii.csv" if path.suffix.lower() in (".csv", ".txt") else None)
    target = ready_table(url, schema, "reference_stars")
    count = 0
    with engine_for(url).begin() as connection:
        for rows in _catalog_rows(table, chunk):
            connection.execute(sa.delete(target).where(target.c.picid.in_([row["picid"] for row in rows])))
            connection.execute(sa.insert(target), rows)
            count += len(rows)
    return count
