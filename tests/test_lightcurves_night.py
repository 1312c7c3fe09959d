"""Lightcurves of a realistic synthetic night of 60 full frames, against the generator's truth.

The night (``synthetic.night_conditions``): transparency falling 2% with 0.3% flicker, airmass from
1.42 to 1.13 with per-channel extinction, seeing wandering between 2.5 and 4 px FWHM, stars of
V 7-12.5 with colours, 40 blended pairs, and a V 9 star with a 2% transit over frames 20-39.
Frames are rendered one at a time as the stamp cube reaches them (``synthetic.night_cube``: the
generator's sky subtracted, the truth's drift), the cube is written and read back as the step
stores it, and the lightcurves are made from the file. A second night is the same exposures
without the transit (``night_cubes``: each frame rendered once, the transit's electrons thinned out
of the flat night's, so the two differ only under the target). 155 s in all on this 2-core machine
kind under load (rendering both nights apart took about 7 min).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from panoptes_network.science import lightcurves as lc
from panoptes_network.science.fluxes import SUM
from panoptes_network.science.forced_photometry import CHANNELS
from panoptes_network.synthetic import observation as obs
from panoptes_network.synthetic.frames import FULL_SHAPE
from panoptes_network.synthetic.night_cube import NightCube, night_cubes
from panoptes_network.synthetic.star_field import StarFieldSpec

FRAMES = 60
TRANSIT = (20, 40)  # frames in transit: 20 of 60
DEPTH = 0.02
TARGET_V = 9.0
MAG_BINS = np.arange(8.5, 11.0, 0.5)


def spec(depth: float) -> obs.ObservationSpec:
    flux = obs.Conditions().flux_at_mag_10 * 10 ** (-0.4 * (TARGET_V - 10.0))
    variable = obs.Variability(2604.3, 1738.6, flux, obs.transit_box(FRAMES, *TRANSIT, depth))
    field = StarFieldSpec(shape=FULL_SHAPE)
    return obs.ObservationSpec(
        field=field, frames=FRAMES, stars=3000, conditions=obs.Conditions(), variable=variable, seed=11
    )


class Night:
    def __init__(self, truth: obs.ObservationTruth, cube: NightCube, folder: Path) -> None:
        self.truth = truth
        path = folder / "stamps.fits"
        path.write_bytes(cube.data)
        self.lightcurves = lc.make_lightcurves(lc.read_cube(path))
        self.stars = cube.stars  # truth index of each cube star
        night = self.truth.night
        assert night is not None
        self.mag = night.mag[self.stars]
        self.blended_truth = night.blended[self.stars]
        self.limit = self.truth.noise_limit(lc.LightcurveSettings().photometry.aperture_px)[self.stars]
        self.target = int(np.flatnonzero(self.stars == len(self.truth.star_x) - 1)[0])

    def quiet(self) -> np.ndarray:
        """Isolated (no blend flag, no drawn companion), unsaturated, non-variable, inside the frame."""
        fluxes = self.lightcurves.fluxes
        quiet = ~fluxes.unusable() & ~fluxes.blended() & ~self.blended_truth
        quiet[self.target] = False
        return quiet


@pytest.fixture(scope="module")
def cubes() -> tuple[obs.ObservationTruth, NightCube, NightCube]:
    """The night with the transit and the same exposures without it, rendered once."""
    truth = obs.plan_observation(spec(DEPTH))
    return (truth, *night_cubes(truth))


@pytest.fixture(scope="module")
def transit(
    cubes: tuple[obs.ObservationTruth, NightCube, NightCube], tmp_path_factory: pytest.TempPathFactory
) -> Night:
    truth, with_transit, _ = cubes
    return Night(truth, with_transit, tmp_path_factory.mktemp("transit"))


@pytest.fixture(scope="module")
def quiet_night(
    cubes: tuple[obs.ObservationTruth, NightCube, NightCube], tmp_path_factory: pytest.TempPathFactory
) -> Night:
    _, _, without = cubes
    truth = obs.plan_observation(spec(0.0))  # the same stars; the target's curve is flat
    return Night(truth, without, tmp_path_factory.mktemp("quiet"))


def scatter_ratios(night: Night, channel: int) -> list[tuple[float, int, float]]:
    """Per magnitude bin: (bin start, stars, median of observed scatter / noise limit)."""
    fluxes = night.lightcurves.fluxes
    assert fluxes.detrended is not None
    quiet = night.quiet()
    rows = []
    for low in MAG_BINS:
        inside = quiet & (night.mag >= low) & (night.mag < low + 0.5)
        scatter = np.nanstd(fluxes.detrended[inside, :, channel], axis=1)
        rows.append((float(low), int(inside.sum()), float(np.median(scatter / night.limit[inside, channel]))))
    return rows


def test_scatter_of_quiet_stars_is_near_the_noise_limit_in_every_magnitude_bin(transit: Night) -> None:
    """Sum of channels at most 1.2x the photon + sky + read noise limit, G at most 1.3x; R and B reported."""
    report = {name: scatter_ratios(transit, c) for c, name in enumerate(CHANNELS)}
    for name, rows in report.items():
        print(name, " ".join(f"V{low:.1f}({n}):{ratio:.2f}x" for low, n, ratio in rows))
    for low, stars, ratio in report["sum"]:
        assert stars >= 30, f"V {low}: {stars} quiet stars"
        assert 0.8 < ratio <= 1.2, f"V {low}: sum scatter {ratio:.2f}x the limit"
    for low, _, ratio in report["G"]:
        assert 0.8 < ratio <= 1.3, f"V {low}: G scatter {ratio:.2f}x the limit"


def test_reported_errors_agree_with_the_scatter_within_20_percent(transit: Night) -> None:
    fluxes = transit.lightcurves.fluxes
    assert fluxes.detrended is not None and fluxes.relative_error is not None
    quiet = transit.quiet()
    for low in MAG_BINS:
        inside = quiet & (transit.mag >= low) & (transit.mag < low + 0.5)
        for c, name in enumerate(CHANNELS):
            scatter = np.nanstd(fluxes.detrended[inside, :, c], axis=1)
            error = np.nanmedian(fluxes.relative_error[inside, :, c], axis=1)
            ratio = float(np.median(error / scatter))
            assert 0.8 <= ratio <= 1.2, f"V {low} {name}: errors are {ratio:.2f}x the scatter"


def test_the_transit_is_recovered_ranked_first_with_its_depth_and_mid_time(transit: Night) -> None:
    search, fluxes = transit.lightcurves.search, transit.lightcurves.fluxes
    star = transit.target
    assert search.ranked()[0] == star, f"ranked first: {search.ranked()[:3]}, SNR {search.snr[search.ranked()[:3]]}"
    assert list(np.flatnonzero(search.candidate)) == [star]
    print(f"depth {search.depth[star]:.4f} +- {search.depth_error[star]:.4f}, SNR {search.snr[star]:.1f}")
    assert search.depth[star] == pytest.approx(DEPTH, rel=0.15)
    times = fluxes.time[star]
    true_mid = (times[TRANSIT[0]] + times[TRANSIT[1] - 1]) / 2
    cadence = float(np.median(np.diff(times)))
    assert abs(search.mid_time[star] - true_mid) < cadence
    assert not transit.lightcurves.comparisons.usable[star] or transit.lightcurves.comparisons.variable[star]


def test_the_same_night_without_the_transit_lists_no_candidate(quiet_night: Night) -> None:
    search = quiet_night.lightcurves.search
    best = search.ranked()[0]
    print(
        f"best SNR without a signal: {search.snr[best]:.1f} (threshold {lc.LightcurveSettings().search.snr_threshold})"
    )
    assert not search.candidate.any()
    assert np.isfinite(search.snr[quiet_night.target])


def test_blended_stars_carry_their_flag_and_are_never_candidates(transit: Night, quiet_night: Night) -> None:
    for night in (transit, quiet_night):
        fluxes, search = night.lightcurves.fluxes, night.lightcurves.search
        truth = night.truth
        assert (fluxes.flags & 8).any() and fluxes.blended().sum() >= night.blended_truth.sum() // 2
        assert not (search.candidate & night.blended_truth).any()
        assert not (search.candidate & fluxes.blended()).any()
        x, y = truth.star_x[night.stars], truth.star_y[night.stars]
        pairs = np.flatnonzero(night.blended_truth)
        close = [s for s in pairs if np.sort(np.hypot(x - x[s], y - y[s]))[1] < 6.0]
        assert close and fluxes.blended()[close].all(), "a companion within 6 px is inside the window"
        assert np.nanmax(search.snr[fluxes.blended()]) > 0  # they were searched, and reported as blends


def test_the_sum_reaches_the_precision_of_the_published_method_at_v9(transit: Night) -> None:
    """PIAA (Gee et al. 2021): about 1% per channel per frame at V 8.9; the per-channel G here is at its limit."""
    fluxes = transit.lightcurves.fluxes
    assert fluxes.detrended is not None
    inside = transit.quiet() & (np.abs(transit.mag - 8.9) < 0.25)
    g = float(np.median(np.nanstd(fluxes.detrended[inside, :, CHANNELS.index("G")], axis=1)))
    total = float(np.median(np.nanstd(fluxes.detrended[inside, :, SUM], axis=1)))
    print(f"V 8.9: G {g * 1e6:.0f} ppm, sum {total * 1e6:.0f} ppm per frame")
    assert total < g < 0.015
