"""The plate-solver on its SQL backends: TIC files loaded into ``reference_stars`` (by code and
by ``panoptes-network catalog load``), and the step matching against that table and writing its
stamps to a real PostgreSQL, chosen by the settings as a deployment chooses them.

What every stamp store and every reference catalog must do is in the contract tests
(``test_stamp_store_contract.py``, ``test_reference_catalog_contract.py``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from fixtures_servers import POSTGRES
from panoptes_network.adapters.backends import local_context, sql_catalog
from panoptes_network.adapters.sql_catalog import SqlCatalog
from panoptes_network.adapters.tycho2_index_catalog import Tycho2IndexCatalog
from panoptes_network.core.settings import Settings
from panoptes_network.core.step import Work
from panoptes_network.steps.plate_solve import STEP, PlateSolveSettings, process
from plate_solver_inputs import put_inputs

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")

CLI = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "panoptes-network"


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> SqlCatalog:
    """An empty ``reference_stars`` on each database."""
    if request.param == "sqlite":
        return SqlCatalog(f"sqlite:///{tmp_path / 'stamps.sqlite'}")
    return SqlCatalog(POSTGRES, request.getfixturevalue("postgres_schema"))


@pytest.fixture(scope="module")
def tic_subset() -> Table:
    """A TIC-like table: the Tycho-2 stars around the real crop, with made-up ids and T magnitudes,
    its columns spelled as TIC exports spell them."""
    stars = Tycho2IndexCatalog().cone(303.2, 46.0, 2.5, (0.0, 20.0))
    picid = np.arange(len(stars), dtype=np.int64) + 1_000_000
    return Table(
        {"ID": picid, "ra": stars.ra, "dec": stars.dec, "Vmag": stars.mag, "Tmag": stars.mag - 0.5, "GAIA": picid * 7}
    )


@pytest.mark.parametrize("suffix", [".csv", ".fits"])
def test_a_tic_file_loads_with_its_extra_columns(
    catalog: SqlCatalog, tic_subset: Table, tmp_path: Path, suffix
) -> None:
    path = tmp_path / f"tic{suffix}"
    tic_subset.write(path, format="ascii.csv" if suffix == ".csv" else "fits")
    assert catalog.load_file(path) == len(tic_subset)
    assert catalog.load_file(path) == len(tic_subset)  # reloading replaces, not duplicates
    stars = catalog.cone(303.2, 46.0, 1.0, (6.0, 13.0))
    assert len(stars) == len(Tycho2IndexCatalog().cone(303.2, 46.0, 1.0, (6.0, 13.0))) > 50
    assert stars.catalog == "tic" and set(stars.extra) >= {"tmag", "gaia_id"}
    picid = stars.ids.astype(np.int64)
    assert np.array_equal(stars.extra["gaia_id"].astype(np.int64), picid * 7)
    assert np.allclose(stars.extra["tmag"].astype(np.float64), stars.mag - 0.5)


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
    assert f"{len(tic_subset)} star(s)" in done.stdout and "(sqlite)" in done.stdout
    loaded = sql_catalog(Settings(data_dir=tmp_path / "data"))  # where the plate-solver will look
    assert len(loaded.cone(303.2, 46.0, 1.0, (6.0, 13.0))) > 50
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
    settings = Settings(
        data_dir=tmp_path, database_url=POSTGRES, database_schema=postgres_schema, reference_catalog="sql"
    )
    path = tmp_path / "tic.fits"
    tic_subset.write(path, format="fits")
    sql_catalog(settings).load_file(path)
    context = local_context(settings, tmp_path)[0]
    with fits.open(test_data / "panoptes" / "unsolved.fits") as hdus:
        message = put_inputs(context, hdus[0].data.copy(), hdus[0].header.copy())
    for _ in range(2):  # a reprocessing replaces the rows
        result = process(Work(context, STEP, message), PlateSolveSettings())
    rows = context.stamps.rows(message.image_id)
    assert result.fields["sources"]["catalog"] == "tic" and len(rows) == result.fields["sources"]["matched"] >= 150
    assert all(int(row["catalog_id"]) >= 1_000_000 for row in rows)
    assert result.record["stamps"] == {"database": "postgresql", "rows": len(rows)}
    assert not (tmp_path / "stamps.sqlite").exists()  # nothing went to the embedded default
