"""Each block of the lightcurves on small inputs with a known answer: forced photometry per Bayer
channel, Broeg comparison ensembles, BJD_TDB and the detrending, the transit search, the products.
The whole chain on a realistic night is tests/test_lightcurves_night.py."""

from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.coordinates import EarthLocation, SkyCoord
from astropy.time import Time
from astropy.utils import iers
from PIL import Image

from panoptes_network.science import comparison_stars, detrending, forced_photometry, transit_search
from panoptes_network.science.fluxes import SUM, Fluxes
from panoptes_network.science.forced_photometry import CHANNELS, PhotometryFlag
from panoptes_network.science.lightcurve_products import LIGHTCURVE_FILES, make_lightcurve_products
from panoptes_network.science.lightcurves import Lightcurves
from panoptes_network.synthetic.night_conditions import site_weights
from panoptes_network.synthetic.star_field import draw_stars

SIZE = 16


def stamp(x: float, y: float, flux: float, fwhm: float, sites: np.ndarray | None = None) -> np.ndarray:
    image = np.zeros((SIZE, SIZE), np.float32)
    draw_stars(image, np.array([x]), np.array([y]), np.array([flux]), fwhm, None if sites is None else sites[None])
    return image


# --- forced photometry ---------------------------------------------------------------------------


def test_photometry_recovers_each_channels_share_of_a_coloured_star() -> None:
    """A red star drawn on RGGB sites: R, G, B and the sum within 1% of what the aperture holds, for 2.5-4 px FWHM."""
    sites = site_weights(np.array([1.2]), (0.0, 0.0, 0.0), 1.0)[0]
    flux = 40_000.0
    stamps = np.stack([stamp(7.3, 7.8, flux, fwhm, sites) for fwhm in (2.5, 3.2, 4.0)])[None]
    x, y = np.full((1, 3), 7.3), np.full((1, 3), 7.8)
    found = forced_photometry.measure(stamps, x, y, np.zeros((1, 3), int))
    shares = flux / 4 * np.array([sites[0], sites[1] + sites[2], sites[3], sites.sum()])
    sigma = np.array([2.5, 3.2, 4.0]) / 2.355
    enclosed = 1 - np.exp(-(5.0**2) / (2 * sigma**2))  # a Gaussian's light inside the 5 px aperture
    assert found.flux[0] == pytest.approx(enclosed[:, None] * shares[None], rel=0.01)
    assert sites[0] > sites[3], "a red star gives R more than B"
    assert (found.pixels[0, :, 3] == found.pixels[0, :, :3].sum(axis=-1)).all()


def test_photometry_errors_follow_photon_and_sky_noise_and_flags_mark_bad_pixels_and_saturation() -> None:
    rng = np.random.default_rng(3)
    frames, sky_sigma, gain, flux = 400, 10.0, 1.5, 20_000.0
    clean = stamp(7.5, 7.5, flux, 3.0)
    electrons = rng.poisson(np.clip(clean, 0, None) * gain, (frames, SIZE, SIZE)) / gain
    stamps = (electrons + rng.normal(0, sky_sigma, (frames, SIZE, SIZE))).astype(np.float32)[None]
    position = np.full((1, frames), 7.5)
    found = forced_photometry.measure(stamps, position, position, np.zeros((1, frames), int))
    scatter = np.std(found.flux[0], axis=0)
    assert np.median(found.error[0], axis=0) == pytest.approx(scatter, rel=0.1)
    assert np.nanmedian(found.sky_rms[0, :, :3]) == pytest.approx(sky_sigma, rel=0.1)
    broken = stamps[:, :3].copy()
    broken[0, 0, 7, 7] = np.nan
    broken[0, 1, 8, 8] = 12_000.0
    flags = forced_photometry.measure(broken, position[:, :3], position[:, :3], np.array([[0, 0, 8]])).flags[0]
    assert flags[0] & PhotometryFlag.BAD_PIXEL and flags[1] & PhotometryFlag.SATURATED
    assert flags[2] == PhotometryFlag.NEIGHBOUR, "the cube's flags are kept"
    with pytest.raises(ValueError, match="needs a window of 17 px, not 16"):
        forced_photometry.measure(
            stamps,
            position,
            position,
            np.zeros((1, frames), int),
            forced_photometry.PhotometrySettings(aperture_px=7.5),
        )


# --- comparison stars ----------------------------------------------------------------------------


