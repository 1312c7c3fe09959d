"""The Tycho-2 reference catalog inside the Debian astrometry.net index files, read by running
the ``query-starkd`` program (a 9 degree cone in under 0.1 s).

RA, Dec and VT magnitude only: the index keeps no Tycho ids, so a star's id is its J2000
position (``J303.21010+46.01920``).
"""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from astropy.table import Table

from panoptes_network.science.catalog_stars import CatalogStars, angular_distance

TYCHO2_INDEX = Path("/usr/share/astrometry/index-tycho2-07.littleendian.fits")


def position_ids(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Ids for catalogs without any: the J2000 position to 1e-5 degree."""
    return np.array([f"J{r:09.5f}{d:+09.5f}" for r, d in zip(ra, dec)], dtype=object)


@dataclasses.dataclass(frozen=True)
class Tycho2IndexCatalog:
    """The index file at ``index_path``, one ``query-starkd`` run per cone."""

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
