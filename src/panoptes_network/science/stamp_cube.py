"""Stamp cube: one fixed window per star, followed through the observation's drift.

For each star (its position in the reference frame) the window follows the star's predicted
place in each frame, the reference position moved by the frame's measured offset (the drift),
on an even row and column: the window's origin is that place less the window's half-size,
rounded to even pixels. The window therefore follows the drift in steps of two pixels, never
re-centres on a detection, and its top-left pixel is always the mosaic's first colour (R for
RGGB): the same pixel of every stamp of every frame sees the same filter. The star stays within
one pixel per axis of the window's centre in every frame (the rounding), plus the error of the
measured offsets. (Rounding the reference place and the offset separately would allow two.)

Array layout (``StampCube.stamps``): float32, shape (stars, frames, size, size), C order,
``stamps[s, f, row, col]`` = frame f's pixel (``y0[s, f] + row``, ``x0[s, f] + col``), 0-based;
pixels outside the frame are NaN. ``table()`` gives one row per (star, frame), star-major, with
the window origin, the star's expected position in the frame and in the window, and the flags.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.spatial import cKDTree

from panoptes_network.science.saturation import SATURATION_ABOVE_SKY
from panoptes_network.science.stacking import even_shifts

MIN_STAMP_SIZE = 14  # a 6 px PSF, a pixel of drift either side, and a ring of sky


class StampFlag(enum.IntFlag):
    OUTSIDE = 1  # the window is not wholly inside the frame (its outside pixels are NaN)
    NEAR_EDGE = 2  # the window is within ``edge_margin_px`` of the frame's border
    SATURATED = 4  # a pixel of the window is at or above the saturation level
    NEIGHBOUR = 8  # another of the given stars falls inside the window


@dataclasses.dataclass(frozen=True)
class StampSettings:
    size: int = 16  # px, even, at least MIN_STAMP_SIZE
    edge_margin_px: int = 4
    saturation_level: float = SATURATION_ABOVE_SKY  # background-subtracted ADU

    def __post_init__(self) -> None:
        if self.size < MIN_STAMP_SIZE or self.size % 2:
            raise ValueError(f"stamp size {self.size} must be even and at least {MIN_STAMP_SIZE} px")


@dataclasses.dataclass(frozen=True)
class StampCube:
    stamps: np.ndarray  # (stars, frames, size, size) float32
    x0: np.ndarray  # (stars, frames) window origin in each frame, even
    y0: np.ndarray
    x: np.ndarray  # (stars, frames) the star's expected position in each frame
    y: np.ndarray
    flags: np.ndarray  # (stars, frames) StampFlag bits

    def table(self) -> dict[str, np.ndarray]:
        """One row per (star, frame), star-major: columns of equal length."""
        stars, frames = self.flags.shape
        return {
            "star": np.repeat(np.arange(stars), frames),
            "frame": np.tile(np.arange(frames), stars),
            "x0": self.x0.ravel(),
            "y0": self.y0.ravel(),
            "x": self.x.ravel(),
            "y": self.y.ravel(),
            "stamp_x": (self.x - self.x0).ravel(),
            "stamp_y": (self.y - self.y0).ravel(),
            "flags": self.flags.ravel(),
        }


def reference_origins(x: np.ndarray, y: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The even window origin that centres each star ((size - 1) / 2), within a pixel per axis."""

    def origin(centre: np.ndarray) -> np.ndarray:
        return 2 * np.round((np.asarray(centre, dtype=np.float64) - (size - 1) / 2) / 2).astype(np.int64)

    return origin(x), origin(y)


def _neighbours(
    x: np.ndarray, y: np.ndarray, offsets: np.ndarray, x0: np.ndarray, y0: np.ndarray, size: int
) -> np.ndarray:
    """(stars, frames): whether another star falls on a pixel of the star's window in the frame."""
    found = np.zeros(x0.shape, bool)
    positions = np.c_[x, y]
    reach = size * np.sqrt(2) + float(np.abs(offsets - even_shifts(offsets)).max(initial=0.0))
    for s, near in enumerate(cKDTree(positions).query_ball_point(positions, r=reach)):
        others = np.array([j for j in near if j != s], dtype=np.int64)
        if len(others) == 0:
            continue
        ox = x[others][:, None] + offsets[None, :, 0] - x0[s][None, :]  # in the window, per frame
        oy = y[others][:, None] + offsets[None, :, 1] - y0[s][None, :]
        inside = (ox >= -0.5) & (ox < size - 0.5) & (oy >= -0.5) & (oy < size - 0.5)
        found[s] = inside.any(axis=0)
    return found


