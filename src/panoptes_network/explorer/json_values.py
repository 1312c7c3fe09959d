"""Record values as JSON: the stores hold datetimes and ``GeoPoint``s, a JSON answer holds neither."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from panoptes_network.core.geo_point import GeoPoint


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO strings, places as {latitude, longitude}, tuples as lists,
    and NaN or infinities (which JSON cannot hold) as null."""
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, GeoPoint):
        return {"latitude": value.latitude, "longitude": value.longitude}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def iso_time(value: Any) -> str | None:
    """A record's time as an ISO string (None when absent)."""
    return value.isoformat() if isinstance(value, dt.datetime) else (str(value) if value else None)
