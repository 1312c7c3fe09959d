"""The JPEG preview of a raw: its own embedded JPEG when it has one, else one rendered here.

Rendering is for eyes only: the half-size colour planes binned 2x2 again (a quarter of the
sensor's resolution per side), black subtracted, stretched between the 1st and 99.9th
percentile with a square-root curve, JPEG quality 85. Pillow's encoder is deterministic, so
the same raw always gives the same bytes.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from panoptes_network.science.bayer_interpolation import COLORS

QUALITY = 85


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    """Encode an 8-bit RGB array (rows x cols x 3, top row first) as JPEG."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(buffer, "JPEG", quality=QUALITY)
    return buffer.getvalue()


def render(half_planes: dict[str, np.ndarray], black: float) -> bytes:
    """A stretched RGB JPEG from half-size colour planes (uint16 ADU, black level included)."""
    rows, cols = (n // 2 * 2 for n in half_planes["R"].shape)
    channels = []
    for color in COLORS:
        plane = half_planes[color][:rows, :cols].astype(np.float32)
        channels.append(plane.reshape(rows // 2, 2, cols // 2, 2).mean(axis=(1, 3)) - black)
    rgb = np.stack(channels, axis=-1)
    low, high = np.percentile(rgb, [1.0, 99.9])
    scaled = np.sqrt(np.clip((rgb - low) / max(high - low, 1.0), 0.0, 1.0))
    return jpeg_bytes(np.rint(scaled * 255))


def preview(embedded: bytes | np.ndarray | None, half_planes: dict[str, np.ndarray], black: float) -> tuple[bytes, str]:
    """(JPEG bytes, where they came from: ``embedded`` or ``rendered``)."""
    if isinstance(embedded, bytes):
        return embedded, "embedded"
    if isinstance(embedded, np.ndarray) and embedded.ndim == 3 and embedded.shape[2] == 3:
        return jpeg_bytes(embedded), "embedded"
    return render(half_planes, black), "rendered"
