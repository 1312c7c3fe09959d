"""What a POCS FITS header says about the unit, the observation and the image.

Pure functions from a header (and the ids of the object's path) to the fields stored in
``units/``, ``observations/`` and ``images/``. Values are parsed into numbers and times, not
stored as the header's strings (``CAMTEMP = '11 C'`` becomes 11.0). Missing keywords give
``None``; junk keywords left by old tools (``_``-prefixed) and the camera and lens serial
numbers are never stored.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import warnings
from typing import Any

from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS

from panoptes_network.core.geo_point import GeoPoint
from panoptes_network.core.names import POINTING_RE, UNIT_RE, RawName
from panoptes_network.core.status import FrameType

NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def number(header: fits.Header, key: str) -> float | None:
    """A keyword as a finite float: plain numbers, or the number in strings like '11 C'."""
    value = header.get(key)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    match = NUMBER.search(str(value))
    return float(match.group(0)) if match else None


def text(header: fits.Header, key: str) -> str | None:
    value = header.get(key)
    if value is None or isinstance(value, bool):
        return None
    stripped = str(value).strip()
    return stripped or None


def time(header: fits.Header, key: str) -> dt.datetime | None:
    value = text(header, key)
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def measured_rggb(header: fits.Header) -> dict[str, float] | None:
    """MEASRGGB '471 1024 1024 733' -> {r, g1, g2, b}."""
    numbers = [float(m.group(0)) for m in NUMBER.finditer(text(header, "MEASRGGB") or "")]
    if len(numbers) != 4:
        return None
    return dict(zip(("r", "g1", "g2", "b"), numbers))


def wcs_centre(header: fits.Header) -> tuple[float, float] | None:
    """RA/Dec (degrees) of the image centre when the header has a celestial WCS."""
    if not str(header.get("CTYPE1", "")).startswith("RA--") or "CRVAL1" not in header:
        return None
    width, height = header.get("NAXIS1"), header.get("NAXIS2")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)  # SIP/obsolete-keyword chatter
            wcs = WCS(header, naxis=2)
            if not wcs.has_celestial or not width or not height:
                return float(header["CRVAL1"]), float(header["CRVAL2"])
            ra, dec = wcs.all_pix2world([[(width - 1) / 2, (height - 1) / 2]], 0)[0]
    except (ValueError, KeyError, MemoryError):
        return float(header["CRVAL1"]), float(header["CRVAL2"])
    return float(ra), float(dec)


def drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != {}}


def camera_fields(header: fits.Header) -> dict[str, Any]:
    return drop_none(
        {
            "iso": number(header, "ISO"),
            "temperature": number(header, "CAMTEMP"),
            "circle_of_confusion_mm": number(header, "CIRCCONF"),
            "colour_temperature": number(header, "COLORTMP"),
            "measured_ev": number(header, "MEASEV"),
            "measured_ev2": number(header, "MEASEV2"),
            "measured_rggb": measured_rggb(header),
            "white_level_n": number(header, "WHTLVLN"),
            "white_level_s": number(header, "WHTLVLS"),
            "red_balance": number(header, "REDBAL"),
            "blue_balance": number(header, "BLUEBAL"),
        }
    )


def flag(header: fits.Header, key: str) -> bool:
    """A logical keyword: ``T`` (or a string such as 'True', 'yes', '1' from other writers)."""
    value = header.get(key)
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("t", "true", "yes", "y", "1") if value is not None else False


def frame_type(header: fits.Header, name: RawName) -> FrameType:
    """What the frame is for: darks (``IMAGETYP`` dark or bias, ``DARK = T``) and flats
    (``IMAGETYP`` flat) first, as their pixels hold no sky; then pointing images (``pointingNN``
    in the object name, IMAGEID or FILENAME, or ``POINTING = T``); everything else is science."""
    image_type = (text(header, "IMAGETYP") or "").lower()
    if "dark" in image_type or "bias" in image_type or flag(header, "DARK"):
        return FrameType.DARK
    if "flat" in image_type:
        return FrameType.FLAT
    names = (text(header, "IMAGEID") or "", text(header, "FILENAME") or "")
    if name.is_pointing or flag(header, "POINTING") or any(POINTING_RE.search(n) for n in names):
        return FrameType.POINTING
    return FrameType.SCIENCE


def image_fields(header: fits.Header, name: RawName) -> dict[str, Any]:
    """Fields of ``images/{image_id}`` (the step adds bucket path, generation and status)."""
    centre = wcs_centre(header)
    fields: dict[str, Any] = {
        "image_id": name.image_id,
        "sequence_id": name.sequence_id,
        "frame_type": frame_type(header, name).value,
        "unit_id": name.unit_id,
        "camera_id": name.camera_id,
        "time": name.image_time or time(header, "DATE-OBS"),
        "date_obs": time(header, "DATE-OBS"),
        "exptime": number(header, "EXPTIME"),
        "airmass": number(header, "AIRMASS"),
        "field_name": text(header, "FIELD"),
        "moon": drop_none({"separation": number(header, "MOONSEP"), "fraction": number(header, "MOONFRAC")}),
        "mount": drop_none(
            {"ra": number(header, "RA-MNT"), "dec": number(header, "DEC-MNT"), "ha": number(header, "HA-MNT")}
        ),
        "camera": camera_fields(header),
        "ra_image": centre[0] if centre else None,
        "dec_image": centre[1] if centre else None,
    }
    return fields


def observation_fields(header: fits.Header, name: RawName) -> dict[str, Any]:
    """Fields of ``observations/{sequence_id}`` (merged by every image of the sequence)."""
    return drop_none(
        {
            "sequence_id": name.sequence_id,
            "unit_id": name.unit_id,
            "camera_id": name.camera_id,
            "time": dt.datetime.strptime(name.sequence_time, "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC),
            "exptime": number(header, "EXPTIME"),
            "field_name": text(header, "FIELD"),
            "software_version": text(header, "CREATOR"),
            "iso": number(header, "ISO"),
            "ra": number(header, "RA-MNT"),
            "dec": number(header, "DEC-MNT"),
        }
    )


def unit_fields(header: fits.Header, name: RawName) -> dict[str, Any]:
    """Fields of ``units/{unit_id}`` (written once, when the unit is first seen)."""
    latitude, longitude = number(header, "LAT-OBS"), number(header, "LONG-OBS")
    location = GeoPoint(latitude, longitude) if latitude is not None and longitude is not None else None
    return drop_none(
        {"unit_id": name.unit_id, "name": name.unit_id, "location": location, "elevation": number(header, "ELEV-OBS")}
    )


def header_id_mismatches(header: fits.Header, name: RawName) -> list[str]:
    """Where the header's ids disagree with the object's path (the path wins; this is a warning).
    OBSERVER counts only when it holds an id: POCS since 2020 writes the unit's name there."""
    found = []
    for key, expected in (("OBSERVER", name.unit_id), ("PANID", name.unit_id), ("INSTRUME", name.camera_id),
                          ("SEQID", name.sequence_id)):  # fmt: skip
        value = text(header, key)
        if key == "OBSERVER" and value is not None and not UNIT_RE.fullmatch(value):
            continue
        if value is not None and value != expected:
            found.append(f"{key}={value!r} but the path says {expected!r}")
    return found


def header_as_json(header: fits.Header) -> dict[str, Any]:
    """The header for people: keyword -> value, COMMENT/HISTORY as lists, junk keywords kept
    (this shows the file as it is)."""
    out: dict[str, Any] = {}
    for card in header.cards:
        if card.keyword in ("COMMENT", "HISTORY", ""):
            out.setdefault(card.keyword or "BLANK", []).append(str(card.value))
        else:
            value = card.value
            out[card.keyword] = value if isinstance(value, (str, int, float, bool)) else str(value)
    return out
