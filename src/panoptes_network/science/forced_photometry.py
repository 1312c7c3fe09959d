"""Forced aperture photometry on the stamp cube: every star, every frame, R, G, B and their sum.

The cube's windows follow each star's predicted place (no re-centring), so the star list is the
same in every frame and a neighbour never walks in or out of a window. The aperture is a circle of
``aperture_px`` around the star's predicted position in the window (``stamp_x``, ``stamp_y``);
each pixel's channel comes from the Bayer phase the cube keeps (the window's first pixel is R of
RGGB). Frames are background-subtracted by the per-channel sky model of the whole frame, so the
local sky (the median of the window's pixels beyond ``annulus_px``, per channel) is recorded, not
subtracted: a 16 px window holds about 30 sky pixels per channel, and subtracting their median would
add as much noise as the sky itself. Its robust rms is the sky's noise per pixel, read noise
included. A channel's error is its own photon noise (flux / gain, in ADU) plus the sky noise of its
aperture pixels; the sum's adds the three in quadrature.
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

from panoptes_network.science.saturation import SATURATION_ABOVE_SKY

CHANNELS = ("R", "G", "B", "sum")
SITE_CHANNEL = np.array([[0, 1], [1, 2]])  # RGGB: the channel of (row % 2, col % 2)


class PhotometryFlag(enum.IntFlag):
    """Per star and frame; bits 1-8 are the stamp cube's (``stamp_cube.StampFlag``)."""

    OUTSIDE = 1
    NEAR_EDGE = 2
    SATURATED = 4  # the window (cube) or an aperture pixel reaches the saturation level
    NEIGHBOUR = 8  # another catalog star falls inside the window: a blend
    BAD_PIXEL = 16  # a pixel of the aperture is missing (NaN)


@dataclasses.dataclass(frozen=True)
class PhotometrySettings:
    aperture_px: float = 5.0  # radius: 98.7% of a 4 px FWHM Gaussian, inside a 16 px window with a pixel of play
    annulus_px: float = 6.5  # the local sky is measured beyond this radius, to the window's edge
    gain: float = 1.5  # e-/ADU: the Canon sensors at ISO 100, as the synthetic frames
    saturation_level: float = SATURATION_ABOVE_SKY  # background-subtracted ADU
    chunk_stars: int = 256  # stars measured at once: memory is chunk x frames x window x 8 bytes


@dataclasses.dataclass(frozen=True)
class Photometry:
    """(stars, frames, 4 channels R, G, B, sum) arrays, ADU; ``flags`` (stars, frames)."""

    flux: np.ndarray
    error: np.ndarray
    sky: np.ndarray  # the local sky's median per pixel (residual after the frame's sky model)
    sky_rms: np.ndarray  # its robust rms per pixel; the sum's is the rms over its channels' pixels
    pixels: np.ndarray  # (stars, frames, 4) aperture pixels counted
    flags: np.ndarray


def channel_masks(size: int) -> np.ndarray:
    """(3, size, size) bool: the R, G, B pixels of a window whose first pixel is R."""
    rows, cols = np.mgrid[0:size, 0:size]
    site = SITE_CHANNEL[rows % 2, cols % 2]
    return np.stack([site == c for c in range(3)])


