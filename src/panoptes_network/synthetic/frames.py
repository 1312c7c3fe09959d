"""Realistic synthetic PANOPTES frames, for the quick start, tests and benchmarks.

Real PANOPTES data cannot ship with the project, so this draws what a unit's Canon camera
records: an RGGB Bayer mosaic (5208x3476 by default) on a 2048 ADU black level, a sky with a
gradient, vignetting and per-channel colour offsets, Poisson noise at gain 1.5 e-/ADU, and
stars as Gaussian PSFs, saturating near 11,500 ADU above black; with the POCS header keywords
that ``unsolved.fits`` carries.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
from astropy.io import fits

FULL_SHAPE = (3476, 5208)  # rows, columns
BLACK_LEVEL = 2048
SATURATION = 11_500
GAIN = 1.5  # e-/ADU
READ_NOISE = 3.0  # ADU
CHANNEL_SKY = {"R": 180.0, "G1": 420.0, "G2": 420.0, "B": 260.0}  # ADU above black


@dataclasses.dataclass(frozen=True)
class FrameSpec:
    unit_id: str = "PAN000"
    camera_id: str = "SC5348"
    sequence_time: dt.datetime = dt.datetime(2026, 11, 24, 8, 0, 0, tzinfo=dt.UTC)
    exposure_offset_s: int = 123
    exptime: float = 120.0
    ra: float = 303.2
    dec: float = 46.0
    field_name: str = "KIC 8462852"
    shape: tuple[int, int] = FULL_SHAPE
    stars: int = 3000
    seed: int = 1

    @property
    def image_time(self) -> dt.datetime:
        return self.sequence_time + dt.timedelta(seconds=self.exposure_offset_s)

    def path(self) -> str:
        fmt = "%Y%m%dT%H%M%S"
        return (
            f"{self.unit_id}/{self.camera_id}/{self.sequence_time.strftime(fmt)}/{self.image_time.strftime(fmt)}.fits"
        )


def bayer_sky(shape: tuple[int, int]) -> np.ndarray:
    """A smooth RGGB sky in ADU above black: per-channel level x (gradient + vignette)."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    smooth = sky_shape(shape, cols, rows)
    level = np.empty(shape, np.float32)
    level[0::2, 0::2] = CHANNEL_SKY["R"]
    level[0::2, 1::2] = CHANNEL_SKY["G1"]
    level[1::2, 0::2] = CHANNEL_SKY["G2"]
    level[1::2, 1::2] = CHANNEL_SKY["B"]
    return np.asarray(level * smooth, dtype=np.float32)


def sky_shape(shape: tuple[int, int], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The sky's gradient x vignette at 0-based pixel (x, y) of a frame of ``shape``: 1 at the centre."""
    u = x / shape[1] - 0.5
    v = y / shape[0] - 0.5
    return np.asarray((1.0 + 0.15 * u + 0.08 * v) * (1.0 - 0.35 * (u**2 + v**2)))


def add_stars(image: np.ndarray, count: int, rng: np.random.Generator, fwhm: float = 2.5) -> None:
    """Add Gaussian stars with a power-law flux distribution (in place, ADU)."""
    sigma = fwhm / 2.355
    radius = int(np.ceil(4 * sigma))
    ys = rng.uniform(radius, image.shape[0] - radius - 1, count)
    xs = rng.uniform(radius, image.shape[1] - radius - 1, count)
    fluxes = 2e3 * rng.pareto(1.3, count) + 500.0
    offsets = np.arange(-radius, radius + 1)
    for y, x, flux in zip(ys, xs, fluxes):
        iy, ix = int(y), int(x)
        gy = np.exp(-0.5 * ((offsets + iy - y) / sigma) ** 2)
        gx = np.exp(-0.5 * ((offsets + ix - x) / sigma) ** 2)
        image[iy - radius : iy + radius + 1, ix - radius : ix + radius + 1] += (
            flux / (2 * np.pi * sigma**2) * np.outer(gy, gx)
        )


def make_frame(spec: FrameSpec) -> tuple[np.ndarray, fits.Header]:
    """Pixels (uint16, black level included) and a POCS-like header."""
    rng = np.random.default_rng(spec.seed)
    signal = bayer_sky(spec.shape)
    add_stars(signal, spec.stars, rng)
    electrons = rng.poisson(np.clip(signal, 0, None) * GAIN)
    adu = electrons / GAIN + BLACK_LEVEL + rng.normal(0, READ_NOISE, spec.shape)
    data = np.clip(np.rint(adu), 0, BLACK_LEVEL + SATURATION).astype(np.uint16)
    return data, header_for(spec)


def header_for(spec: FrameSpec) -> fits.Header:
    """The keywords POCS writes (modelled on the real ``unsolved.fits``)."""
    fmt = "%Y%m%dT%H%M%S"
    seq_id = f"{spec.unit_id}_{spec.camera_id}_{spec.sequence_time.strftime(fmt)}"
    image_id = f"{spec.unit_id}_{spec.camera_id}_{spec.image_time.strftime(fmt)}"
    header = fits.Header()
    cards = [
        ("ISO", 100, None),
        ("EXPTIME", spec.exptime, None),
        ("CAMTEMP", "12 C", "Celsius - From CR2"),
        ("CIRCCONF", "0.019 mm", "From CR2"),
        ("COLORTMP", 5400, "From CR2"),
        ("DATE-OBS", spec.image_time.strftime("%Y-%m-%dT%H:%M:%S"), None),
        ("FILENAME", f"{spec.image_time.strftime(fmt)}.cr2", "From CR2"),
        ("MEASEV", -3.62, "From CR2"),
        ("MEASEV2", -3.625, "From CR2"),
        ("MEASRGGB", "471 1024 1024 733", "From CR2"),
        ("WHTLVLN", 11765, "From CR2"),
        ("WHTLVLS", 12277, "From CR2"),
        ("REDBAL", 2.015625, "From CR2"),
        ("BLUEBAL", 1.490234, "From CR2"),
        ("IMAGEID", image_id, None),
        ("SEQID", seq_id, None),
        ("FIELD", spec.field_name, None),
        ("RA-MNT", spec.ra, "Degrees"),
        ("HA-MNT", 1.0, "Degrees"),
        ("DEC-MNT", spec.dec, "Degrees"),
        ("EQUINOX", 2000.0, None),
        ("AIRMASS", 1.13, "Sec(z)"),
        ("FILTER", "RGGB", None),
        ("LAT-OBS", 19.54, "Degrees"),
        ("LONG-OBS", -155.58, "Degrees"),
        ("ELEV-OBS", 3400.0, "Meters"),
        ("MOONSEP", 76.0, "Degrees"),
        ("MOONFRAC", 0.49, None),
        ("CREATOR", "POCSv0.1.1", "POCS Software version"),
        ("INSTRUME", spec.camera_id, "Camera ID"),
        ("OBSERVER", spec.unit_id, "PANOPTES Unit ID"),
        ("ORIGIN", "Project PANOPTES", None),
        ("SIMULATD", True, "Synthetic frame made by panoptes-network"),
    ]
    for key, value, comment in cards:
        header[key] = (value, comment) if comment else value
    return header


def write_frame(spec: FrameSpec, root: Path) -> Path:
    """Write the frame as ``root/{canonical path}`` (uint16 as BZERO 32768, as POCS stores it)."""
    data, header = make_frame(spec)
    path = Path(root) / spec.path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data=data, header=header).writeto(path, overwrite=True, checksum=True)
    return path
