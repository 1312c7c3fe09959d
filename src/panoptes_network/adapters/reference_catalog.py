"""Reference stars for a field: the interface the plate-solver matches against.

Implementations, chosen by ``PANOPTES_REFERENCE_CATALOG`` (``adapters/backends.py``):

- ``tycho2_index_catalog.Tycho2IndexCatalog`` (``tycho2``): the Tycho-2 stars inside the
  installed astrometry.net index files, read by the ``query-starkd`` program. Nothing to load:
  the default for embedded runs and tests.
- ``sql_catalog.SqlCatalog`` (``sql``): the SQL table ``reference_stars`` (a TESS Input Catalog
  subset in Cloud SQL), filled by ``panoptes-network catalog load FILE``.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike


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
    @property
    def name(self) -> str:
        """The catalog's name in stamp rows and records (``tycho2``, ``tic``)."""
        ...

    def cone(self, ra: float, dec: float, radius_deg: float, mag_range: tuple[float, float]) -> CatalogStars:
        """Stars within ``radius_deg`` of (ra, dec) and inside ``mag_range`` (bright, faint), in
        an order that does not change between calls."""
        ...


def angular_distance(ra1: ArrayLike, dec1: ArrayLike, ra2: ArrayLike, dec2: ArrayLike) -> np.ndarray:
    """Great-circle distance in degrees (haversine: exact at small separations), elementwise."""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(value, dtype=np.float64)) for value in (ra1, dec1, ra2, dec2))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return np.asarray(np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))), dtype=np.float64)
