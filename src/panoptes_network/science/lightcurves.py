"""Lightcurves of every star of an observation, from its stamp cube: photometry, comparison, trend, search.

``read_cube`` takes the stamp cube file (``stamps.fits``, docs/observation-products.md) as stored,
memory-mapped, so photometry reads a block of stars at a time; ``make_lightcurves`` runs forced
photometry, the comparison ensembles, BJD_TDB times and the airmass, the detrending and the transit
search, and returns the one ``Fluxes`` value with the comparisons and the search.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
from astropy.io import fits

from panoptes_network.science import comparison_stars, detrending, forced_photometry, transit_search
from panoptes_network.science.fluxes import Fluxes


@dataclasses.dataclass(frozen=True)
class LightcurveSettings:
    photometry: forced_photometry.PhotometrySettings = forced_photometry.PhotometrySettings()
    comparison: comparison_stars.ComparisonSettings = comparison_stars.ComparisonSettings()
    detrend: detrending.DetrendSettings = detrending.DetrendSettings()
    search: transit_search.SearchSettings = transit_search.SearchSettings()


@dataclasses.dataclass(frozen=True)
class CubeData:
    """The arrays of a stamp cube the lightcurves need (``stamps`` may be a memory map)."""

    sequence_id: str
    stamps: np.ndarray  # (stars, frames, size, size)
    stamp_x: np.ndarray  # (stars, frames)
    stamp_y: np.ndarray
    flags: np.ndarray
    ids: np.ndarray  # (stars,)
    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray
    image_ids: list[str]  # (frames,)
    starts: list[dt.datetime]  # DATE-OBS, UTC
    exposure: np.ndarray  # (frames,) s
    airmass: np.ndarray  # (frames,) the headers' AIRMASS; NaN when unknown (the trend is then fitted in time)


@dataclasses.dataclass(frozen=True)
class Lightcurves:
    fluxes: Fluxes
    comparisons: comparison_stars.Comparisons
    search: transit_search.TransitSearch


def read_cube(path: Path) -> CubeData:
    """A stamp cube file's arrays; the stamps stay memory-mapped (read a block of stars at a time)."""
    hdus = fits.open(path, memmap=True)
    stamps = hdus["STAMPS"].data
    stars, frames = stamps.shape[:2]
    samples, star_table, frame_table = hdus["SAMPLES"].data, hdus["STARS"].data, hdus["FRAMES"].data

    def per_sample(name: str) -> np.ndarray:
        return np.asarray(samples[name]).reshape(stars, frames)

    starts = [dt.datetime.fromisoformat(str(t)).replace(tzinfo=dt.UTC) for t in frame_table["time"]]
    return CubeData(
        sequence_id=str(hdus[0].header.get("SEQID", "")),
        stamps=stamps,
        stamp_x=per_sample("stamp_x").astype(np.float64),
        stamp_y=per_sample("stamp_y").astype(np.float64),
        flags=per_sample("flags").astype(np.int64),
        ids=np.asarray(star_table["catalog_id"]).astype(str),
        ra=np.asarray(star_table["ra"], dtype=np.float64),
        dec=np.asarray(star_table["dec"], dtype=np.float64),
        mag=np.asarray(star_table["mag"], dtype=np.float64),
        image_ids=[str(i) for i in frame_table["image_id"]],
        starts=starts,
        exposure=np.asarray(frame_table["exposure"], dtype=np.float64),
        airmass=np.asarray(frame_table["airmass"], dtype=np.float64),
    )


def make_lightcurves(cube: CubeData, settings: LightcurveSettings = LightcurveSettings()) -> Lightcurves:
    """Every star's lightcurve and best transit box (see the module's docstring)."""
    photometry = forced_photometry.measure(cube.stamps, cube.stamp_x, cube.stamp_y, cube.flags, settings.photometry)
    times = detrending.mid_exposure(cube.starts, cube.exposure)
    fluxes = Fluxes(
        ids=cube.ids,
        mag=cube.mag,
        ra=cube.ra,
        dec=cube.dec,
        time=detrending.bjd_tdb(times, cube.ra, cube.dec),
        airmass=cube.airmass,
        exposure=cube.exposure,
        photometry=photometry,
    )
    comparisons = comparison_stars.choose(fluxes, settings.comparison)
    relative, relative_error = comparison_stars.relative_fluxes(fluxes, comparisons)
    detrended = detrending.detrend(relative, relative_error, fluxes.airmass, fluxes.time, settings.detrend)
    fluxes = dataclasses.replace(fluxes, relative=relative, relative_error=relative_error, detrended=detrended)
    return Lightcurves(fluxes, comparisons, transit_search.search(fluxes, settings.search))
