"""Camera raw bytes -> the visible Bayer mosaic and what LibRaw knows about it (rawpy).

The mosaic is LibRaw's ``raw_image_visible`` (equal to ``dcraw -t 0 -D -4``), row 0 being the
sensor's top row as LibRaw reads it. The Bayer layout is LibRaw's own (``raw_pattern`` through
``color_desc``), so any 2x2 layout comes out right, not only RGGB. Anything LibRaw cannot
read (no pixel data, truncated, not a raw) is ``BadInput``.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import rawpy

from panoptes_network.core.errors import BadInput
from panoptes_network.core.settings import DEFAULT_LIMITS, Limits

# What LibRaw raises for unreadable input (all derive from LibRawError), plus the I/O errors
# of a truncated buffer.
UNREADABLE = (rawpy.LibRawError, OSError, ValueError)


@dataclasses.dataclass(frozen=True)
class DecodedRaw:
    mosaic: np.ndarray  # uint16, rows x cols, LibRaw's top-left origin
    pattern: str  # the 2x2 layout row by row, e.g. "RGGB"
    black_levels: tuple[int, ...]  # per 2x2 position, in the order of ``pattern``
    white_level: int
    preview: bytes | np.ndarray | None  # the raw's own preview: JPEG bytes, an RGB bitmap, or None


def bayer_indices(raw: rawpy.RawPy) -> list[int]:
    """LibRaw's 2x2 layout row by row as colour indices (into ``color_desc`` and the per-channel
    black levels)."""
    pattern = raw.raw_pattern
    if pattern is None or pattern.shape != (2, 2):
        desc = raw.color_desc.decode("ascii")
        raise BadInput(f"not a 2x2 Bayer sensor (LibRaw colours {desc!r}); only Bayer raws are converted")
    return [int(i) for i in pattern.flatten()]


def bayer_pattern(raw: rawpy.RawPy) -> str:
    """LibRaw's 2x2 layout as letters, e.g. ``RGGB`` or ``GRBG`` (its second green is G)."""
    desc = raw.color_desc.decode("ascii")
    letters = "".join(desc[i] for i in bayer_indices(raw))
    if sorted(letters) != ["B", "G", "G", "R"]:
        raise BadInput(f"unsupported colour filter layout {letters!r} (expected a Bayer RGGB-type layout)")
    return letters


def embedded_preview(raw: rawpy.RawPy) -> bytes | np.ndarray | None:
    """The raw's own preview: JPEG bytes, an RGB bitmap, or None when it has none."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    if thumb.format is rawpy.ThumbFormat.JPEG:
        return bytes(thumb.data)
    return np.asarray(thumb.data)


def decode(data: bytes, what: str, limits: Limits = DEFAULT_LIMITS) -> DecodedRaw:
    """Unpack a raw file's mosaic and preview, or ``BadInput`` saying why LibRaw refused it;
    ``OverLimit`` from LibRaw's dimensions (read when the file is opened) before it unpacks."""
    if not data:
        raise BadInput(f"{what} is empty (0 bytes)")
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            limits.check(what, "max_image_pixels", int(raw.sizes.raw_height) * int(raw.sizes.raw_width))
            mosaic = raw.raw_image_visible.copy()
            pattern = bayer_pattern(raw)
            by_channel = raw.black_level_per_channel
            blacks = tuple(int(by_channel[i]) for i in bayer_indices(raw))
            white = int(raw.white_level)
            preview = embedded_preview(raw)
    except UNREADABLE as exc:
        raise BadInput(f"{what} is not a raw LibRaw can read: {type(exc).__name__}: {exc}", exc) from exc
    return DecodedRaw(mosaic, pattern, blacks, white, preview)
