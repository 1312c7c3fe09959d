"""Observation science on a synthetic observation with known truth: the generator, drift, frame
quality and outliers, the median stack and difference image, and the stamp cube.

One small observation (20 frames of 400x300 px, realistic drift and jitter, frame 7 blurred to
twice the FWHM, one star dimmed by half in frames 8-13) is rendered, background-subtracted with
the pipeline's background model, and measured once for the module.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from panoptes_network.core.names import parse_raw_name
from panoptes_network.science import background_model as bm
from panoptes_network.science import frame_quality as fq
from panoptes_network.science import stacking, stamp_cube
from panoptes_network.synthetic import observation as obs

BLURRED = 7
VARIABLE = obs.Variability(x=200.3, y=150.6, flux=6e4, curve=obs.transit_box(20, 8, 14, 0.5))
SPEC = obs.ObservationSpec(fwhm_by_frame={BLURRED: 5.0}, variable=VARIABLE, seed=2)
BACKGROUND = bm.BackgroundSettings()


@dataclasses.dataclass
class Measured:
    truth: obs.ObservationTruth
    frames: list[np.ndarray]  # background-subtracted science frames
    rms: list[np.ndarray]
    metrics: list[fq.FrameMetrics]
    sources: list
    offsets: np.ndarray  # measured from sources

    def usable(self) -> tuple[list[np.ndarray], np.ndarray]:
        keep = [i for i in range(len(self.frames)) if i != BLURRED]
        return [self.frames[i] for i in keep], self.offsets[keep]


@pytest.fixture(scope="module")
def measured() -> Measured:
    truth = obs.plan_observation(SPEC)
    frames, rms, metrics, sources = [], [], [], []
    for _, data, header in obs.render_observation(truth):
        stored = bm.to_fits(bm.estimate(data, header, BACKGROUND), BACKGROUND)
        model, sky_rms = bm.load_model(stored), bm.load_rms(stored)
        frame = data.astype(np.float32) - model
        found_metrics, found = fq.measure_frame(frame, float(np.median(model)) - obs.BLACK_LEVEL, sky_rms)
        frames.append(frame)
        rms.append(sky_rms)
        metrics.append(found_metrics)
        sources.append(found)
    return Measured(truth, frames, rms, metrics, sources, fq.source_offsets(sources))


def far_from_stars(truth: obs.ObservationTruth, region: stacking.Overlap, frames: list[int]) -> np.ndarray:
    """Mask of the region's pixels more than 12 px from every star in each of the science ``frames``."""
    rows, cols = np.mgrid[region.y0 : region.y1, region.x0 : region.x1]
    free = np.ones(region.shape, bool)
    for index in frames:
        for x, y in zip(*truth.positions(truth.science[index])):
            free &= np.hypot(cols - x, rows - y) > 12
    return free


def known_sky_subtracted(truth: obs.ObservationTruth, frames: list[int]) -> list[np.ndarray]:
    """Science frames less the generator's sky: noise and stars only. The background model's
    errors are nearly the same in every frame (same sky, same stars), so tests of the noise use these."""
    sky = obs.bayer_sky(SPEC.field.shape) + obs.BLACK_LEVEL
    return [obs.render_frame(truth, truth.science[i])[0] - sky for i in frames]


# --- the generator -------------------------------------------------------------------------------


def test_the_generator_writes_canonical_fits_fz_with_pointing_images_and_darks(tmp_path: Path) -> None:
    spec = dataclasses.replace(SPEC, frames=3, fwhm_by_frame={}, variable=None, pointing_images=2, darks=1)
    truth = obs.write_observation(spec, tmp_path)
    kinds = [f.kind for f in truth.frames]
    assert kinds == [obs.FrameKind.POINTING] * 2 + [obs.FrameKind.SCIENCE] * 3 + [obs.FrameKind.DARK]
    times = [f.time for f in truth.frames]
    assert times == sorted(times)
    assert [(b - a).total_seconds() for a, b in zip(truth.times, truth.times[1:])] == [spec.cadence_s] * 2
    for frame in truth.frames:
        name = parse_raw_name(frame.name)
        assert name.extension == "fits.fz"
        assert name.sequence_id == truth.sequence_id
        assert name.is_pointing == (frame.kind is obs.FrameKind.POINTING)
        with fits.open(tmp_path / frame.name) as hdus:
            header, data = hdus[1].header, hdus[1].data
        assert data.shape == spec.field.shape and data.dtype == np.uint16
        assert header["SEQID"] == truth.sequence_id
        assert header["DATE-OBS"] == frame.time.strftime("%Y-%m-%dT%H:%M:%S")
        assert header.get("POINTING", False) == (frame.kind is obs.FrameKind.POINTING)
        assert header.get("DARK", False) == (frame.kind is obs.FrameKind.DARK)
        if frame.kind is obs.FrameKind.DARK:
            assert header["IMAGETYP"] == "Dark Frame"
            assert abs(float(np.median(data)) - obs.BLACK_LEVEL) < 2  # no sky, no stars
        else:
            assert not name.is_pointing or name.image_name == f"pointing{frame.index + 1:02d}"
            assert float(np.median(data)) > obs.BLACK_LEVEL + 50  # a sky


