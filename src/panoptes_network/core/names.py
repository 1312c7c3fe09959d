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
SEQUENCE_ID_RE = re.compile(r"(PAN\d{3})_([0-9A-Za-z]{6})_(\d{8}T\d{6})")
# The object a unit may upload under a sequence's folder once the sequence is over
# (``PAN001/14d3bd/20181011T134202/sequence-complete.json``, any content): the observation is
# processed at once instead of after the quiet period.
END_MARKER = "sequence-complete.json"
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
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _id_time(value: str | None) -> str | None:
    """The trailing time of an id such as ``PAN001_XXXXXX_20160909T081152``."""
    if value is None:
        return None
    match = re.search(r"(\d{8}T\d{6})$", value)
    return match.group(1) if match else None


def raw_name_from_header(header: Mapping[str, Any], extension: str) -> RawName:
    """Derive the canonical name of a FITS file from its POCS header.

    Unit from PANID or OBSERVER, camera from INSTRUME, sequence time from SEQID. The image
    time comes from IMAGEID when it differs from SEQID (early POCS wrote the sequence id into
    both), else from the stem of FILENAME (the raw's name), else from DATE-OBS.
    """
    unit = _header_text(header, "PANID") or _header_text(header, "OBSERVER")
    camera = _header_text(header, "INSTRUME")
    seq_id = _header_text(header, "SEQID")
    image_id = _header_text(header, "IMAGEID")
    sequence_time = _id_time(seq_id)
    image_time = _id_time(image_id) if image_id != seq_id else None
    if image_time is None:
        filename_stem = split_extension(_header_text(header, "FILENAME") or "")[0]
        image_time = filename_stem if TIME_RE.fullmatch(filename_stem) else None
    if image_time is None and (date_obs := _header_text(header, "DATE-OBS")):
        try:
            image_time = dt.datetime.fromisoformat(date_obs).strftime(TIME_FORMAT)
        except ValueError:
            image_time = None
    missing = [
        key
        for key, value in (
            ("PANID/OBSERVER", unit),
            ("INSTRUME", camera),
            ("SEQID", sequence_time),
            ("IMAGEID/FILENAME/DATE-OBS", image_time),
        )
        if value is None
    ]
    if missing:
        raise BadInput(f"header lacks {', '.join(missing)}: cannot derive {EXPECTED_FORM}")
    return parse_raw_name(f"{unit}/{camera}/{sequence_time}/{image_time}.{extension}")


def sequence_folder(sequence_id: str) -> str:
    """``PAN001_14d3bd_20181011T134202`` -> ``PAN001/14d3bd/20181011T134202``: the folder of the
    sequence's frames, and of the observation's products in the processed bucket."""
    match = SEQUENCE_ID_RE.fullmatch(sequence_id)
    if match is None:
        raise BadInput(
            f"sequence id {sequence_id!r} is not {{unit}}_{{camera}}_{{sequence_time}}, e.g. PAN001_14d3bd_20181011T134202"
        )
    parse_time(match.group(3), "sequence time")
    return "/".join(match.groups())


def end_marker_sequence(name: str) -> str | None:
    """The sequence id when ``name`` is a sequence's end marker (legacy field folder allowed), else None."""
    parts = name.split("/")
    if len(parts) not in (4, 5) or parts[-1] != END_MARKER:
        return None
    unit, camera, sequence_time = parts[0], parts[-3], parts[-2]
    if not (UNIT_RE.fullmatch(unit) and CAMERA_RE.fullmatch(camera) and TIME_RE.fullmatch(sequence_time)):
        return None
    return f"{unit}_{camera}_{sequence_time}"