def fluxes_of(flux: np.ndarray, error: np.ndarray, mag: np.ndarray, flags: np.ndarray | None = None) -> Fluxes:
    stars, frames = flux.shape[:2]
    zeros = np.zeros((stars, frames, 4))
    photometry = forced_photometry.Photometry(
        flux, error, zeros, zeros + 1.0, zeros + 20, np.zeros((stars, frames), np.int64) if flags is None else flags
    )
    times = 2461000.5 + np.arange(frames) * 150 / 86400
    return Fluxes(
        ids=np.array([f"s{i}" for i in range(stars)]),
        mag=mag,
        ra=np.full(stars, 303.0) + np.arange(stars) * 0.01,
        dec=np.full(stars, 46.0),
        time=np.tile(times, (stars, 1)),
        airmass=np.linspace(1.4, 1.1, frames),
        exposure=np.full(frames, 120.0),
        photometry=photometry,
    )


def night_of(stars: int = 40, frames: int = 60, seed: int = 1) -> tuple[Fluxes, np.ndarray]:
    """Stars under the same transparency with 0.5% noise; star 0 dims 3% in frames 20-39; star 1 saturates."""
    rng = np.random.default_rng(seed)
    base = 10 ** (-0.4 * (rng.uniform(8.5, 10.5, stars) - 10)) * 15_000
    transparency = 1 - 0.02 * np.linspace(0, 1, frames) + rng.normal(0, 0.003, frames)
    curve = np.ones((stars, frames))
    curve[0, 20:40] = 0.97
    truth = base[:, None] * transparency[None] * curve
    noise = 0.005 * truth
    flux = np.repeat((truth + rng.normal(0, 1, truth.shape) * noise)[..., None], 4, axis=-1)
    error = np.repeat(noise[..., None], 4, axis=-1)
    flags = np.zeros((stars, frames), np.int64)
    flags[1, 5] = PhotometryFlag.SATURATED
    return fluxes_of(flux, error, -2.5 * np.log10(base / 15_000) + 10, flags), curve


def test_broeg_ensembles_exclude_the_variable_the_saturated_and_the_star_itself() -> None:
    fluxes, curve = night_of()
    chosen = comparison_stars.choose(fluxes)
    assert chosen.variable[0] and not chosen.usable[1] and chosen.usable[2:].all()
    for channel in range(4):
        weights = chosen.weights[channel]
        assert np.allclose(np.asarray(weights.sum(axis=1)).ravel(), 1.0)
        assert weights.diagonal().sum() == 0 and weights[:, [0, 1]].nnz == 0
    relative, error = comparison_stars.relative_fluxes(fluxes, chosen)
    quiet = relative[2:, :, SUM]
    assert np.std(quiet, axis=1) == pytest.approx(0.005 * np.sqrt(1 + 1 / 20), rel=0.25), "the transparency is gone"
    assert np.median(error[2:, :, SUM]) == pytest.approx(np.median(np.std(quiet, axis=1)), rel=0.2)
    dip = relative[0, 20:40, SUM].mean() / np.r_[relative[0, :20, SUM], relative[0, 40:, SUM]].mean()
    assert dip == pytest.approx(0.97, abs=0.003)
    table = comparison_stars.comparison_table(fluxes, chosen)
    assert set(table["channel"]) == set(CHANNELS) and (table["star"] != table["comparison"]).all()


# --- time and detrending -------------------------------------------------------------------------


def test_bjd_tdb_matches_astropys_barycentric_correction_within_the_observatorys_offset() -> None:
    starts = [dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC), dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)]
    times = detrending.mid_exposure(starts, [120.0, 60.0])
    assert (times[0] - Time("2026-11-24T08:01:00", scale="utc")).sec == pytest.approx(0, abs=1e-6)
    ra, dec = np.array([303.2, 10.0]), np.array([46.0, -20.0])
    ours = detrending.bjd_tdb(times, ra, dec)
    site = EarthLocation(lat=19.54 * u.deg, lon=-155.58 * u.deg, height=3400 * u.m)
    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("auto_max_age", None):
        located = Time(times, location=site)
        for s in range(2):
            delay = located.light_travel_time(SkyCoord(ra[s] * u.deg, dec[s] * u.deg), ephemeris="builtin")
            reference = (located.tdb + delay).jd
            assert np.abs(ours[s] - reference).max() * 86400 < 0.025, "at most the 21 ms of the Earth's radius"
    assert abs(ours[0, 0] - ours[1, 0]) * 86400 > 10, "stars across a field differ by seconds"


