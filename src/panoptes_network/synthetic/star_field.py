"""Synthetic full frames of the real sky, for testing and benchmarking the plate solver.

Real Tycho-2 stars (from the installed index files) are projected through a known TAN WCS
onto a realistic PANOPTES Bayer frame (``synthetic.bayer_sky``, noise and black level as a
Canon 100D), with the POCS header's RA-MNT/DEC-MNT offset from the true centre as a real
mount's pointing is. The true WCS is returned with the frame, so a solution can be checked to
a fraction of a pixel.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from panoptes_network.adapters.reference_catalog import ReferenceCatalog
from panoptes_network.adapters.tycho2_index_catalog import Tycho2IndexCatalog
from panoptes_network.synthetic.frames import (
    BLACK_LEVEL,
    FULL_SHAPE,
    GAIN,
    READ_NOISE,
    SATURATION,
    FrameSpec,
    bayer_sky,
    header_for,
)


@dataclasses.dataclass(frozen=True)
class StarFieldSpec:
    ra: float = 303.2
    dec: float = 46.0
    rotation_deg: float = 0.0
    scale_arcsec: float = 10.3
    shape: tuple[int, int] = FULL_SHAPE
    fwhm: float = 2.5  # px
    mag_limit: float = 12.5
    flux_at_mag_10: float = 15_000.0  # ADU, all four channels of the PSF
    hint_offset_deg: float = 2.0  # mount pointing error written into RA-MNT/DEC-MNT
    seed: int = 1
    sequence_time: dt.datetime = dt.datetime(2026, 11, 24, 8, 0, 0, tzinfo=dt.UTC)


def true_wcs(spec: StarFieldSpec) -> WCS:
    """A TAN WCS centred on the frame, north rotated by ``rotation_deg``, RA increasing to the left."""
    rows, cols = spec.shape
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [spec.ra, spec.dec]
    wcs.wcs.crpix = [(cols + 1) / 2, (rows + 1) / 2]
    scale = spec.scale_arcsec / 3600.0
    angle = np.radians(spec.rotation_deg)
    wcs.wcs.cd = scale * np.array([[-np.cos(angle), np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return wcs


def draw_stars(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    fwhm: float,
    sites: np.ndarray | None = None,
) -> None:
    """Add Gaussian PSFs at 0-based (x, y) with total ``flux`` ADU (in place). ``sites`` (stars, 4):
    each star's weight on the RGGB sites (row-major in a 2x2 block; average 1 keeps ``flux``), its colour."""
    sigma = fwhm / 2.355
    radius = int(np.ceil(4 * sigma))
    offsets = np.arange(-radius, radius + 1)
    rows, cols = image.shape
    parity = (offsets[:, None] % 2) * 2 + offsets[None, :] % 2  # site offset of each pixel from the box's centre pixel
    for i, (xi, yi, fi) in enumerate(zip(x, y, flux)):
        ix, iy = int(round(xi)), int(round(yi))
        if not (radius <= ix < cols - radius and radius <= iy < rows - radius):
            continue
        gy = np.exp(-0.5 * ((offsets + iy - yi) / sigma) ** 2)
        gx = np.exp(-0.5 * ((offsets + ix - xi) / sigma) ** 2)
        psf = fi / (2 * np.pi * sigma**2) * np.outer(gy, gx)
        if sites is not None:
            shift = np.array([[0, 1], [2, 3]])[iy % 2, ix % 2]  # the site of the box's centre pixel
            psf *= sites[i][parity ^ shift]
        image[iy - radius : iy + radius + 1, ix - radius : ix + radius + 1] += psf


def pointing_hint(spec: StarFieldSpec, rng: np.random.Generator) -> tuple[float, float]:
    """The true centre moved ``hint_offset_deg`` in a random direction: what the mount reports."""
    centre = SkyCoord(spec.ra * u.deg, spec.dec * u.deg)
    moved = centre.directional_offset_by(rng.uniform(0, 360) * u.deg, spec.hint_offset_deg * u.deg)
    return float(moved.ra.deg), float(moved.dec.deg)


def make_star_field(
    spec: StarFieldSpec, catalog: ReferenceCatalog | None = None
) -> tuple[np.ndarray, fits.Header, WCS]:
    """Raw uint16 Bayer pixels (black level included), a POCS header, and the true WCS."""
    rng = np.random.default_rng(spec.seed)
    wcs = true_wcs(spec)
    rows, cols = spec.shape
    radius = np.hypot(rows, cols) / 2 * spec.scale_arcsec / 3600.0 + 0.2
    stars = (catalog or Tycho2IndexCatalog()).cone(spec.ra, spec.dec, radius, (-2.0, spec.mag_limit))
    x, y = wcs.all_world2pix(stars.ra, stars.dec, 0)
    signal = bayer_sky(spec.shape)
    draw_stars(signal, x, y, spec.flux_at_mag_10 * 10 ** (-0.4 * (stars.mag - 10.0)), spec.fwhm)
    electrons = rng.poisson(np.clip(signal, 0, None) * GAIN)
    adu = electrons / GAIN + BLACK_LEVEL + rng.normal(0, READ_NOISE, spec.shape)
    data = np.clip(np.rint(adu), 0, BLACK_LEVEL + SATURATION).astype(np.uint16)
    hint_ra, hint_dec = pointing_hint(spec, rng)
    return data, header_for(dataclasses.replace(frame_spec_for(spec), ra=hint_ra, dec=hint_dec)), wcs


def frame_spec_for(spec: StarFieldSpec) -> FrameSpec:
    """The ``FrameSpec`` naming this frame (its canonical raw path)."""
    return FrameSpec(shape=spec.shape, sequence_time=spec.sequence_time, seed=spec.seed)


def wcs_error_px(solved: WCS, truth: WCS, shape: tuple[int, int], step: int = 100) -> np.ndarray:
    """Distances (px) between where the solved and the true WCS put the same sky, on a pixel grid."""
    rows, cols = shape
    gx, gy = np.meshgrid(np.arange(10, cols - 10, step, dtype=float), np.arange(10, rows - 10, step, dtype=float))
    ra, dec = solved.all_pix2world(gx.ravel(), gy.ravel(), 0)
    tx, ty = truth.all_world2pix(ra, dec, 0)
    return np.asarray(np.hypot(tx - gx.ravel(), ty - gy.ravel()), dtype=np.float64)