def test_frames_have_independent_noise_and_the_drift_grows_through_the_night(measured: Measured) -> None:
    a, b = known_sky_subtracted(measured.truth, [0, 1])
    sky = far_from_stars(measured.truth, stacking.Overlap(0, 0, a.shape[1], a.shape[0]), [0, 1])
    assert abs(np.corrcoef(a[sky], b[sky])[0, 1]) < 0.02
    offsets = measured.truth.offsets
    assert np.array_equal(offsets[0], [0.0, 0.0])
    hours = (len(offsets) - 1) * SPEC.cadence_s / 3600
    expected_end = np.array(SPEC.drift_px_per_hour) * hours
    assert np.all(np.abs(offsets[-1] - expected_end) < 4 * SPEC.jitter_px * np.sqrt(2))
    assert np.std(np.diff(offsets, axis=0) - expected_end / (len(offsets) - 1)) > 0.1  # jitter


def test_the_variable_star_follows_its_curve_and_the_blurred_frame_is_blurred(measured: Measured) -> None:
    truth = measured.truth
    star = next(iter(truth.curves))
    assert (truth.star_x[star], truth.star_y[star]) == (VARIABLE.x, VARIABLE.y)
    assert list(truth.fwhm).count(5.0) == 1 and truth.fwhm[BLURRED] == 5.0
    fluxes = []
    for frame, science in zip(measured.frames, truth.science):
        x, y = truth.positions(science)
        ix, iy = int(round(x[star])), int(round(y[star]))
        fluxes.append(frame[iy - 6 : iy + 7, ix - 6 : ix + 7].sum())
    fluxes = np.array(fluxes) / np.median(fluxes)
    assert np.allclose(fluxes, VARIABLE.curve, atol=0.05)


def test_the_pair_is_the_flat_night_and_the_variable_thinned_out_of_it_under_its_psf_alone() -> None:
    """``render_science_pair``: the held frame is ``render_frame`` without the curve, bit for bit; the
    planned one differs only within the variable's PSF, by its missing flux within Poisson noise."""
    truth = obs.plan_observation(SPEC)
    star = next(iter(truth.curves))
    flat = dataclasses.replace(truth, curves={})
    deficits = []
    for index in (2, *range(8, 14)):
        science = truth.science[index]
        planned, held = obs.render_science_pair(truth, science)
        assert np.array_equal(held, obs.render_frame(flat, science)[0])
        x, y = truth.positions(science)
        rows, cols = np.nonzero(planned != held)
        box = np.ceil(4 * truth.fwhm[index] / 2.355) + 1  # draw_stars' box half-width, and rounding
        assert np.hypot(cols - x[star], rows - y[star]).max(initial=0) <= box * np.sqrt(2)
        deficits.append(float(held.astype(np.float64).sum() - planned.astype(np.float64).sum()))
    assert deficits[0] == 0.0
    expected = VARIABLE.flux * 0.5
    # the thinned electrons' variance is at most their mean (binomial); 5 sigma, and the pixels' rounding
    tolerance = 5 * np.sqrt(expected * obs.GAIN) / obs.GAIN + 10.0
    for deficit in deficits[1:]:
        assert abs(deficit - expected) < tolerance, f"lost {deficit:.0f} ADU of {expected:.0f}"


# --- drift ----------------------------------------------------------------------------------------


def test_drift_measured_from_sources_recovers_the_truth_within_a_tenth_of_a_pixel(measured: Measured) -> None:
    error = np.abs(measured.offsets - measured.truth.offsets)
    assert error.max() < 0.1, error


def test_drift_from_wcs_is_the_truth(measured: Measured) -> None:
    truth = measured.truth
    wcs = [truth.wcs(frame) for frame in truth.science]
    offsets = fq.wcs_offsets(wcs[0], wcs, SPEC.field.shape)
    assert np.abs(offsets - truth.offsets).max() < 1e-6


