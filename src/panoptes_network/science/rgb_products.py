"""Everything make-rgb-fits makes from one camera raw, as bytes: pure, no storage.

- the raw Bayer FITS (``.fits.fz``): LibRaw's visible mosaic, uint16, Rice (lossless), with the
  POCS camera keywords, FILTER, black and white levels and the ids from the path;
- three colour FITS (R, G, B): linear planes in the mosaic's ADU, the raw header copied plus
  COLOR and INTERP;
- a JPEG preview.

Orientation: FITS row 1 (drawn at the bottom by FITS viewers, "origin lower left") holds the
sensor's first row as LibRaw and ``dcraw -D`` deliver it, exactly as POCS stored its
dcraw-made FITS. Rows are not flipped, so FILTER (e.g. RGGB) is the layout starting at FITS
pixel (1, 1), and unit-made and pipeline-made FITS of one camera are pixel-compatible.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from astropy.io import fits

from panoptes_network.core.errors import BadInput, OverLimit
from panoptes_network.core.names import RawName
from panoptes_network.core.settings import DEFAULT_LIMITS, Limits
from panoptes_network.science import fits_codec
from panoptes_network.science.bayer_interpolation import COLORS, Method, half_size, interpolate
from panoptes_network.science.exif_header import camera_cards
from panoptes_network.science.header_metadata import camera_fields as header_camera_fields
from panoptes_network.science.preview_jpeg import preview
from panoptes_network.science.raw_decoding import DecodedRaw, decode

# Serial numbers: kept in the FITS header, never in records or error messages (docs/ARCHITECTURE.md "Records").
PRIVATE_KEYWORDS = ("CAMSN", "INTSN")
ORIENTATION_NOTE = (
    "Row 1 is the sensor's first row as LibRaw/dcraw -D read it (not flipped); "
    "FILTER is the 2x2 layout from pixel (1,1)."
)


@dataclasses.dataclass(frozen=True)
class RgbSettings:
    """Defaults of make-rgb-fits: bilinear full resolution (``HALF_SIZE`` for LibRaw's half-size)."""

    method: Method = Method.BILINEAR


@dataclasses.dataclass(frozen=True)
class Products:
    raw_fits: bytes
    color_fits: dict[str, bytes]  # "R" | "G" | "B" -> FITS bytes
    jpeg: bytes
    preview_source: str  # "embedded" | "rendered"
    header: fits.Header  # the raw FITS header


def exif_summary(cards: dict[str, tuple[Any, str | None]]) -> str:
    """The camera keywords as ``KEY=value`` pairs for a rejection message (no serial numbers)."""
    return ", ".join(f"{key}={value!r}" for key, (value, _) in cards.items() if key not in PRIVATE_KEYWORDS)


def raw_header(cards: dict[str, tuple[Any, str | None]], decoded: DecodedRaw, name: RawName) -> fits.Header:
    """The raw FITS header: POCS camera keywords, Bayer layout and levels, ids from the path."""
    header = fits.Header()
    for key, (value, comment) in cards.items():
        header[key] = (value, comment)
    header["FILTER"] = (decoded.pattern, "Bayer 2x2 layout from pixel (1,1), from LibRaw")
    for index, level in enumerate(decoded.black_levels, start=1):
        header[f"BLACK{index}"] = (level, f"black level (ADU) of FILTER letter {index}")
    header["WHITELVL"] = (decoded.white_level, "saturation level (ADU), from LibRaw")
    header["PANID"] = (name.unit_id, "PANOPTES unit id (from the path)")
    header["INSTRUME"] = (name.camera_id, "Camera ID (from the path)")
    header["SEQID"] = (name.sequence_id, "from the path")
    header["IMAGEID"] = (name.image_id, "from the path")
    header["COMMENT"] = ORIENTATION_NOTE
    return header


def color_fits(plane: np.ndarray, header: fits.Header, color: str, method: Method) -> bytes:
    """One colour plane as a plain FITS file (uint16, lossless) with the raw header copied."""
    plane_header = header.copy()
    plane_header["COLOR"] = (color, "colour plane of the Bayer mosaic")
    plane_header["INTERP"] = (method.value, "linear: no gamma, white balance, scaling")
    return fits_codec.to_bytes(fits.HDUList([fits.PrimaryHDU(plane, plane_header)]))


def read_raw(
    data: bytes, name: RawName, limits: Limits = DEFAULT_LIMITS
) -> tuple[DecodedRaw, dict[str, tuple[Any, str | None]]]:
    """Decode the raw and read its EXIF; when LibRaw refuses it, ``BadInput`` names the EXIF read."""
    filename = name.path.rsplit("/", 1)[-1]
    cards = camera_cards(data, filename)
    try:
        return decode(data, name.path, limits), cards
    except OverLimit:
        raise
    except BadInput as exc:
        readable = {k: v for k, v in cards.items() if k != "FILENAME" and k not in PRIVATE_KEYWORDS}
        summary = exif_summary(readable) or "none"
        exif = {key: value for key, (value, _) in readable.items()}
        raise BadInput(f"{exc.message}; EXIF read: {summary}", exc.nested, details={"exif": exif}) from exc


def raw_fits(data: bytes, name: RawName, limits: Limits = DEFAULT_LIMITS) -> tuple[DecodedRaw, fits.Header, bytes]:
    """Decode the raw and make its ``.fits.fz`` (mosaic + POCS header, Rice, lossless)."""
    decoded, cards = read_raw(data, name, limits)
    header = raw_header(cards, decoded, name)
    return decoded, header, fits_codec.compressed_file(decoded.mosaic, header)


def color_files(decoded: DecodedRaw, header: fits.Header, method: Method) -> dict[str, bytes]:
    """The R, G and B FITS files of a decoded raw."""
    planes = interpolate(decoded.mosaic, decoded.pattern, method)
    return {color: color_fits(planes.pop(color), header, color, method) for color in COLORS}


def make_products(
    data: bytes, name: RawName, settings: RgbSettings = RgbSettings(), limits: Limits = DEFAULT_LIMITS
) -> Products:
    """All outputs for one raw, deterministic (same bytes in, same content out)."""
    decoded, header, raw_file = raw_fits(data, name, limits)
    colors = color_files(decoded, header, settings.method)
    half = half_size(decoded.mosaic, decoded.pattern)
    jpeg, source = preview(decoded.preview, half, float(np.mean(decoded.black_levels)))
    return Products(raw_file, colors, jpeg, source, header)


def camera_fields(header: fits.Header) -> dict[str, Any]:
    """The image's camera readings for the metadata store (no serials): the same fields
    record-image derives from a FITS header, plus what only the raw tells."""
    fields = {
        **header_camera_fields(header),
        "bayer_pattern": header["FILTER"],
        "black_levels": [header[f"BLACK{i}"] for i in range(1, 5)],
        "white_level": header["WHITELVL"],
    }
    if "WBRGGB" in header:
        fields["wb_rggb_as_shot"] = [int(v) for v in header["WBRGGB"].split()]
    return fields
