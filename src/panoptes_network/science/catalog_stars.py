"""Reference stars as columns, and distances on the sky: what catalog matching works with.

A catalog backend (``adapters/reference_catalog.py``) answers a cone search with ``CatalogStars``;
science takes the search as a plain function (``ConeSearch``), so it never knows where stars live.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

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


# (ra, dec, radius_deg, (bright, faint) magnitudes) -> the stars in that cone
ConeSearch = Callable[[float, float, float, tuple[float, float]], CatalogStars]


def angular_distance(ra1: ArrayLike, dec1: ArrayLike, ra2: ArrayLike, dec2: ArrayLike) -> np.ndarray:
    """Great-circle distance in degrees (haversine: exact at small separations), elementwise."""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(value, dtype=np.float64)) for value in (ra1, dec1, ra2, dec2))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return np.asarray(np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))), dtype=np.float64)