def test_unrelated_sources_give_no_offset(measured: Measured) -> None:
    sources = measured.sources[3]
    rng = np.random.default_rng(0)
    scattered = dataclasses.replace(sources, x=rng.uniform(0, 400, len(sources)), y=rng.uniform(0, 300, len(sources)))
    assert np.isnan(fq.measured_offset(measured.sources[0], scattered)).all()


# --- frame quality --------------------------------------------------------------------------------


def test_the_blurred_frame_alone_is_excluded_with_its_reason(measured: Measured) -> None:
    excluded = fq.select_outliers(measured.metrics)
    assert set(excluded) == {BLURRED}
    fwhm = measured.metrics[BLURRED].fwhm
    median = float(np.median([m.fwhm for m in measured.metrics]))
    assert f"FWHM {fwhm:.1f} px is " in excluded[BLURRED]
    assert f"sigma above the median {median:.1f} px" in excluded[BLURRED]
    assert all(m.measured >= 20 for m in measured.metrics)


def test_outlier_reasons_name_value_sigma_and_median() -> None:
    fwhm = [3.0, 3.02, 2.98, 3.01, 2.99, 3.0, 6.1, 3.03, 2.97, 3.0]
    metrics = [fq.FrameMetrics(300.0, 16.0, 100, 50, f, 0.05) for f in fwhm]
    excluded = fq.select_outliers(metrics)
    assert list(excluded) == [6]
    assert excluded[6].startswith("FWHM 6.1 px is ") and excluded[6].endswith(" sigma above the median 3.0 px")
    steady = [fq.FrameMetrics(300.0, 16.0, 100, 50, 3.0 + 0.001 * i, 0.05) for i in range(10)]
    steady[4] = dataclasses.replace(steady[4], fwhm=3.1)  # many sigma out, but only 3% wider
    assert fq.select_outliers(steady) == {}
    cloudy = [dataclasses.replace(m, sources=100 + i % 3) for i, m in enumerate(steady)]
    cloudy[2] = dataclasses.replace(cloudy[2], sources=20, fwhm=float("nan"))
    reasons = fq.select_outliers(cloudy)[2]
    assert "FWHM could not be measured" in reasons and "source count 20 is " in reasons and "below" in reasons
    assert fq.select_outliers(metrics[:4]) == {}  # too few frames for statistics


# --- stack and difference -------------------------------------------------------------------------


def test_the_stack_keeps_the_bayer_phase_and_covers_the_overlap(measured: Measured) -> None:
    frames, offsets = measured.usable()
    stack = stacking.median_stack(frames, offsets)
    assert (stack.shifts % 2 == 0).all() and stack.region.x0 % 2 == 0 and stack.region.y0 % 2 == 0
    assert np.abs(stack.misalignment).max() <= 1.0
    r = stack.region
    for (sx, sy), frame in zip(stack.shifts, frames):
        assert r.x0 + sx >= 0 and r.y0 + sy >= 0 and r.x1 + sx <= frame.shape[1] and r.y1 + sy <= frame.shape[0]
    span = np.ptp(stack.shifts, axis=0)
    assert stack.image.shape == (frames[0].shape[0] - span[1], frames[0].shape[1] - span[0])
    y, x = 10, 20
    values = [f[r.y0 + y + sy, r.x0 + x + sx] for f, (sx, sy) in zip(frames, stack.shifts)]
    assert stack.image[y, x] == pytest.approx(np.median(values))


def test_the_stack_of_n_frames_has_the_noise_of_a_median(measured: Measured) -> None:
    """A median's noise is sqrt(pi/2) = 1.25 times the mean's: 1.25 / sqrt(N) of one frame; within 10%.

    The frames have the known sky subtracted, not the background model: the model's errors
    are nearly the same in every frame (same sky, same stars) and would not average down."""
    truth = measured.truth
    frames = known_sky_subtracted(truth, [i for i in range(SPEC.frames) if i != BLURRED])
    stack = stacking.median_stack(frames, measured.usable()[1])
    r = stack.region
    star_free = far_from_stars(truth, r, [0])
    single = frames[0][r.y0 : r.y1, r.x0 : r.x1]  # frame 0 is the reference: shift 0
    ratio = np.std(stack.image[star_free]) / np.std(single[star_free])
    expected = 1.2533 / np.sqrt(len(frames))
    assert ratio == pytest.approx(expected, rel=0.10), (ratio, expected)


