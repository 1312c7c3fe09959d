"""A quick-look PNG of a solved frame: asinh-stretched pixels, matched stars circled, RA/Dec grid.

Drawn with Pillow (circles, lines, a PNG encoder; a few MB, imports in milliseconds) rather
than matplotlib (tens of MB, fonts and caches, a second of import per cold start) because
nothing here needs a plotting library. The frame is binned to at most ``max_width`` px and
shown with row 0 at the bottom, as FITS viewers do. The output is deterministic.

The PNG is a palette image: 254 grey levels and the two colours of the grid and the circles. One
byte a pixel instead of three: on a full frame it encodes in 0.04 s instead of 0.35 s and is
half the size (0.8 MB).
"""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
from astropy.wcs import WCS
from PIL import Image, ImageDraw

from panoptes_network.science.catalog_match import FieldGeometry

GRID_STEPS_DEG = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
GREYS = 254  # palette entries 0..253 are grey levels; then the grid's colour and the circles'
GRID, CIRCLE = GREYS, GREYS + 1
PALETTE = [round(i * 255 / (GREYS - 1)) for i in range(GREYS) for _ in range(3)] + [90, 160, 255] + [60, 255, 60]


@dataclasses.dataclass(frozen=True)
class QuickLookSettings:
    max_width: int = 1400  # px of the PNG
    circle_radius: int = 6  # px of the PNG
    max_circles: int = 300  # the brightest matched stars only: a full frame has thousands
    grid_lines: int = 8  # at most this many lines across the field's larger side


def binned(frame: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` blocks (edges that do not fill a block are dropped)."""
    rows, cols = frame.shape[0] // factor * factor, frame.shape[1] // factor * factor
    blocks = frame[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor)
    return np.asarray(blocks.mean(axis=(1, 3), dtype=np.float32), dtype=np.float32)


def asinh_stretch(image: np.ndarray, levels: int = 256) -> np.ndarray:
    """uint8 display values 0..levels-1: a noise floor at -1 sigma, asinh softening at 3 sigma, top at 99.8%."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros(image.shape, np.uint8)
    median = float(np.median(finite))
    sigma = 1.4826 * float(np.median(np.abs(finite - median))) or 1.0
    low, high = median - sigma, max(float(np.percentile(finite, 99.8)), median + 10 * sigma)
    soft = 3 * sigma
    scaled = np.arcsinh(np.clip(np.nan_to_num(image, nan=low) - low, 0, None) / soft) / math.asinh((high - low) / soft)
    return np.asarray((np.clip(scaled, 0, 1) * (levels - 1)).round(), dtype=np.uint8)


def grid_step(span_deg: float, lines: int) -> float:
    return next((step for step in GRID_STEPS_DEG if span_deg / step <= lines), GRID_STEPS_DEG[-1])


def grid_lines(wcs: WCS, geometry: FieldGeometry, shape: tuple[int, int], lines: int) -> list[np.ndarray]:
    """Lines of constant RA and Dec as pixel polylines (0-based), only the parts on the frame."""
    step = grid_step(max(geometry.width_deg, geometry.height_deg), lines)
    reach = geometry.radius_deg * 1.2
    dec_low, dec_high = max(geometry.dec - reach, -89.9), min(geometry.dec + reach, 89.9)
    ra_reach = min(180.0, reach / max(math.cos(math.radians(max(abs(dec_low), abs(dec_high)))), 1e-3))
    ras = np.arange(math.floor((geometry.ra - ra_reach) / step) * step, geometry.ra + ra_reach + step, step)
    decs = np.arange(math.floor(dec_low / step) * step, dec_high + step, step)
    samples = np.linspace(0, 1, 200)
    polylines = [np.column_stack((np.full_like(samples, ra), dec_low + samples * (dec_high - dec_low))) for ra in ras]
    polylines += [
        np.column_stack((geometry.ra - ra_reach + samples * 2 * ra_reach, np.full_like(samples, dec))) for dec in decs
    ]
    rows, cols = shape
    result = []
    for world in polylines:
        pixels = wcs.all_world2pix(world, 0)
        inside = (
            (pixels[:, 0] > -cols * 0.1)
            & (pixels[:, 0] < cols * 1.1)
            & (pixels[:, 1] > -rows * 0.1)
            & (pixels[:, 1] < rows * 1.1)
        )
        if inside.sum() >= 2:
            result.append(pixels[inside])
    return result


def render(
    frame: np.ndarray,
    wcs: WCS,
    geometry: FieldGeometry,
    circles_xy: np.ndarray,
    circles_flux: np.ndarray,
    settings: QuickLookSettings = QuickLookSettings(),
) -> bytes:
    """PNG bytes of the frame with circles at the brightest of ``circles_xy`` (n, 2; 0-based full-frame px)."""
    factor = max(1, math.ceil(frame.shape[1] / settings.max_width))
    pixels = asinh_stretch(binned(frame, factor), GREYS)
    height = pixels.shape[0]
    image = Image.fromarray(np.ascontiguousarray(np.flipud(pixels)), "P")
    image.putpalette(PALETTE)
    draw = ImageDraw.Draw(image)

    def to_png(xy: np.ndarray) -> list[tuple[float, float]]:
        x = (xy[:, 0] - (factor - 1) / 2) / factor
        y = height - 1 - (xy[:, 1] - (factor - 1) / 2) / factor
        return list(zip(x.tolist(), y.tolist()))

    for line in grid_lines(wcs, geometry, frame.shape, settings.grid_lines):
        draw.line(to_png(line), fill=GRID, width=1)
    r = settings.circle_radius
    brightest = np.argsort(-np.asarray(circles_flux), kind="stable")[: settings.max_circles]
    for x, y in to_png(np.asarray(circles_xy, dtype=np.float64).reshape(-1, 2)[brightest]):
        draw.ellipse((x - r, y - r, x + r, y + r), outline=CIRCLE, width=1)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
