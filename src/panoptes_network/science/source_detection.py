"""Find stars on a background-subtracted Bayer frame with sep, on 2x2 superpixels.

Each RGGB cell's four pixels sum to one superpixel: the channels' different sky levels and
gains stop mattering (the background is already gone), the noise becomes one grid's noise, and
sep works on a quarter of the pixels. Positions are returned in full-frame pixel coordinates,
0-based (numpy / astropy ``origin=0``: the centre of the first pixel is 0.0); a superpixel
``j`` covers full pixels ``2j`` and ``2j + 1``, so its centre is ``2j + 0.5``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import sep


@dataclasses.dataclass(frozen=True)
class DetectionSettings:
    """Defaults suit PANOPTES frames (stars 2-3 px FWHM, 10.3 arcsec/px)."""

    threshold_sigma: float = 5.0  # detection threshold in units of the superpixel sky RMS
    min_area: int = 3  # superpixels above threshold
    max_sources: int = 20_000  # sep's object limit; a full frame has a few thousand stars


SOURCE_COLUMNS = ("x", "y", "flux", "flux_err", "peak", "fwhm", "ellipticity", "theta", "flags", "npix")


@dataclasses.dataclass(frozen=True)
class Sources:
    """Detected sources as columns (each an array of one length), positions full-frame 0-based."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray  # ADU summed over the source's pixels (all four channels)
    flux_err: np.ndarray  # sky noise only: sqrt(npix) x the superpixel RMS (no source Poisson term)
    peak: np.ndarray  # peak superpixel value (ADU, four channels summed)
    fwhm: np.ndarray  # full-frame pixels
    ellipticity: np.ndarray  # 1 - b/a
    theta: np.ndarray  # radians, position angle of the major axis
    flags: np.ndarray  # sep extraction flags (0 = clean)
    npix: np.ndarray  # superpixels above threshold

    def __len__(self) -> int:
        return len(self.x)

    def take(self, index: np.ndarray) -> Sources:
        """A subset, by boolean mask or index array."""
        return Sources(**{name: getattr(self, name)[index] for name in SOURCE_COLUMNS})

    def columns(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in SOURCE_COLUMNS}


def superpixels(frame: np.ndarray) -> np.ndarray:
    """Sum each 2x2 RGGB cell (an odd last row or column is dropped); float32, native order."""
    rows, cols = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2
    cells = frame[:rows, :cols].astype(np.float32, copy=False).reshape(rows // 2, 2, cols // 2, 2)
    return np.ascontiguousarray(cells.sum(axis=(1, 3), dtype=np.float32))


def superpixel_rms(rms: np.ndarray | float, shape: tuple[int, int]) -> np.ndarray | float:
    """The RMS of a sum of four pixels: the root of the summed variances."""
    if not isinstance(rms, np.ndarray):
        return 2.0 * float(rms)
    return np.asarray(np.sqrt(superpixels(np.square(np.asarray(rms, dtype=np.float32)))), dtype=np.float32)


def detect_sources(
    frame: np.ndarray, rms: np.ndarray | float, settings: DetectionSettings = DetectionSettings()
) -> Sources:
    """Sources on a background-subtracted frame, given the per-pixel (or global) sky RMS."""
    data = superpixels(frame)
    err = superpixel_rms(rms, frame.shape)
    sep.set_extract_pixstack(max(300_000, data.size // 4))
    sep.set_sub_object_limit(4096)
    objects = sep.extract(data, settings.threshold_sigma, err=err, minarea=settings.min_area)
    if len(objects) > settings.max_sources:
        objects = np.sort(objects, order="flux")[::-1][: settings.max_sources]
    if len(objects) == 0:
        return _empty()
    radius, _ = sep.flux_radius(
        data, objects["x"], objects["y"], 6.0 * objects["a"], 0.5, normflux=objects["flux"], subpix=5
    )
    flux_err = np.sqrt(objects["npix"]) * (err if np.isscalar(err) else np.median(err))
    return Sources(
        x=2.0 * objects["x"] + 0.5,
        y=2.0 * objects["y"] + 0.5,
        flux=objects["flux"].astype(np.float64),
        flux_err=np.asarray(flux_err, dtype=np.float64),
        peak=objects["peak"].astype(np.float64),
        fwhm=4.0 * radius,  # FWHM = 2 x half-light radius for a Gaussian; x2 for superpixels
        ellipticity=1.0 - objects["b"] / np.maximum(objects["a"], 1e-6),
        theta=objects["theta"].astype(np.float64),
        flags=objects["flag"].astype(np.int32),
        npix=objects["npix"].astype(np.int32),
    )


def _empty() -> Sources:
    return Sources(
        **{name: np.zeros(0, np.int32 if name in ("flags", "npix") else np.float64) for name in SOURCE_COLUMNS}
    )


def away_from_edges(sources: Sources, shape: tuple[int, int], margin: float) -> np.ndarray:
    """Mask of sources at least ``margin`` pixels inside the frame (0-based pixel centres)."""
    rows, cols = shape
    return (
        (sources.x >= margin)
        & (sources.y >= margin)
        & (sources.x <= cols - 1 - margin)
        & (sources.y <= rows - 1 - margin)
    )
