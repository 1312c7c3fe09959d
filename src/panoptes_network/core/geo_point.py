"""A place on Earth: the one value type the records hold beyond JSON and datetimes.

Firestore stores it as its own GeoPoint (so a unit's location is queryable as one); the SQLite
store tags it. A header says where a unit is (``science/header_metadata.py``), so the type lives
here, below both.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class GeoPoint:
    """Latitude and longitude in degrees."""

    latitude: float
    longitude: float