def test_the_difference_image_peaks_on_the_variable_star(measured: Measured) -> None:
    frames, offsets = measured.usable()
    stack = stacking.median_stack(frames, offsets)
    difference = stacking.difference_image(frames, stack)
    assert difference.shape == stack.image.shape
    y, x = np.unravel_index(np.nanargmax(difference), difference.shape)
    assert np.hypot(x + stack.region.x0 - VARIABLE.x, y + stack.region.y0 - VARIABLE.y) < 3
    assert np.nanmedian(difference) < 2 * np.median(measured.rms[0])  # elsewhere, noise


def test_the_stack_and_difference_in_one_pass_are_those_of_two(
    measured: Measured, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One read of the frames gives the same stack and difference, bit for bit, in blocks and on two threads."""
    frames, offsets = measured.usable()
    stack = stacking.median_stack(frames, offsets)
    difference = stacking.difference_image(frames, stack)
    monkeypatch.setattr(stacking, "BLOCK_BYTES", 4 * len(frames) * stack.image.shape[1] * 10)  # 5 blocks
    together, one_pass = stacking.stack_and_difference(frames, offsets, workers=2)
    assert np.array_equal(together.image, stack.image)
    assert np.array_equal(one_pass, difference, equal_nan=True)
    assert (together.region, together.shifts.tolist()) == (stack.region, stack.shifts.tolist())


# --- stamp cube -----------------------------------------------------------------------------------


def test_every_stamp_keeps_its_star_in_place_and_the_bayer_phase(measured: Measured) -> None:
    frames, offsets = measured.usable()
    truth = measured.truth
    science = [f for f in truth.science if f.index != BLURRED]
    cube = stamp_cube.cut_cube(frames, truth.star_x, truth.star_y, offsets)
    stars = len(truth.star_x)
    assert cube.stamps.shape == (stars, len(frames), 16, 16) and cube.stamps.dtype == np.float32
    assert (cube.x0 % 2 == 0).all() and (cube.y0 % 2 == 0).all()
    true_x = np.array([truth.positions(f)[0] for f in science]).T  # (stars, frames)
    true_y = np.array([truth.positions(f)[1] for f in science]).T
    in_x, in_y = true_x - cube.x0, true_y - cube.y0
    tolerance = 1.0 + np.abs(offsets - truth.offsets[[f.index for f in science]]).max()
    assert tolerance < 1.1
    assert np.abs(in_x - 7.5).max() <= tolerance and np.abs(in_y - 7.5).max() <= tolerance  # every frame
    assert np.abs(in_x[:, 0] - 7.5).max() <= 1.0 and np.abs(in_y[:, 0] - 7.5).max() <= 1.0
    s, f = next(iter(truth.curves)), 3
    x0, y0 = cube.x0[s, f], cube.y0[s, f]
    assert np.array_equal(cube.stamps[s, f], frames[f][y0 : y0 + 16, x0 : x0 + 16])
    table = cube.table()
    assert {len(v) for v in table.values()} == {stars * len(frames)}
    assert table["star"][len(frames)] == 1 and table["frame"][len(frames)] == 0


def test_stamp_flags_mark_the_edge_the_outside_saturation_and_neighbours() -> None:
    frame = np.zeros((100, 120), np.float32)
    frame[60, 61] = 12_000.0  # saturated
    x = np.array([50.0, 55.0, 3.0, 60.5, 110.0, 30.0])
    y = np.array([50.0, 52.0, 50.0, 60.5, 30.0, 90.0])
    offsets = np.array([[0.0, 0.0], [0.4, -0.3], [-8.2, 0.1]])
    cube = stamp_cube.cut_cube([frame] * 3, x, y, offsets)
    flags = cube.flags
    flag = stamp_cube.StampFlag
    assert (flags[0] & flag.NEIGHBOUR).all() and (flags[1] & flag.NEIGHBOUR).all()
    assert (flags[2] & flag.OUTSIDE).all() and np.isnan(cube.stamps[2, 2]).any()
    assert not np.isnan(cube.stamps[0]).any()
    assert (flags[3, :2] & flag.SATURATED).all() and not flags[3, 2] & flag.SATURATED
    assert flags[4, 0] & flag.NEAR_EDGE and not flags[4, 0] & flag.OUTSIDE
    assert flags[5, 0] == flag.NEAR_EDGE  # 90 + 8 > 100 - 4: near, not outside
    assert not (flags[0] & (flag.OUTSIDE | flag.NEAR_EDGE | flag.SATURATED)).any()
    with pytest.raises(ValueError, match="at least 14"):
        stamp_cube.StampSettings(size=12)
