"""Linear R/G/B planes from a Bayer mosaic, for any 2x2 layout (RGGB, GRBG, GBRG, BGGR).

Bilinear: a plane keeps the mosaic's own value at its colour's sites, and elsewhere takes the
mean of the nearest same-colour sites in the 3x3 neighbourhood (the two direct neighbours,
the four direct ones, or the four diagonal ones). No black subtraction, gamma, white balance
or scaling: values stay in the mosaic's ADU. Integer arithmetic, rounded half up, so every
interpolated value lies between its neighbours and the output is deterministic uint16.
Each of the four 2x2 phases is computed on strided quarter-size views, with one pixel of
mirror padding (which keeps the Bayer phase) for the borders.

Half-size (LibRaw's ``half_size``): one pixel per 2x2 cell, the cell's red, blue, and mean of
its greens.
"""

from __future__ import annotations

import enum

import numpy as np

COLORS = ("R", "G", "B")
DIRECT = ((-1, 0), (1, 0), (0, -1), (0, 1))
DIAGONAL = ((-1, -1), (-1, 1), (1, -1), (1, 1))


class Method(str, enum.Enum):
    """How the colour planes are made (recorded in their headers as INTERP)."""

    BILINEAR = "bilinear"
    HALF_SIZE = "half-size"


def check_pattern(pattern: str) -> None:
    """A 2x2 layout given row by row, e.g. ``RGGB``; each of R, G and B present."""
    if len(pattern) != 4 or set(pattern) != set(COLORS):
        raise ValueError(f"Bayer pattern {pattern!r} is not a 2x2 layout of R, G and B")


def _sources(pattern: str, color: str, py: int, px: int) -> tuple[tuple[int, int], ...]:
    """Offsets of the nearest sites of ``color`` around a pixel of phase (py, px)."""

    def at(dy: int, dx: int) -> str:
        return pattern[2 * ((py + dy) % 2) + (px + dx) % 2]

    if at(0, 0) == color:
        return ((0, 0),)
    for ring in (DIRECT, DIAGONAL):
        found = tuple(offset for offset in ring if at(*offset) == color)
        if found:
            return found
    raise ValueError(f"no {color} site near phase {(py, px)} in {pattern!r}")


def _rounded_mean(views: list[np.ndarray]) -> np.ndarray:
    """The element-wise mean of same-shape uint16 views, rounded half up (uint32)."""
    total = views[0].astype(np.uint32)
    for view in views[1:]:
        total += view
    total += len(views) // 2
    total //= len(views)
    return total


def bilinear_plane(mosaic: np.ndarray, pattern: str, color: str, padded: np.ndarray | None = None) -> np.ndarray:
    """One colour plane at full resolution (uint16, same shape and orientation as ``mosaic``)."""
    check_pattern(pattern)
    if padded is None:
        padded = np.pad(mosaic, 1, mode="reflect")
    rows, cols = mosaic.shape
    plane = np.empty((rows, cols), np.uint16)
    for py in (0, 1):
        for px in (0, 1):
            out = plane[py::2, px::2]
            offsets = _sources(pattern, color, py, px)
            views = [padded[1 + py + dy : 1 + rows + dy : 2, 1 + px + dx : 1 + cols + dx : 2] for dy, dx in offsets]
            if len(views) == 1:
                out[...] = views[0]
                continue
            out[...] = _rounded_mean(views)
    return plane


def bilinear(mosaic: np.ndarray, pattern: str) -> dict[str, np.ndarray]:
    """R, G and B planes at full resolution."""
    padded = np.pad(mosaic, 1, mode="reflect")
    return {color: bilinear_plane(mosaic, pattern, color, padded) for color in COLORS}


def half_size(mosaic: np.ndarray, pattern: str) -> dict[str, np.ndarray]:
    """R, G and B planes of one pixel per 2x2 cell (odd trailing rows/columns dropped)."""
    check_pattern(pattern)
    rows, cols = mosaic.shape[0] // 2 * 2, mosaic.shape[1] // 2 * 2
    phases: dict[str, list[np.ndarray]] = {}
    for index, color in enumerate(pattern):
        phases.setdefault(color, []).append(mosaic[index // 2 : rows : 2, index % 2 : cols : 2])
    planes = {}
    for color in COLORS:
        planes[color] = _rounded_mean(phases[color]).astype(np.uint16)
    return planes


def interpolate(mosaic: np.ndarray, pattern: str, method: Method) -> dict[str, np.ndarray]:
    """The three colour planes by ``method``."""
    return bilinear(mosaic, pattern) if method is Method.BILINEAR else half_size(mosaic, pattern)
