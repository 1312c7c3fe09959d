"""The stamp cube as one FITS file per observation (``stamps.fits``), readable by astropy alone.

Layout (documented for readers in docs/observation-products.md):

- ``STAMPS`` (image, float32): ``stamps[star, frame, row, col]`` (numpy order; NAXIS1 = col),
  background-subtracted ADU, NaN outside the frame.
- ``FRAMES`` (table, one row per frame, in the cube's frame order): image id, time, MJD,
  exposure, airmass, camera temperature, drift (dx, dy) against the reference frame.
- ``STARS`` (table, one row per star, in the cube's star order): catalog id, RA, Dec, magnitude,
  position in the reference frame.
- ``SAMPLES`` (table, one row per (star, frame), star-major): window origin (x0, y0) in the
  frame, the star's expected position in the frame (x, y) and in the window (stamp_x, stamp_y),
  the window's sky (median of its two-pixel border), and the ``StampFlag`` bits.

Positions are 0-based pixels of the frame (FITS pixel = value + 1). The primary header says
what the flags mean and the window size; tables convert to pandas with ``Table.to_pandas()``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from collections.abc import Sequence

import numpy as np
from astropy.io import fits
from astropy.time import Time

from panoptes_network.science.stamp_cube import StampCube, StampFlag
from panoptes_network.science.timelapse import as_utc


@dataclasses.dataclass(frozen=True)
class CubeFrame:
    image_id: str
    time: dt.datetime  # UTC
    exposure: float
    airmass: float
    camera_temp: float
    drift: tuple[float, float]


@dataclasses.dataclass(frozen=True)
class CubeStars:
    ids: np.ndarray  # str
    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray
    x: np.ndarray  # reference frame, 0-based
    y: np.ndarray


def border_sky(stamps: np.ndarray, width: int = 2) -> np.ndarray:
    """(stars, frames): the median of each window's border ring, ``width`` px wide (NaN pixels ignored)."""
    size = stamps.shape[-1]
    ring = np.ones((size, size), bool)
    ring[width : size - width, width : size - width] = False
    values = stamps[..., ring]
    sky = np.full(values.shape[:-1], np.nan, np.float32)
    some = np.isfinite(values).any(axis=-1)
    sky[some] = np.nanmedian(values[some], axis=-1)
    return sky


def stamps_fits(sequence_id: str, cube: StampCube, stars: CubeStars, frames: Sequence[CubeFrame]) -> bytes:
    primary = fits.PrimaryHDU()
    header = primary.header
    header["SEQID"] = (sequence_id, "observation (sequence id)")
    header["STAMPSZ"] = (cube.stamps.shape[-1], "window size, px (square)")
    header["NSTARS"] = (cube.stamps.shape[0], "stars (STARS rows)")
    header["NFRAMES"] = (cube.stamps.shape[1], "frames (FRAMES rows)")
    header["REFIMAGE"] = (frames[0].image_id if frames else "", "reference frame: drift 0")
    for flag in StampFlag:
        header[f"FLAG{int(flag)}"] = (str(flag.name), "SAMPLES.flags bit")
    header["COMMENT"] = "STAMPS[star, frame, row, col] = frame pixel (y0 + row, x0 + col) of SAMPLES"
    times = Time([as_utc(f.time) for f in frames]) if frames else None
    frame_table = fits.BinTableHDU.from_columns(
        [
            fits.Column("image_id", "A64", array=np.array([f.image_id for f in frames], dtype="U64")),
            fits.Column("time", "A19", array=np.array(times.isot if times else [], dtype="U19")),
            fits.Column("mjd", "D", unit="d", array=times.mjd if times else np.zeros(0)),
            fits.Column("exposure", "D", unit="s", array=[f.exposure for f in frames]),
            fits.Column("airmass", "D", array=[f.airmass for f in frames]),
            fits.Column("camera_temp", "D", unit="deg C", array=[f.camera_temp for f in frames]),
            fits.Column("drift_x", "D", unit="pix", array=[f.drift[0] for f in frames]),
            fits.Column("drift_y", "D", unit="pix", array=[f.drift[1] for f in frames]),
        ],
        name="FRAMES",
    )
    star_table = fits.BinTableHDU.from_columns(
        [
            fits.Column("star", "J", array=np.arange(len(stars.ra))),
            fits.Column("catalog_id", "A32", array=np.asarray(stars.ids, dtype="U32")),
            fits.Column("ra", "D", unit="deg", array=stars.ra),
            fits.Column("dec", "D", unit="deg", array=stars.dec),
            fits.Column("mag", "D", unit="mag", array=stars.mag),
            fits.Column("x", "D", unit="pix", array=stars.x),
            fits.Column("y", "D", unit="pix", array=stars.y),
        ],
        name="STARS",
    )
    table = cube.table()
    kinds = {"star": "J", "frame": "J", "x0": "J", "y0": "J", "flags": "J"}
    sky = border_sky(cube.stamps).ravel()
    samples = fits.BinTableHDU.from_columns(
        [fits.Column(name, kinds.get(name, "D"), array=values) for name, values in table.items()]
        + [fits.Column("sky", "E", unit="adu", array=sky)],
        name="SAMPLES",
    )
    image = fits.ImageHDU(np.ascontiguousarray(cube.stamps, dtype=np.float32), name="STAMPS")
    image.header["BUNIT"] = ("adu", "background-subtracted ADU")
    buffer = io.BytesIO()
    fits.HDUList([primary, image, frame_table, star_table, samples]).writeto(buffer)
    return buffer.getvalue()
