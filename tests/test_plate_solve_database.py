"""Stamps and the SQL reference catalog through one code path, on SQLite and on a real PostgreSQL.

PostgreSQL is the server at ``PANOPTES_TEST_POSTGRES`` (default
postgresql://postgres@127.0.0.1:5432/test); each test run works in its own schema and drops
it afterwards. Without a server these tests are skipped (a failure in CI).
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from astropy.io import fits
from astropy.table import Table

from fixtures_servers import POSTGRES, postgres_engine
from panoptes_network.adapters.reference_catalog import SqlCatalog, TychoIndexCatalog, load_catalog_file
from panoptes_network.adapters.stamp_database import (
    image_stamps,
    pixels_from_bytes,
    pixels_to_bytes,
    replace_image_stamps,
)
from panoptes_network.core.context import local_context
from panoptes_network.core.messages import parse_step_message
from panoptes_network.core.settings import Settings
from panoptes_network.core.step_shell import Work
from panoptes_network.steps.plate_solve import STEP, PlateSolveSettings, process
from test_plate_solve import put_inputs

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")

CLI = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "panoptes-network"


@pytest.fixture(scope="module")
def postgres_schema() -> Iterator[str]:
    """A fresh schema on the test server, dropped afterwards."""
    engine = postgres_engine()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield schema
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path: Path) -> tuple[str, str | None]:
    """(url, schema) of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'stamps.sqlite'}", None
    return POSTGRES, request.getfixturevalue("postgres_schema")


def stamp_row(image_id: str, source_id: int, pixels: np.ndarray) -> dict:
    return {
        "image_id": image_id, "source_id": source_id, "sequence_id": "PAN001_XXXXXX_20160909T081152",
        "catalog": "tycho2", "catalog_id": f"J{source_id}", "catalog_ra": 303.0, "catalog_dec": 46.0,
        "catalog_mag": 10.0, "catalog_x": 1.0, "catalog_y": 2.0, "x": 1.1, "y": 2.1, "ra": 303.0, "dec": 46.0,
        "flux": 1000.0, "flux_err": 10.0, "peak": 100.0, "fwhm": 2.5, "ellipticity": 0.1, "flags": 0,
        "separation_arcsec": 1.0, "duplicate": False, "stamp_x0": 0, "stamp_y0": 0, "stamp_width": 10,
        "stamp_height": 10, "pixels": pixels_to_bytes(pixels),
    }  # fmt: skip


def test_replacing_an_images_stamps_never_duplicates_them(database) -> None:
    url, schema = database
    image = f"PAN001_XXXXXX_{uuid.uuid4().hex[:8]}"
    pixels = np.arange(100, dtype=np.float32).reshape(10, 10) - 50.5
    replace_image_stamps(url, schema, image, [stamp_row(image, i, pixels) for i in range(5)])
    replace_image_stamps(url, schema, "other", [stamp_row("other", 0, pixels)])
    assert replace_image_stamps(url, schema, image, [stamp_row(image, i, pixels * 2) for i in range(3)]) == 3
    rows = image_stamps(url, schema, image)
    assert [r["source_id"] for r in rows] == [0, 1, 2]
    assert np.array_equal(pixels_from_bytes(rows[2]["pixels"], 10, 10), pixels * 2)
    assert len(image_stamps(url, schema, "other")) == 1


def test_concurrent_replacements_of_one_images_stamps_take_turns(database) -> None:
    url, schema = database
    image = f"PAN001_XXXXXX_{uuid.uuid4().hex[:8]}"
    pixels = np.zeros((10, 10), dtype=np.float32)
    replace_image_stamps(url, schema, "warm-up", [])  # the tables exist before the race
    start = threading.Barrier(4)

    def replace(attempt: int) -> int:
        start.wait()
        return replace_image_stamps(url, schema, image, [stamp_row(image, i, pixels + attempt) for i in range(200)])

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert list(pool.map(replace, range(4))) == [200] * 4  # none failed on a duplicate key
    stored = image_stamps(url, schema, image)
    assert [row["source_id"] for row in stored] == list(range(200))
    assert len({row["pixels"] for row in stored}) == 1  # all from one attempt, not a mix


