"""The observation search's parameters, validated where they enter (the web page, the JSON API
and ``panoptes-network search`` share them), so a bad date or coordinate is a 400 that says why
and nothing past this module sees an unchecked value.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Mapping

from panoptes_network.core.status import ObservationStatus

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
DEFAULT_RADIUS_DEG = 1.0
MAX_RADIUS_DEG = 180.0
MAX_TEXT = 200  # longer than any field name, unit id or cursor of ours
UNIT_RE = re.compile(r"PAN\d{3}")
CURSOR_RE = re.compile(r"[A-Za-z0-9_=-]{1,400}")

# Every parameter the search takes, with what it means (the OpenAPI document and --help read this).
PARAMETERS: Mapping[str, str] = {
    "unit": "unit id, e.g. PAN001",
    "since": "observations starting on or after this ISO date or time (UTC when no offset)",
    "until": "observations starting on or before this ISO date (the whole day) or time",
    "target": "field name, case-insensitive substring (e.g. 'kic 8462')",
    "ra": "right ascension of a cone centre in degrees, 0 to 360 (with dec)",
    "dec": "declination of a cone centre in degrees, -90 to 90 (with ra)",
    "radius": f"cone radius in degrees, > 0 and <= {MAX_RADIUS_DEG:g} (default {DEFAULT_RADIUS_DEG:g})",
    "status": f"observation status: {', '.join(s.value for s in ObservationStatus)}",
    "min_frames": "at least this many science frames",
    "limit": f"results per page (default {DEFAULT_LIMIT}; more than {MAX_LIMIT} gives {MAX_LIMIT})",
    "cursor": "the next_cursor of the previous page (opaque)",
}


class BadQuery(ValueError):
    """A search parameter that cannot be used; the message says which and why (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclasses.dataclass(frozen=True)
class Cone:
    """A circle on the sky, in degrees."""

    ra: float
    dec: float
    radius: float


@dataclasses.dataclass(frozen=True)
class SearchFilters:
    """What an observation search asks for; every field optional but ``limit``."""

    unit: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None  # exclusive: a date means up to the end of that day
    target: str | None = None
    cone: Cone | None = None
    status: str | None = None
    min_frames: int | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> SearchFilters:
        """Filters from query parameters (``PARAMETERS``); empty values count as absent.

        Raises ``BadQuery`` for an unknown parameter or a value out of its range."""
        given = {key: value.strip() for key, value in params.items() if value is not None and value.strip()}
        unknown = sorted(set(given) - set(PARAMETERS))
        if unknown:
            raise BadQuery(f"unknown parameter {', '.join(unknown)}; expected one of {', '.join(PARAMETERS)}")
        for key, value in given.items():
            if len(value) > MAX_TEXT and key != "cursor":
                raise BadQuery(f"{key} is longer than {MAX_TEXT} characters")
        since = _time(given, "since", end_of_day=False)
        until = _time(given, "until", end_of_day=True)
        if since and until and since >= until:
            raise BadQuery(f"since ({given['since']}) is not before until ({given['until']})")
        return cls(
            unit=_unit(given.get("unit")),
            since=since,
            until=until,
            target=given.get("target"),
            cone=_cone(given),
            status=_status(given.get("status")),
            min_frames=_whole(given, "min_frames", 0, None),
            limit=min(_whole(given, "limit", 1, None) or DEFAULT_LIMIT, MAX_LIMIT),
            cursor=_cursor(given.get("cursor")),
        )

    def as_params(self) -> dict[str, str]:
        """The query parameters that ask for these filters again (``parse`` of them gives them back)."""
        params = {
            "unit": self.unit,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "target": self.target,
            "status": self.status,
            "min_frames": None if self.min_frames is None else str(self.min_frames),
            "limit": str(self.limit),
            "cursor": self.cursor,
        }
        if self.cone is not None:
            params |= {"ra": repr(self.cone.ra), "dec": repr(self.cone.dec), "radius": repr(self.cone.radius)}
        return {key: value for key, value in params.items() if value is not None}


def _unit(value: str | None) -> str | None:
    if value is not None and not UNIT_RE.fullmatch(value):
        raise BadQuery(f"unit {value!r} is not a unit id like PAN001")
    return value


def _status(value: str | None) -> str | None:
    known = [s.value for s in ObservationStatus]
    if value is not None and value not in known:
        raise BadQuery(f"status {value!r} is not one of {', '.join(known)}")
    return value


def _time(given: Mapping[str, str], key: str, end_of_day: bool) -> dt.datetime | None:
    """An ISO date (``2024-05-01``: the day's start, or with ``end_of_day`` the next day's) or
    time; naive times are UTC."""
    text = given.get(key)
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            start = dt.datetime.combine(day, dt.time(), dt.UTC)
            if end_of_day:  # the last day there is ends with time itself
                return start + dt.timedelta(days=1) if day < dt.date.max else dt.datetime.max.replace(tzinfo=dt.UTC)
            return start
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadQuery(f"{key} {text!r} is not an ISO date (2024-05-01) or time (2024-05-01T03:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _number(given: Mapping[str, str], key: str, low: float, high: float) -> float | None:
    text = given.get(key)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadQuery(f"{key} {text!r} is not a number of degrees") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise BadQuery(f"{key} {text} is outside {low:g} to {high:g} degrees")
    return value


def _cone(given: Mapping[str, str]) -> Cone | None:
    ra = _number(given, "ra", 0.0, 360.0)
    dec = _number(given, "dec", -90.0, 90.0)
    radius = _number(given, "radius", 0.0, MAX_RADIUS_DEG)
    if (ra is None) != (dec is None):
        raise BadQuery("ra and dec go together: give both, or neither")
    if ra is None or dec is None:
        if radius is not None:
            raise BadQuery("radius needs ra and dec")
        return None
    if radius == 0.0:
        raise BadQuery("radius must be greater than 0 degrees")
    return Cone(ra, dec, DEFAULT_RADIUS_DEG if radius is None else radius)


def _whole(given: Mapping[str, str], key: str, low: int, high: int | None) -> int | None:
    text = given.get(key)
    if text is None:
        return None
    if not re.fullmatch(r"\d{1,9}", text):
        raise BadQuery(f"{key} {text!r} is not a whole number")
    value = int(text)
    if value < low or (high is not None and value > high):
        raise BadQuery(f"{key} {value} is outside {low} to {high if high is not None else 'any'}")
    return value


def _cursor(value: str | None) -> str | None:
    if value is not None and not CURSOR_RE.fullmatch(value):
        raise BadQuery("cursor is not one this service gave out: pass next_cursor unchanged")
    return value
