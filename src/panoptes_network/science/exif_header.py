"""A camera raw's EXIF and Canon MakerNotes as the FITS keywords POCS has always written.

POCS ran ``exiftool -j`` and copied these tags (exiftool names in brackets): ISO [ISO],
EXPTIME [ExposureTime], DATE-OBS [DateTimeOriginal], CAMTEMP [CameraTemperature], CIRCCONF
[CircleOfConfusion], COLORTMP [ColorTempMeasured], MEASEV [MeasuredEV], MEASEV2
[MeasuredEV2], MEASRGGB [MeasuredRGGB], WHTLVLN [NormalWhiteLevel], WHTLVLS
[SpecularWhiteLevel], REDBAL [RedBalance], BLUEBAL [BlueBalance], WBRGGB
[WB_RGGBLevelsAsShot], FILENAME [FileName], INTSN [InternalSerialNumber], CAMSN
[SerialNumber]. Here exifread reads the standard EXIF, and the Canon MakerNote IFD is read
directly (exifread drops ShotInfo[23] and long ColorData arrays), with exiftool's conversions,
so the values match what exiftool printed. A field the file does not hold is omitted, never
invented: exiftool's own "not available" raw values (0) count as missing.
"""

from __future__ import annotations

import io
import logging
import math
import struct
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import exifread

logger = logging.getLogger(__name__)

FROM_RAW = "From CR2"  # POCS's comment on the camera keywords

# Canon ColorData layouts, by the array's length: offsets of WB_RGGBLevelsAsShot,
# ColorTempAsShot, WB_RGGBLevelsMeasured, ColorTempMeasured and, per ColorDataVersion
# (element 0), NormalWhiteLevel/SpecularWhiteLevel (exiftool's Canon ColorData1 and 7).
COLOR_DATA_1 = {"as_shot": 0x19, "temp_as_shot": 0x1D}  # 20D, 350D
COLOR_DATA_7 = {
    "as_shot": 0x3F,
    "temp_as_shot": 0x43,
    "measured": 0x49,
    "temp_measured": 0x4D,
    "white_levels": {10: (508, 509), 11: (732, 733)},
}  # 100D, 1DX, 5DmkIII, 6D, 70D, 650D, 700D, 7DmkII, 750D, 760D
COLOR_DATA_LAYOUTS: dict[int, Mapping[str, Any]] = {
    582: COLOR_DATA_1,
    **{n: COLOR_DATA_7 for n in (1312, 1313, 1316, 1506)},
}

# MakerNote tags read (Canon numbering).
SHOT_INFO, SERIAL_NUMBER, INTERNAL_SERIAL, MEASURED_COLOR, COLOR_DATA = 0x0004, 0x000C, 0x0096, 0x00AA, 0x4001
TIFF_FORMATS = {1: "B", 2: "s", 3: "H", 4: "I", 6: "b", 7: "B", 8: "h", 9: "i"}


def read_tags(data: bytes) -> dict[str, Any]:
    """exifread's tags of a file (empty when it holds no readable EXIF)."""
    try:
        return dict(exifread.process_file(io.BytesIO(data), details=True, extract_thumbnail=False))
    except Exception as exc:  # exifread raises many kinds on garbage; no EXIF is a valid answer
        logger.info("no EXIF readable: %r", exc)
        return {}


def canon_makernote(data: bytes, tags: Mapping[str, Any]) -> dict[int, Any]:
    """The Canon MakerNote entries (tag -> tuple of values, or str), read from the file.

    Canon MakerNote offsets count from the TIFF header, which is at byte 0 of a CR2 or DNG.
    """
    note = tags.get("EXIF MakerNote")
    make = str(tags.get("Image Make", "")).strip()
    if note is None or not make.lower().startswith("canon") or data[:2] not in (b"II", b"MM"):
        return {}
    endian = "<" if data[:2] == b"II" else ">"
    try:
        return _read_ifd(data, note.field_offset, endian)
    except (struct.error, IndexError, ValueError) as exc:
        logger.info("unreadable Canon MakerNote: %r", exc)
        return {}


def _read_ifd(data: bytes, offset: int, endian: str) -> dict[int, Any]:
    (count,) = struct.unpack_from(endian + "H", data, offset)
    entries: dict[int, Any] = {}
    for index in range(count):
        tag, kind, n, value_offset = struct.unpack_from(endian + "HHII", data, offset + 2 + 12 * index)
        fmt = TIFF_FORMATS.get(kind)
        if fmt is None:
            continue
        size = struct.calcsize(fmt) * n
        start = offset + 2 + 12 * index + 8 if size <= 4 else value_offset
        if start + size > len(data):
            continue
        if kind == 2:
            entries[tag] = data[start : start + n].split(b"\0", 1)[0].decode("ascii", "replace").strip()
        else:
            entries[tag] = struct.unpack_from(f"{endian}{n}{fmt}", data, start)
    return entries


def _signed(value: int) -> int:
    return value - 0x10000 if value >= 0x8000 else value


def _first(tags: Mapping[str, Any], key: str) -> Any:
    tag = tags.get(key)
    if tag is None or not getattr(tag, "values", None):
        return None
    return tag.values[0] if isinstance(tag.values, list) else tag.values