def test_detrending_removes_an_airmass_trend_and_keeps_a_transit() -> None:
    rng = np.random.default_rng(5)
    frames = 60
    airmass = np.linspace(1.42, 1.12, frames)
    time = np.tile(2461000.5 + np.arange(frames) * 150 / 86400, (2, 1))
    box = np.ones(frames)
    box[20:40] = 0.98
    trend = 1 + 0.02 * (airmass - airmass.mean())
    relative = np.stack([trend * box, trend]) + rng.normal(0, 0.002, (2, frames))
    error = np.full((2, frames), 0.002)
    detrended = detrending.detrend(relative[..., None], error[..., None], airmass, time)[..., 0]
    assert np.std(detrended[1]) == pytest.approx(0.002, rel=0.25), "the trend is gone"
    depth = 1 - detrended[0, 20:40].mean() / np.r_[detrended[0, :20], detrended[0, 40:]].mean()
    assert depth == pytest.approx(0.02, rel=0.1), "the clipped fit did not eat the transit"


# --- transit search and products -----------------------------------------------------------------


def searched(seed: int = 1) -> Lightcurves:
    fluxes, _ = night_of(seed=seed)
    chosen = comparison_stars.choose(fluxes)
    relative, error = comparison_stars.relative_fluxes(fluxes, chosen)
    detrended = detrending.detrend(relative, error, fluxes.airmass, fluxes.time)
    done = Fluxes(**{**fluxes.__dict__, "relative": relative, "relative_error": error, "detrended": detrended})
    return Lightcurves(done, chosen, transit_search.search(done))


def test_the_search_finds_the_dimming_star_and_nothing_else() -> None:
    found = searched().search
    assert list(np.flatnonzero(found.candidate)) == [0] and found.ranked()[0] == 0
    assert found.depth[0] == pytest.approx(0.03, rel=0.15)
    times = searched().fluxes.time[0]
    assert abs(found.mid_time[0] - (times[20] + times[39]) / 2) < 150 / 86400
    assert found.duration[0] * 86400 == pytest.approx(20 * 150, rel=0.2)
    assert np.isnan(found.snr[1]) and not found.eligible[1], "a saturated star is not searched"
    assert np.nanmax(found.snr[2:]) < transit_search.SearchSettings().snr_threshold


def test_products_read_back_and_the_record_is_json() -> None:
    made = searched()
    products = make_lightcurve_products("PAN000_SC5348_20261124T080000", made, (303.05, 46.0))
    assert set(products.files) == set(LIGHTCURVE_FILES)
    table = pq.read_table(io.BytesIO(products.files["lightcurves"])).to_pydict()
    stars, frames = made.fluxes.shape
    assert len(table["star"]) == stars * frames * 4 and set(table["channel"]) == set(CHANNELS)
    [row] = [
        i
        for i in range(len(table["star"]))
        if (table["star"][i], table["frame"][i], table["channel"][i]) == (3, 7, "G")
    ]
    assert table["flux"][row] == pytest.approx(made.fluxes.flux[3, 7, 1], rel=1e-6) and table["star_id"][row] == "s3"
    assert Image.open(io.BytesIO(products.files["lightcurve_plot"])).format == "PNG"
    record = json.loads(json.dumps(products.record))
    assert record["target"]["star_id"] == "s5", "the star nearest the field"
    assert [c["star_id"] for c in record["candidates"]] == ["s0"]
    assert record["comparison"]["variable"] == 1 and record["comparison"]["unusable"] == 1
    rows = record["precision"]
    assert sum(r["stars"] for r in rows) == stars - 2 and all(r["ppm_frame"]["sum"] > 0 for r in rows)
    assert rows[0]["ppm_hour"]["sum"] == pytest.approx(rows[0]["ppm_frame"]["sum"] * np.sqrt(150 / 3600), rel=1e-3)
    again = make_lightcurve_products("PAN000_SC5348_20261124T080000", made, (303.05, 46.0))
    assert again.files == products.files, "deterministic bytes: a redelivery finds the same objects"


def test_a_field_centre_on_an_unmeasured_star_takes_the_nearest_measured_one() -> None:
    made = searched()
    fluxes = made.fluxes
    assert fluxes.unusable()[1], "star 1 is saturated"
    products = make_lightcurve_products("PAN000_SC5348_20261124T080000", made, (fluxes.ra[1], fluxes.dec[1]))
    target = products.record["target"]
    assert target["star_id"] != "s1" and not target["unusable"]
    assert target["ppm_frame"]["sum"] is not None and target["ppm_frame"]["sum"] > 0