def _cut(frame: np.ndarray, x0: np.ndarray, y0: np.ndarray, size: int) -> np.ndarray:
    """(stars, size, size) float32 windows of one frame; pixels outside it are NaN."""
    rows, cols = frame.shape
    stamps = np.full((len(x0), size, size), np.nan, np.float32)
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + size <= cols) & (y0 + size <= rows)
    r = y0[inside][:, None] + np.arange(size)
    c = x0[inside][:, None] + np.arange(size)
    stamps[inside] = frame[r[:, :, None], c[:, None, :]]
    for s in np.flatnonzero(~inside):
        top, left = max(y0[s], 0), max(x0[s], 0)
        bottom, right = min(y0[s] + size, rows), min(x0[s] + size, cols)
        if top < bottom and left < right:
            stamps[s, top - y0[s] : bottom - y0[s], left - x0[s] : right - x0[s]] = frame[top:bottom, left:right]
    return stamps


def cut_cube(
    frames: Sequence[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    offsets: np.ndarray,
    settings: StampSettings = StampSettings(),
) -> StampCube:
    """Stamps of every star (reference-frame positions ``x``, ``y``) in every background-subtracted
    frame, whose (dx, dy) against the reference are ``offsets`` (frames, 2)."""
    return cut_cubes(((frame,) for frame in frames), (len(frames), 1), x, y, offsets, settings)[0]


def cut_cubes(
    frames: Iterable[Sequence[np.ndarray]],
    shape: tuple[int, int],
    x: np.ndarray,
    y: np.ndarray,
    offsets: np.ndarray,
    settings: StampSettings = StampSettings(),
) -> list[StampCube]:
    """``cut_cube`` of several versions of the same frames at once: ``frames`` yields each frame's
    versions together, ``shape`` is (frames, versions). A frame made in several versions is made once."""
    x, y, offsets = np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(offsets, np.float64)
    size = settings.size
    x0, y0 = reference_origins(x[:, None] + offsets[None, :, 0], y[:, None] + offsets[None, :, 1], size)
    stamps = [np.empty((len(x), shape[0], size, size), np.float32) for _ in range(shape[1])]
    flags = [np.zeros(x0.shape, np.int32) for _ in range(shape[1])]
    for f, versions in enumerate(frames):
        for v, frame in enumerate(versions):
            stamps[v][:, f], flags[v][:, f] = _cut_frame(frame, x0[:, f], y0[:, f], settings)
    neighbours = np.where(_neighbours(x, y, offsets, x0, y0, size), StampFlag.NEIGHBOUR, 0).astype(np.int32)
    positions = x[:, None] + offsets[None, :, 0], y[:, None] + offsets[None, :, 1]
    return [StampCube(s, x0, y0, *positions, f | neighbours) for s, f in zip(stamps, flags)]


def _cut_frame(
    frame: np.ndarray, x0: np.ndarray, y0: np.ndarray, settings: StampSettings
) -> tuple[np.ndarray, np.ndarray]:
    """One frame's stamps and their edge, outside and saturation flags."""
    size = settings.size
    rows, cols = frame.shape
    stamps = _cut(frame, x0, y0, size)
    outside = (x0 < 0) | (y0 < 0) | (x0 + size > cols) | (y0 + size > rows)
    m = settings.edge_margin_px
    near = (x0 < m) | (y0 < m) | (x0 + size > cols - m) | (y0 + size > rows - m)
    peak = np.where(np.isnan(stamps), -np.inf, stamps).max(axis=(1, 2), initial=-np.inf)
    flags = np.where(outside, StampFlag.OUTSIDE, 0)
    flags |= np.where(near & ~outside, StampFlag.NEAR_EDGE, 0)
    flags |= np.where(peak >= settings.saturation_level, StampFlag.SATURATED, 0)
    return stamps, flags
