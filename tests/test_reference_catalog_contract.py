"""The reference catalog's contract, on every implementation: the Tycho-2 index files (through
``query-starkd``) and the SQL table ``reference_stars`` on SQLite and on the real PostgreSQL,
loaded with the index's own stars around a few fields. Every implementation must return, for a
cone inside a field, exactly the field's stars in that cone and magnitude range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table, vstack

from fixtures_servers import POSTGRES
from panoptes_network.adapters.reference_catalog import ReferenceCatalog
from panoptes_network.adapters.sql_catalog import SqlCatalog
from panoptes_network.adapters.tycho2_index_catalog import Tycho2IndexCatalog
from panoptes_network.science.catalog_stars import CatalogStars, angular_distance

FIELD_RADIUS = 2.5
CONE_RADIUS = 1.0
MAGS = (6.0, 13.0)
# (ra, dec) of each field: the real crop's, one across RA 0/360, one by the pole, one in the south
FIELDS = [(303.2, 46.0), (0.3, 10.0), (120.0, 88.6), (250.0, -60.0)]


@pytest.fixture(scope="module")
def field_stars() -> Table:
    """The Tycho-2 index's stars around every field, with made-up TIC ids."""
    parts = []
    for ra, dec in FIELDS:
        stars = Tycho2IndexCatalog().cone(ra, dec, FIELD_RADIUS, (-2.0, 20.0))
        parts.append(Table({"ra": stars.ra, "dec": stars.dec, "Vmag": stars.mag}))
    table = vstack(parts)
    table["ID"] = np.arange(len(table), dtype=np.int64) + 1_000_000
    return table


@pytest.fixture(scope="module")
def loaded_file(field_stars: Table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("catalog") / "fields.fits"
    field_stars.write(path, format="fits")
    return path


@pytest.fixture(params=["tycho2-index", "sql-sqlite", "sql-postgresql"])
def catalog(request: pytest.FixtureRequest, loaded_file: Path, tmp_path: Path) -> ReferenceCatalog:
    if request.param == "tycho2-index":
        return Tycho2IndexCatalog()
    if request.param == "sql-sqlite":
        sql = SqlCatalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    else:
        sql = SqlCatalog(POSTGRES, request.getfixturevalue("postgres_schema"))
    sql.load_file(loaded_file)
    return sql


def expected(field_stars: Table, ra: float, dec: float) -> Table:
    """The field's stars in the cone and magnitude range, found by brute force."""
    inside = angular_distance(ra, dec, np.asarray(field_stars["ra"]), np.asarray(field_stars["dec"])) <= CONE_RADIUS
    bright_enough = (field_stars["Vmag"] >= MAGS[0]) & (field_stars["Vmag"] <= MAGS[1])
    return field_stars[inside & bright_enough]


def by_position(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    return np.lexsort((dec, ra))


@pytest.mark.parametrize(("ra", "dec"), FIELDS)
def test_a_cone_returns_the_fields_stars_in_it(catalog: ReferenceCatalog, field_stars: Table, ra, dec) -> None:
    stars = catalog.cone(ra, dec, CONE_RADIUS, MAGS)
    truth = expected(field_stars, ra, dec)
    assert len(stars) == len(truth) > 10
    got, want = by_position(stars.ra, stars.dec), by_position(np.asarray(truth["ra"]), np.asarray(truth["dec"]))
    offsets = angular_distance(stars.ra[got], stars.dec[got], truth["ra"][want], truth["dec"][want])  # pairwise
    assert offsets.max() * 3600 < 0.01  # the same stars, to 10 milliarcsec
    assert np.allclose(stars.mag[got], np.asarray(truth["Vmag"])[want], atol=1e-4)


def test_every_star_is_in_the_cone_and_range_with_a_unique_id(catalog: ReferenceCatalog) -> None:
    stars = catalog.cone(*FIELDS[0], CONE_RADIUS, MAGS)
    assert isinstance(stars, CatalogStars) and stars.catalog == catalog.name
    assert np.all(angular_distance(*FIELDS[0], stars.ra, stars.dec) <= CONE_RADIUS)
    assert np.all((stars.mag >= MAGS[0]) & (stars.mag <= MAGS[1]))
    assert len(set(stars.ids.tolist())) == len(stars) == len(stars.dec) == len(stars.mag)
    assert all(len(column) == len(stars) for column in stars.extra.values())


def test_the_same_cone_gives_the_same_stars_in_the_same_order(catalog: ReferenceCatalog) -> None:
    first, second = (catalog.cone(*FIELDS[1], CONE_RADIUS, MAGS) for _ in range(2))
    assert first.ids.tolist() == second.ids.tolist()
    assert np.array_equal(first.ra, second.ra) and np.array_equal(first.mag, second.mag)


def test_a_cone_without_stars_is_empty(catalog: ReferenceCatalog) -> None:
    stars = catalog.cone(*FIELDS[0], CONE_RADIUS, (25.0, 30.0))
    assert len(stars) == 0 and stars.catalog == catalog.name