def _ratio(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(Fraction(value.num, value.den)) if hasattr(value, "num") else float(value)
    except (ZeroDivisionError, ValueError, TypeError):
        return None


def circle_of_confusion(tags: Mapping[str, Any]) -> str | None:
    """exiftool's CircleOfConfusion: the 35 mm diagonal / crop factor / 1440, from the focal plane."""
    x_res, y_res = (
        _ratio(_first(tags, "EXIF FocalPlaneXResolution")),
        _ratio(_first(tags, "EXIF FocalPlaneYResolution")),
    )
    width, height = _first(tags, "EXIF ExifImageWidth"), _first(tags, "EXIF ExifImageLength")
    unit = {2: 25.4, 3: 10.0, 4: 1.0}.get(_first(tags, "EXIF FocalPlaneResolutionUnit") or 2)
    if not (x_res and y_res and width and height and unit):
        return None
    diagonal_mm = math.hypot(width / x_res * unit, height / y_res * unit)
    crop = math.hypot(36, 24) / diagonal_mm
    return f"{math.hypot(36, 24) / crop / 1440:.3f} mm"


def _balance(levels: tuple[int, ...], index: int) -> float:
    return round(levels[index] / ((levels[1] + levels[2]) / 2), 6)


def _color_data_cards(values: tuple[int, ...]) -> dict[str, tuple[Any, str]]:
    layout = COLOR_DATA_LAYOUTS.get(len(values))
    if layout is None:
        return {}
    values = tuple(_signed(v) for v in values)
    cards: dict[str, tuple[Any, str]] = {}
    if "temp_measured" in layout and values[layout["temp_measured"]]:
        cards["COLORTMP"] = (values[layout["temp_measured"]], FROM_RAW)
    as_shot = values[layout["as_shot"] : layout["as_shot"] + 4]
    if all(as_shot):
        cards["REDBAL"] = (_balance(as_shot, 0), FROM_RAW)
        cards["BLUEBAL"] = (_balance(as_shot, 3), FROM_RAW)
        cards["WBRGGB"] = (" ".join(map(str, as_shot)), FROM_RAW)
    white = layout.get("white_levels", {}).get(values[0])
    if white and values[white[0]] and values[white[1]]:
        cards["WHTLVLN"] = (values[white[0]], FROM_RAW)
        cards["WHTLVLS"] = (values[white[1]], FROM_RAW)
    return cards


def makernote_cards(makernote: Mapping[int, Any]) -> dict[str, tuple[Any, str]]:
    """The POCS keywords that come from Canon MakerNotes."""
    cards: dict[str, tuple[Any, str]] = {}
    shot = makernote.get(SHOT_INFO)
    if isinstance(shot, tuple):
        shot = tuple(_signed(v) for v in shot)
        if len(shot) > 12 and shot[12]:  # raw 0: not available (exiftool RawConv)
            cards["CAMTEMP"] = (f"{shot[12] - 128} C", "Celsius - From CR2")
        if len(shot) > 3 and shot[3]:
            cards["MEASEV"] = (round(shot[3] / 32 + 5, 2), FROM_RAW)
        if len(shot) > 23 and shot[23]:
            cards["MEASEV2"] = (shot[23] / 8 - 6, FROM_RAW)
    measured = makernote.get(MEASURED_COLOR)
    if isinstance(measured, tuple) and len(measured) >= 5:
        cards["MEASRGGB"] = (" ".join(map(str, measured[1:5])), FROM_RAW)
    color = makernote.get(COLOR_DATA)
    if isinstance(color, tuple):
        cards.update(_color_data_cards(color))
    if isinstance(makernote.get(INTERNAL_SERIAL), str) and makernote[INTERNAL_SERIAL]:
        cards["INTSN"] = (makernote[INTERNAL_SERIAL], FROM_RAW)
    serial = makernote.get(SERIAL_NUMBER)
    if isinstance(serial, tuple) and serial and serial[0]:
        cards["CAMSN"] = (f"{serial[0]:010d}", FROM_RAW)
    return cards


def exif_cards(tags: Mapping[str, Any]) -> dict[str, tuple[Any, str | None]]:
    """The POCS keywords from standard EXIF (ISO, EXPTIME, DATE-OBS, CIRCCONF)."""
    cards: dict[str, tuple[Any, str | None]] = {}
    iso = _first(tags, "EXIF ISOSpeedRatings")
    if iso:
        cards["ISO"] = (int(iso), "ISO speed")
    exptime = _ratio(_first(tags, "EXIF ExposureTime"))
    if exptime:
        cards["EXPTIME"] = (exptime, "Seconds")
    taken = tags.get("EXIF DateTimeOriginal")
    if taken is not None and str(taken).strip():
        text = str(taken).strip().replace(":", "-", 2).replace(" ", "T", 1)
        cards["DATE-OBS"] = (text, "camera clock (DateTimeOriginal)")
    if coc := circle_of_confusion(tags):
        cards["CIRCCONF"] = (coc, FROM_RAW)
    return cards


def camera_cards(data: bytes, filename: str) -> dict[str, tuple[Any, str | None]]:
    """Every POCS camera keyword the raw holds, plus FILENAME (the raw's own file name)."""
    tags = read_tags(data)
    cards = {**exif_cards(tags), **makernote_cards(canon_makernote(data, tags))}
    cards["FILENAME"] = (filename, FROM_RAW)
    return cards