def _robust(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD-rms over the last axis, ignoring NaN (NaN when nothing is left)."""
    some = np.isfinite(values).any(axis=-1)
    median = np.full(values.shape[:-1], np.nan)
    rms = np.full(values.shape[:-1], np.nan)
    median[some] = np.nanmedian(values[some], axis=-1)
    rms[some] = 1.4826 * np.nanmedian(np.abs(values[some] - median[some][:, None]), axis=-1)
    return median, rms


def _measure_chunk(
    stamps: np.ndarray, stamp_x: np.ndarray, stamp_y: np.ndarray, settings: PhotometrySettings
) -> tuple[np.ndarray, ...]:
    stars, frames, size, _ = stamps.shape
    rows, cols = np.mgrid[0:size, 0:size]
    distance2 = (cols - stamp_x[..., None, None]) ** 2 + (rows - stamp_y[..., None, None]) ** 2
    aperture = distance2 <= settings.aperture_px**2
    annulus = distance2 >= settings.annulus_px**2
    pixels = stamps.astype(np.float64)
    flux = np.zeros((stars, frames, 4))
    sky = np.full((stars, frames, 4), np.nan)
    sky_rms = np.full((stars, frames, 4), np.nan)
    count = np.zeros((stars, frames, 4))
    for c, mask in enumerate(channel_masks(size)):
        inside = aperture & mask
        flux[..., c] = np.where(inside, pixels, 0.0).sum(axis=(-2, -1))
        count[..., c] = inside.sum(axis=(-2, -1))
        ring = np.where(annulus & mask, pixels, np.nan).reshape(stars * frames, size * size)
        level, rms = _robust(ring)
        sky[..., c], sky_rms[..., c] = level.reshape(stars, frames), rms.reshape(stars, frames)
    flux[..., 3] = flux[..., :3].sum(axis=-1)
    count[..., 3] = count[..., :3].sum(axis=-1)
    sky[..., 3] = (sky[..., :3] * count[..., :3]).sum(axis=-1) / count[..., 3]
    sky_rms[..., 3] = np.sqrt((sky_rms[..., :3] ** 2 * count[..., :3]).sum(axis=-1) / count[..., 3])
    bad = (aperture & ~np.isfinite(pixels)).any(axis=(-2, -1))
    saturated = (aperture & (pixels >= settings.saturation_level)).any(axis=(-2, -1))
    return flux, sky, sky_rms, count, bad, saturated


def channel_errors(flux: np.ndarray, sky_rms: np.ndarray, pixels: np.ndarray, gain: float) -> np.ndarray:
    """(stars, frames, 4): photon noise of the star plus each aperture pixel's sky noise, per channel
    and for the sum. The sky rms is each star's median over the frames (30 pixels a frame are a noisy rms)."""
    rms = np.nanmedian(sky_rms[..., :3], axis=1, keepdims=True)
    variance = np.clip(flux[..., :3], 0.0, None) / gain + pixels[..., :3] * rms**2
    return np.asarray(np.sqrt(np.concatenate([variance, variance.sum(axis=-1, keepdims=True)], axis=-1)))


def measure(
    stamps: np.ndarray,
    stamp_x: np.ndarray,
    stamp_y: np.ndarray,
    cube_flags: np.ndarray,
    settings: PhotometrySettings = PhotometrySettings(),
) -> Photometry:
    """Forced photometry of every star (``stamps``: (stars, frames, size, size), ``stamp_x``/``stamp_y``/
    ``cube_flags``: (stars, frames), the star's predicted place in its window and the cube's flags)."""
    if stamps.ndim != 4 or stamps.shape[-1] != stamps.shape[-2]:
        raise ValueError(f"stamps must be (stars, frames, size, size), not {stamps.shape}")
    size = stamps.shape[-1]
    if 2 * (settings.aperture_px + 1) > size:
        raise ValueError(
            f"an aperture of {settings.aperture_px:g} px needs a window of {2 * settings.aperture_px + 2:g} px, not {size}"
        )
    stars, frames = stamps.shape[:2]
    parts: list[tuple[np.ndarray, ...]] = []
    for start in range(0, stars, settings.chunk_stars):
        part = slice(start, start + settings.chunk_stars)
        parts.append(_measure_chunk(np.asarray(stamps[part]), stamp_x[part], stamp_y[part], settings))
    if parts:
        flux, sky, sky_rms, count, bad, saturated = (np.concatenate(column) for column in zip(*parts))
    else:
        flux = sky = sky_rms = count = np.zeros((0, frames, 4))
        bad = saturated = np.zeros((0, frames), bool)
    flags = np.asarray(cube_flags, dtype=np.int64) | np.where(bad, PhotometryFlag.BAD_PIXEL, 0)
    flags |= np.where(saturated, PhotometryFlag.SATURATED, 0)
    error = channel_errors(flux, sky_rms, count, settings.gain)
    return Photometry(flux, error, sky, sky_rms, count, flags)