def test_a_failed_replacement_keeps_the_previous_rows(database) -> None:
    url, schema = database
    image = f"PAN001_XXXXXX_{uuid.uuid4().hex[:8]}"
    pixels = np.zeros((10, 10), np.float32)
    replace_image_stamps(url, schema, image, [stamp_row(image, 0, pixels)])
    duplicate_key = [stamp_row(image, 1, pixels), stamp_row(image, 1, pixels)]
    with pytest.raises(sa.exc.IntegrityError):
        replace_image_stamps(url, schema, image, duplicate_key)
    assert [r["source_id"] for r in image_stamps(url, schema, image)] == [0]


@pytest.fixture(scope="module")
def tic_subset(tmp_path_factory) -> Table:
    """A TIC-like table: the Tycho-2 stars around the real crop, with made-up ids and T magnitudes."""
    stars = TychoIndexCatalog().cone(303.2, 46.0, 2.5, (0.0, 20.0))
    picid = np.arange(len(stars), dtype=np.int64) + 1_000_000
    return Table(
        {"ID": picid, "ra": stars.ra, "dec": stars.dec, "Vmag": stars.mag, "Tmag": stars.mag - 0.5, "GAIA": picid * 7}
    )


@pytest.mark.parametrize("suffix", [".csv", ".fits"])
def test_catalog_load_then_cone_search(database, tic_subset: Table, tmp_path: Path, suffix: str) -> None:
    url, schema = database
    path = tmp_path / f"tic{suffix}"
    tic_subset.write(path, format="ascii.csv" if suffix == ".csv" else "fits")
    assert load_catalog_file(path, url, schema) == len(tic_subset)
    assert load_catalog_file(path, url, schema) == len(tic_subset)  # reloading replaces, not duplicates
    stars = SqlCatalog(url, schema).cone(303.2, 46.0, 1.0, (6.0, 13.0))
    expected = TychoIndexCatalog().cone(303.2, 46.0, 1.0, (6.0, 13.0))
    assert len(stars) == len(expected) > 50
    assert stars.catalog == "tic" and set(stars.extra) >= {"tmag", "gaia_id"}
    assert np.allclose(np.sort(stars.ra), np.sort(expected.ra))


def test_the_cli_loads_a_catalog_into_the_data_dir(tic_subset: Table, tmp_path: Path) -> None:
    path = tmp_path / "tic.csv"
    tic_subset.write(path, format="ascii.csv")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    done = subprocess.run(
        [str(CLI), "catalog", "load", "--data-dir", str(tmp_path / "data"), str(path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert f"{len(tic_subset)} star(s)" in done.stdout and (tmp_path / "data" / "stamps.sqlite").exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    failed = subprocess.run(
        [str(CLI), "catalog", "load", "--data-dir", str(tmp_path / "data"), str(bad)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert failed.returncode != 0 and "picid" in failed.stderr


def test_the_step_writes_stamps_to_postgresql_matched_against_the_sql_catalog(
    postgres_schema: str, tic_subset: Table, test_data: Path, tmp_path: Path
) -> None:
    path = tmp_path / "tic.fits"
    tic_subset.write(path, format="fits")
    load_catalog_file(path, POSTGRES, postgres_schema)
    settings = PlateSolveSettings(catalog="sql", database_url=POSTGRES, database_schema=postgres_schema)
    context = local_context(Settings(data_dir=tmp_path), tmp_path)[0]
    with fits.open(test_data / "panoptes" / "unsolved.fits") as hdus:
        push = put_inputs(context, hdus[0].data.copy(), hdus[0].header.copy())
    message = parse_step_message(push)
    for _ in range(2):  # a reprocessing replaces the rows
        result = process(Work(context, STEP, message), settings)
    rows = image_stamps(POSTGRES, postgres_schema, message.image_id)
    assert result.fields["sources"]["catalog"] == "tic" and len(rows) == result.fields["sources"]["matched"] >= 150
    assert all(int(row["catalog_id"]) >= 1_000_000 for row in rows)
    assert result.record["stamps"] == {"database": "postgresql", "rows": len(rows)}
