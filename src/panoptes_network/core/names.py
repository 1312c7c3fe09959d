"""Raw object names and the ids derived from them (docs/ARCHITECTURE.md "Names and ids").

A raw object is ``{unit_id}/{camera_id}/{sequence_time}/{image_time}.{ext}``; legacy uploads
put a field-name folder after the unit. Everything downstream (ids, output paths) is derived
from the parsed name, so a name that does not parse is rejected here with the expected form.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Mapping
from typing import Any

from panoptes_network.core.errors import BadInput

EXPECTED_FORM = (
    "{unit_id}/{camera_id}/{sequence_time}/{image_time}.{ext}, "
    "e.g. PAN001/14d3bd/20181011T134202/20181011T134333.fits.fz "
    "(legacy: a field folder after the unit; unit PAN + 3 digits, camera 6 letters or digits, "
    "times YYYYMMDDTHHMMSS UTC)"
)

UNIT_RE = re.compile(r"PAN\d{3}")
CAMERA_RE = re.compile(r"[0-9A-Za-z]{6}")
TIME_RE = re.compile(r"\d{8}T\d{6}")
POINTING_RE = re.compile(r"pointing\d+", re.IGNORECASE)
TIME_FORMAT = "%Y%m%dT%H%M%S"

# Camera raw formats LibRaw reads that a unit may upload (matched case-insensitively).
RAW_EXTENSIONS = frozenset({"cr2", "cr3", "dng", "nef", "arw", "raf", "orf", "rw2", "pef", "kdc"})


class FileKind(str, enum.Enum):
    """What a raw object is, judged from its extension."""

    FITS = "fits"
    FITS_FZ = "fits.fz"
    RAW = "raw"
    OTHER = "other"


def file_kind(extension: str) -> FileKind:
    """Classify a lower-case extension without the leading dot (``fits.fz``, ``cr2``...)."""
    if extension in ("fits", "fit", "fts"):
        return FileKind.FITS
    if extension in ("fits.fz", "fit.fz", "fts.fz", "fz"):
        return FileKind.FITS_FZ
    if extension in RAW_EXTENSIONS:
        return FileKind.RAW
    return FileKind.OTHER


def split_extension(filename: str) -> tuple[str, str]:
    """Split ``20181011T134333.fits.fz`` into (``20181011T134333``, ``fits.fz``), ext lower-cased."""
    stem, dot, ext = filename.partition(".")
    return stem, ext.lower() if dot else ""


def parse_time(text: str, what: str) -> dt.datetime:
    """Parse a ``YYYYMMDDTHHMMSS`` UTC time, naming ``what`` in the error."""
    if not TIME_RE.fullmatch(text):
        raise BadInput(f"{what} {text!r} is not YYYYMMDDTHHMMSS; expected {EXPECTED_FORM}")
    try:
        return dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise BadInput(f"{what} {text!r} is not a valid date and time", exc) from exc


@dataclasses.dataclass(frozen=True)
class RawName:
    """A parsed raw object name."""

    unit_id: str
    camera_id: str
    sequence_time: str
    image_name: str  # image time, or pointingNN for pointing images
    extension: str  # lower case, without the leading dot
    field_name: str | None = None

    @property
    def kind(self) -> FileKind:
        return file_kind(self.extension)

    @property
    def is_pointing(self) -> bool:
        return POINTING_RE.fullmatch(self.image_name) is not None

    @property
    def sequence_id(self) -> str:
        return f"{self.unit_id}_{self.camera_id}_{self.sequence_time}"

    @property
    def image_id(self) -> str:
        """``{unit}_{camera}_{image_time}``; pointing images keep their name in place of a time."""
        return f"{self.unit_id}_{self.camera_id}_{self.image_name}"

    @property
    def image_time(self) -> dt.datetime | None:
        return None if self.is_pointing else parse_time(self.image_name, "image time")

    @property
    def base_path(self) -> str:
        """The canonical path without extension (legacy field folders dropped)."""
        return f"{self.unit_id}/{self.camera_id}/{self.sequence_time}/{self.image_name}"

    @property
    def path(self) -> str:
        """The canonical object name, extension as lower case."""
        return f"{self.base_path}.{self.extension}" if self.extension else self.base_path

    def with_extension(self, extension: str) -> RawName:
        return dataclasses.replace(self, extension=extension)


def parse_raw_name(name: str) -> RawName:
    """Parse a raw bucket object name; raise ``BadInput`` naming the expected form."""
    if not name or len(name) > 1024:
        raise BadInput(f"object name is empty or too long; expected {EXPECTED_FORM}")
    if name.startswith("/") or "\\" in name or any(ord(c) < 32 for c in name):
        raise BadInput(f"object name {name!r} is not a relative path; expected {EXPECTED_FORM}")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise BadInput(f"object name {name!r} has empty, '.' or '..' parts; expected {EXPECTED_FORM}")
    if len(parts) == 5:
        unit, field_name, camera, sequence_time, filename = parts
    elif len(parts) == 4:
        unit, camera, sequence_time, filename = parts
        field_name = None
    else:
        raise BadInput(f"object name {name!r} has {len(parts)} parts; expected {EXPECTED_FORM}")
    if not UNIT_RE.fullmatch(unit):
        raise BadInput(f"unit {unit!r} in {name!r} is not PAN + 3 digits; expected {EXPECTED_FORM}")
    if not CAMERA_RE.fullmatch(camera):
        raise BadInput(f"camera id {camera!r} in {name!r} is not 6 letters or digits; expected {EXPECTED_FORM}")
    parse_time(sequence_time, "sequence time")
    stem, extension = split_extension(filename)
    if not POINTING_RE.fullmatch(stem):
        parse_time(stem, "image time")
    else:
        stem = stem.lower()
    return RawName(unit, camera, sequence_time, stem, extension, field_name)


def _header_text(header: Mapping[str, Any], key: str) -> str | None:
    value = header.get(key)
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def _id_time(value: str | None) -> str | None:
    """The trailing time of an id such as ``PAN001_XXXXXX_20160909T081152``."""
    if value is None:
        return None
    match = re.search(r"(\d{8}T\d{6})$", value)
    return match.group(1) if match else None


ID_RE = re.compile(r"(PAN\d{3})_([0-9A-Za-z]{6})_(\d{8}T\d{6}|(?i:pointing)\d+)")


@dataclasses.dataclass(frozen=True)
class NameHints:
    """What the person running ``process`` says about files whose headers carry no ids
    (``--unit``, ``--camera``; the sequence time is the run's earliest frame). The header's
    own ids win where it has them."""

    unit_id: str | None = None
    camera_id: str | None = None
    sequence_time: str | None = None


NO_HINTS = NameHints()


@dataclasses.dataclass(frozen=True)
class HeaderIds:
    """The parts of a canonical name a header carries (None where it says nothing usable)."""

    unit_id: str | None
    camera_id: str | None
    sequence_time: str | None
    image_name: str | None  # an image time, or ``pointingNN``


def _matching(value: str | None, pattern: re.Pattern[str]) -> str | None:
    return value if value is not None and pattern.fullmatch(value) else None


def _image_name(stem: str) -> str | None:
    if TIME_RE.fullmatch(stem):
        return stem
    return stem.lower() if POINTING_RE.fullmatch(stem) else None


def header_ids(header: Mapping[str, Any]) -> HeaderIds:
    """Unit, camera, sequence time and image name from a POCS header.

    POCS writes the ids as ``{unit}_{camera}_{time}`` into SEQID and IMAGEID, and since 2020 the
    unit's *name* ("Testing PANOPTES Unit") into OBSERVER, so unit and camera come from the ids
    first, then from PANID/OBSERVER and INSTRUME when those look like ids. The image comes from
    IMAGEID when it differs from SEQID (early POCS wrote the sequence id into both), else from
    the stem of FILENAME (the raw's name), else from DATE-OBS.
    """
    seq_text, image_text = _header_text(header, "SEQID"), _header_text(header, "IMAGEID")
    seq_id = ID_RE.fullmatch(seq_text or "")
    image_id = ID_RE.fullmatch(image_text or "") if image_text != seq_text else None
    ids = [m for m in (seq_id, image_id) if m is not None]
    unit = next((m.group(1) for m in ids), None) or next(
        (u for key in ("PANID", "OBSERVER") if (u := _matching(_header_text(header, key), UNIT_RE))), None
    )
    camera = next((m.group(2) for m in ids), None) or _matching(_header_text(header, "INSTRUME"), CAMERA_RE)
    image_name = None
    if image_text != seq_text:
        image_name = _image_name(image_id.group(3) if image_id else _id_time(image_text) or "")
    if image_name is None:
        image_name = _image_name(split_extension(_header_text(header, "FILENAME") or "")[0])
    if image_name is None and (date_obs := _header_text(header, "DATE-OBS")):
        try:
            image_name = dt.datetime.fromisoformat(date_obs).strftime(TIME_FORMAT)
        except ValueError:
            image_name = None
    sequence_time = seq_id.group(3) if seq_id and TIME_RE.fullmatch(seq_id.group(3)) else _id_time(seq_text)
    return HeaderIds(unit, camera, sequence_time, image_name)


def raw_name_from_header(header: Mapping[str, Any], extension: str, hints: NameHints = NO_HINTS) -> RawName:
    """Derive the canonical name of a FITS file from its POCS header (``header_ids``), the
    ``hints`` filling what the header lacks; a file without a sequence id but with ``hints``
    is its own sequence unless the hints name one."""
    ids = header_ids(header)
    unit = ids.unit_id or hints.unit_id
    camera = ids.camera_id or hints.camera_id
    sequence_time = ids.sequence_time or hints.sequence_time
    if sequence_time is None and (hints.unit_id or hints.camera_id) and ids.image_name:
        sequence_time = _matching(ids.image_name, TIME_RE)
    missing = [
        what
        for what, value in (
            ("a unit id (SEQID/IMAGEID, PANID or OBSERVER as PAN + 3 digits)", unit),
            ("a camera id (SEQID/IMAGEID or INSTRUME as 6 letters or digits)", camera),
            ("a sequence time (SEQID)", sequence_time),
            ("an image time (IMAGEID/FILENAME/DATE-OBS)", ids.image_name),
        )
        if value is None
    ]
    if missing:
        raise BadInput(f"header lacks {'; '.join(missing)}: cannot derive {EXPECTED_FORM}")
    return parse_raw_name(f"{unit}/{camera}/{sequence_time}/{ids.image_name}.{extension}")
