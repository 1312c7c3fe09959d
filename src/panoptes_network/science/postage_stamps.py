"""Bayer-aligned postage stamps: small cut-outs of background-subtracted pixels around stars.

Every stamp starts on an even row and an even column, so its top-left pixel is always the
mosaic's first colour (R for RGGB) and the same pixel of every stamp sees the same filter;
that is what lets photometry treat stamps of different stars and images alike. Stamps near
the frame's edge are shifted inside it (keeping the phase), never padded.
"""

from __future__ import annotations

import numpy as np


def stamp_origins(x: np.ndarray, y: np.ndarray, size: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Top-left (x0, y0) of each ``size`` x ``size`` stamp centred on (x, y), 0-based, both even."""
    if size < 2 or size % 2:
        raise ValueError(f"stamp size {size} must be even and at least 2 to keep the Bayer phase")
    if shape[0] < size or shape[1] < size:
        raise ValueError(f"frame {shape} is smaller than a {size} px stamp")
    rows, cols = shape

    def origin(centre: np.ndarray, length: int) -> np.ndarray:
        # the nearest even start that puts the star at the stamp's centre ((size - 1) / 2)
        start = 2 * np.round((np.asarray(centre, dtype=np.float64) - (size - 1) / 2) / 2).astype(np.int64)
        return np.clip(start, 0, (length - size) // 2 * 2)

    return origin(x, cols), origin(y, rows)


def cut_stamps(frame: np.ndarray, x0: np.ndarray, y0: np.ndarray, size: int) -> np.ndarray:
    """The stamps as one float32 array (n, size, size)."""
    rows = y0[:, None] + np.arange(size)[None, :]
    cols = x0[:, None] + np.arange(size)[None, :]
    return frame[rows[:, :, None], cols[:, None, :]].astype(np.float32)
