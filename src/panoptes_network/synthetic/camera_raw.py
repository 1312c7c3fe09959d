"""Realistic synthetic camera raws (DNG), for tests, benchmarks and demos of make-rgb-fits.

No real Canon CR2 with pixel data can ship with the project, so this writes what LibRaw
reads through the same path: an uncompressed DNG holding a Bayer mosaic (5208x3476 RGGB on a
2048 ADU black level by default, the sky and stars of ``synthetic.make_frame``), an EXIF IFD
modelled on ``canon-exif-only.cr2`` (ISO, ExposureTime, DateTimeOriginal, focal-plane
resolution) and Canon MakerNotes laid out as an EOS 100D writes them (ShotInfo with
MeasuredEV/MeasuredEV2/CameraTemperature, SerialNumber, InternalSerialNumber, MeasuredColor,
ColorData version 10). The file can be named ``.cr2``: LibRaw and exifread look at the bytes.

pidng fails on Python 3.11 and tifffile cannot write an EXIF IFD with MakerNotes, so the TIFF
structure is written here (little endian, one strip).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from panoptes_network.synthetic.frames import BLACK_LEVEL, SATURATION, FrameSpec, make_frame

# TIFF field types used here: code, struct format of one value.
BYTE, ASCII, SHORT, LONG, RATIONAL, UNDEFINED, SRATIONAL = 1, 2, 3, 4, 5, 7, 10
FORMATS = {BYTE: "B", ASCII: "B", SHORT: "H", LONG: "I", RATIONAL: "II", UNDEFINED: "B", SRATIONAL: "ii"}

# Colour indices of DNG CFAPattern (0 red, 1 green, 2 blue) for the 2x2 layouts LibRaw reports.
CFA_CODES = {"R": 0, "G": 1, "B": 2}


@dataclasses.dataclass(frozen=True)
class Placed:
    """A value already written elsewhere in the file: ``count`` items at ``offset``."""

    count: int
    offset: int


Value = str | bytes | Sequence[int] | Sequence[tuple[int, int]] | Placed


@dataclasses.dataclass(frozen=True)
class Entry:
    tag: int
    type: int
    value: Value

    def packed(self) -> tuple[int, bytes]:
        """(count, little-endian bytes) of the value."""
        if isinstance(self.value, str):
            raw = self.value.encode("ascii") + b"\0"
            return len(raw), raw
        if isinstance(self.value, bytes):
            return len(self.value), self.value
        items = list(self.value)  # type: ignore[arg-type]
        flat = [v for item in items for v in (item if isinstance(item, tuple) else (item,))]
        return len(items), struct.pack("<" + FORMATS[self.type][0] * len(flat), *flat)


def ifd_size(entries: Sequence[Entry]) -> int:
    """Bytes taken by an IFD and its out-of-line values."""
    return len(tiff_ifd(entries, 0))


def tiff_ifd(entries: Sequence[Entry], start: int, next_ifd: int = 0) -> bytes:
    """One IFD placed at file offset ``start``, followed by its out-of-line values."""
    entries = sorted(entries, key=lambda e: e.tag)
    data_start = start + 2 + 12 * len(entries) + 4
    table, data = [struct.pack("<H", len(entries))], bytearray()
    for entry in entries:
        if isinstance(entry.value, Placed):
            table.append(struct.pack("<HHII", entry.tag, entry.type, entry.value.count, entry.value.offset))
            continue
        count, raw = entry.packed()
        if len(raw) <= 4:
            table.append(struct.pack("<HHI", entry.tag, entry.type, count) + raw.ljust(4, b"\0"))
        else:
            table.append(struct.pack("<HHII", entry.tag, entry.type, count, data_start + len(data)))
            data += raw + (b"\0" if len(raw) % 2 else b"")
    table.append(struct.pack("<I", next_ifd))
    return b"".join(table) + bytes(data)


@dataclasses.dataclass(frozen=True)
class CameraMetadata:
    """What the EXIF and MakerNotes of the synthetic raw say (values as a real 100D stores them)."""

    model: str = "Canon EOS 100D"
    iso: int = 100
    exposure: tuple[int, int] = (120, 1)  # seconds as a rational
    camera_temperature_c: int = 12
    measured_ev_raw: int = -276  # ShotInfo[3]: EV = raw / 32 + 5 -> -3.625
    measured_ev2_raw: int = 19  # ShotInfo[23]: EV2 = raw / 8 - 6 -> -3.625
    serial_number: int = 2070048413  # a LONG in the MakerNotes
    internal_serial: str = "HA0028608"
    measured_rggb: tuple[int, int, int, int] = (471, 1024, 1024, 733)
    wb_as_shot: tuple[int, int, int, int] = (2064, 1024, 1024, 1526)
    color_temp_as_shot: int = 5200
    wb_measured: tuple[int, int, int, int] = (2070, 1024, 1024, 1520)
    color_temp_measured: int = 5386
    normal_white_level: int = 11765
    specular_white_level: int = 12277
    sensor_mm: tuple[float, float] = (22.3, 14.9)
    focal_length_mm: int = 85


COLOR_DATA_LENGTH = 1312  # Canon ColorData7, version 10 (100D, 1DX, 5DmkIII, 6D, 70D, 650D, 700D)


def color_data(meta: CameraMetadata) -> list[int]:
    """Canon ColorData7 (version 10) with the white balance and white levels filled in."""
    values = [0] * COLOR_DATA_LENGTH
    values[0] = 10
    values[63:67], values[67] = meta.wb_as_shot, meta.color_temp_as_shot
    values[73:77], values[77] = meta.wb_measured, meta.color_temp_measured
    values[508], values[509] = meta.normal_white_level, meta.specular_white_level
    return values


def canon_makernote(meta: CameraMetadata, start: int) -> bytes:
    """A Canon MakerNote IFD placed at ``start`` (Canon offsets count from the TIFF header)."""
    shot_info = [0] * 34
    shot_info[0] = 68
    shot_info[3] = meta.measured_ev_raw & 0xFFFF
    shot_info[12] = meta.camera_temperature_c + 128
    shot_info[23] = meta.measured_ev2_raw & 0xFFFF
    entries = [
        Entry(0x0004, SHORT, shot_info),
        Entry(0x0006, ASCII, meta.model),
        Entry(0x000C, LONG, [meta.serial_number]),
        Entry(0x0096, ASCII, meta.internal_serial),
        Entry(0x00AA, SHORT, [10, *meta.measured_rggb]),
        Entry(0x4001, SHORT, color_data(meta)),
    ]
    return tiff_ifd(entries, start)


def exif_entries(meta: CameraMetadata, spec: FrameSpec, makernote: Placed, shape: tuple[int, int]) -> list[Entry]:
    """The EXIF IFD: what ``canon-exif-only.cr2`` carries that the FITS header uses."""
    width_in = meta.sensor_mm[0] / 25.4
    height_in = meta.sensor_mm[1] / 25.4
    return [
        Entry(0x829A, RATIONAL, [meta.exposure]),
        Entry(0x829D, RATIONAL, [(8, 1)]),
        Entry(0x8827, SHORT, [meta.iso]),
        Entry(0x9003, ASCII, spec.image_time.strftime("%Y:%m:%d %H:%M:%S")),
        Entry(0x920A, RATIONAL, [(meta.focal_length_mm, 1)]),
        Entry(0x927C, UNDEFINED, makernote),
        Entry(0xA002, LONG, [shape[1]]),
        Entry(0xA003, LONG, [shape[0]]),
        Entry(0xA20E, RATIONAL, [(round(shape[1] / width_in * 1000), 1000)]),
        Entry(0xA20F, RATIONAL, [(round(shape[0] / height_in * 1000), 1000)]),
        Entry(0xA210, SHORT, [2]),
    ]


def dng_entries(
    meta: CameraMetadata, mosaic: np.ndarray, pattern: str, exif_offset: int, strip_offset: int
) -> list[Entry]:
    """IFD0 of an uncompressed CFA DNG that LibRaw reads."""
    rows, cols = mosaic.shape
    return [
        Entry(0x00FE, LONG, [0]),
        Entry(0x0100, LONG, [cols]),
        Entry(0x0101, LONG, [rows]),
        Entry(0x0102, SHORT, [16]),
        Entry(0x0103, SHORT, [1]),
        Entry(0x0106, SHORT, [32803]),  # CFA
        Entry(0x010F, ASCII, "Canon"),
        Entry(0x0110, ASCII, meta.model),
        Entry(0x0111, LONG, [strip_offset]),
        Entry(0x0115, SHORT, [1]),
        Entry(0x0116, LONG, [rows]),
        Entry(0x0117, LONG, [mosaic.nbytes]),
        Entry(0x011C, SHORT, [1]),
        Entry(0x828D, SHORT, [2, 2]),
        Entry(0x828E, BYTE, [CFA_CODES[c] for c in pattern]),
        Entry(0x8769, LONG, [exif_offset]),
        Entry(0xC612, BYTE, [1, 4, 0, 0]),
        Entry(0xC614, ASCII, meta.model),
        Entry(0xC61A, SHORT, [BLACK_LEVEL]),
        Entry(0xC61D, SHORT, [BLACK_LEVEL + SATURATION]),
        # A plausible Canon colour matrix (XYZ -> camera, x10000) and daylight illuminant.
        Entry(0xC621, SRATIONAL, [(v, 10000) for v in (6602, -841, -939, -4472, 12458, 2247, -975, 2039, 6148)]),
        Entry(0xC65A, SHORT, [21]),
    ]


def dng_bytes(
    mosaic: np.ndarray, spec: FrameSpec, meta: CameraMetadata = CameraMetadata(), pattern: str = "RGGB"
) -> bytes:
    """A DNG file holding ``mosaic`` (uint16, row 0 at the top) with EXIF and Canon MakerNotes."""
    mosaic = np.ascontiguousarray(mosaic, dtype="<u2")
    ifd0_size = ifd_size(dng_entries(meta, mosaic, pattern, 0, 0))
    exif_offset = 8 + ifd0_size
    makernote_size = len(canon_makernote(meta, 0))
    exif_size = ifd_size(exif_entries(meta, spec, Placed(makernote_size, 0), mosaic.shape))
    makernote_offset = exif_offset + exif_size
    strip_offset = makernote_offset + makernote_size
    strip_offset += strip_offset % 2
    parts = [
        b"II*\0" + struct.pack("<I", 8),
        tiff_ifd(dng_entries(meta, mosaic, pattern, exif_offset, strip_offset), 8),
        tiff_ifd(exif_entries(meta, spec, Placed(makernote_size, makernote_offset), mosaic.shape), exif_offset),
        canon_makernote(meta, makernote_offset),
    ]
    header = b"".join(parts)
    return header.ljust(strip_offset, b"\0") + mosaic.tobytes()


def raw_path(spec: FrameSpec, extension: str = "cr2") -> str:
    """The canonical raw-bucket name of the synthetic raw."""
    return spec.path().rsplit(".", 1)[0] + "." + extension


def make_raw(spec: FrameSpec = FrameSpec(), meta: CameraMetadata = CameraMetadata()) -> tuple[np.ndarray, bytes]:  # noqa: B008 (frozen)
    """A realistic full-size RGGB mosaic and its DNG bytes."""
    mosaic, _ = make_frame(spec)
    return mosaic, dng_bytes(mosaic, spec, meta)


def write_raw(spec: FrameSpec, root: Path, extension: str = "cr2") -> Path:
    """Write the synthetic raw as ``root/{canonical path}`` (``.cr2`` by default, DNG inside)."""
    _, data = make_raw(spec)
    path = Path(root) / raw_path(spec, extension)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
