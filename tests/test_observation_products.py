"""An observation's products (``science/observation_products.py``) on synthetic observations with truth.

One small observation (20 frames of 400x300 px, drift and jitter, frame 7 blurred to twice the
FWHM, one star dimmed by half in frames 8-13) is rendered, background-subtracted with the
pipeline's background model and turned into products once for the module; every file is read
back with astropy, pyarrow or PyAV, never with our code.
"""

from __future__ import annotations

import dataclasses
import io

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from PIL import Image

from panoptes_network.core.status import ObservationStatus
from panoptes_network.science import background_model as bm
from panoptes_network.science import observation_products as op
from panoptes_network.science.catalog_stars import CatalogStars
from panoptes_network.synthetic import observation as obs

BLURRED = 7
VARIABLE = obs.Variability(x=200.3, y=150.6, flux=6e4, curve=obs.transit_box(20, 8, 14, 0.5))
SPEC = obs.ObservationSpec(fwhm_by_frame={BLURRED: 5.0}, variable=VARIABLE, seed=2)
BACKGROUND = bm.BackgroundSettings()
SETTINGS = op.ProductsSettings()


def observation_frames(truth: obs.ObservationTruth) -> list[op.ObservationFrame]:
    """Science frames as the observation step gives them: background-subtracted pixels, the true WCS,
    a JPEG quick look for even frames (odd ones are rendered from their pixels), no stored sources."""
    frames = []
    for planned, data, header in obs.render_observation(truth):
        if not planned.is_science:
            continue
        stored = bm.to_fits(bm.estimate(data, header, BACKGROUND), BACKGROUND)
        model = bm.load_model(stored)
        pixels = data.astype(np.float32) - model
        buffer = io.BytesIO()
        Image.fromarray(np.full((300, 400, 3), 40 + planned.index, np.uint8)).save(buffer, format="JPEG")
        preview = buffer.getvalue() if planned.index % 2 == 0 else None
        frames.append(
            op.ObservationFrame(
                image_id=f"{truth.sequence_id}_{planned.index:03d}",
                time=planned.time,
                exposure=planned.exptime,
                airmass=1.2 + 0.01 * planned.index,
                camera_temp=20.0 - 0.1 * planned.index,
                wcs_header=truth.wcs(planned).to_header(relax=True),
                load_pixels=lambda pixels=pixels: pixels,
                load_preview=lambda preview=preview: preview,
                load_sources=lambda: None,
                sky_level=float(np.median(model)) - obs.BLACK_LEVEL,
                sky_rms=float(np.median(bm.load_rms(stored))),
            )
        )
    return frames


@dataclasses.dataclass
class Made:
    truth: obs.ObservationTruth
    frames: list[op.ObservationFrame]
    products: op.ObservationProducts

    def hdus(self, key: str) -> fits.HDUList:
        return fits.open(io.BytesIO(self.products.files[key].data))

    @property
    def usable(self) -> list[obs.PlannedFrame]:
        return [f for f in self.truth.science if f.index != BLURRED]


@pytest.fixture(scope="module")
def made() -> Made:
    truth = obs.plan_observation(SPEC)
    frames = observation_frames(truth)
    reference = truth.wcs(truth.science[0])
    ra, dec = reference.all_pix2world(truth.star_x, truth.star_y, 0)
    stars = CatalogStars("truth", np.array([f"star-{i}" for i in range(len(ra))]), ra, dec, np.zeros(len(ra)))
    return Made(truth, frames, op.make_products(truth.sequence_id, frames, SETTINGS, stars=stars))


def test_the_blurred_frame_is_excluded_with_its_reason_and_the_rest_processed(made: Made) -> None:
    products = made.products
    assert products.status is ObservationStatus.PROCESSED, products.reason
    blurred = made.frames[BLURRED].image_id
    assert list(products.excluded) == [blurred]
    assert products.excluded[blurred].startswith("FWHM ") and "sigma above the median" in products.excluded[blurred]
    assert set(products.files) == set(op.PRODUCT_FILES)
    for key, file in products.files.items():
        assert (file.suffix, file.content_type) == op.PRODUCT_FILES[key] and file.data
    true_drift = float(np.hypot(*(made.truth.offsets[[f.index for f in made.usable]]).T).max())
    assert products.drift_px == pytest.approx(true_drift, abs=0.01)


def test_the_quality_table_and_plot_list_every_frame(made: Made) -> None:
    table = pq.read_table(io.BytesIO(made.products.files["quality_table"].data)).to_pylist()
    assert [row["image_id"] for row in table] == [f.image_id for f in made.frames]
    assert [row["usable"] for row in table] == [i != BLURRED for i in range(SPEC.frames)]
    assert table[BLURRED]["excluded"] == made.products.excluded[made.frames[BLURRED].image_id]
    assert table[BLURRED]["fwhm"] > 1.3 * np.median([row["fwhm"] for row in table])
    for row, planned in zip(table, made.truth.science):
        assert row["time"].replace(tzinfo=None) == planned.time.replace(tzinfo=None)
        assert np.hypot(row["drift_x"] - planned.offset[0], row["drift_y"] - planned.offset[1]) < 0.01
        assert row["camera_temp"] == pytest.approx(20.0 - 0.1 * planned.index)
        assert row["sky_rms"] > 0 and row["sky_level"] > 50 and row["sources"] > 30
    with Image.open(io.BytesIO(made.products.files["quality_plot"].data)) as plot:
        assert plot.format == "PNG" and plot.width > 500 and plot.height > 500
        red = np.asarray(plot.convert("RGB"), dtype=np.int16)
    assert ((red[..., 0] > 180) & (red[..., 1] < 80) & (red[..., 2] < 80)).any()  # the excluded frame's cross


def test_the_timelapse_is_h264_yuv420p_with_one_frame_per_usable_frame(made: Made) -> None:
    with av.open(io.BytesIO(made.products.files["timelapse"].data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert container.format.name.startswith("mov,mp4")
        pictures = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    assert len(pictures) == SPEC.frames - 1
    first = pictures[0]
    assert first.shape[1] % 2 == 0 and first.shape[0] % 2 == 0
    label = first[4:20, 8:200]
    assert label.max() > 150 and label.min() < 30  # white text on its black box
    body = first[first.shape[0] // 2 :, :]
    assert abs(float(np.median(body)) - 40) < 4  # frame 0 is its (flat grey) quick look


def test_the_stack_matches_the_truth_and_carries_a_wcs(made: Made) -> None:
    with made.hdus("stack") as hdus:
        stack, header = hdus[1].data, hdus[1].header
    truth = made.truth
    x0, y0 = header["STACKX0"], header["STACKY0"]
    assert x0 % 2 == 0 and y0 % 2 == 0 and header["NCOMBINE"] == SPEC.frames - 1
    # The stack's WCS puts each star where the reference frame has it, moved to the stack's origin.
    ra, dec = truth.wcs(truth.science[0]).all_pix2world(truth.star_x, truth.star_y, 0)
    x, y = WCS(header).all_world2pix(ra, dec, 0)
    assert np.abs(x - (truth.star_x - x0)).max() < 1e-6 and np.abs(y - (truth.star_y - y0)).max() < 1e-6
    # Aperture sums of bright isolated stars recover their true flux within 15%, and all come out
    # ~9% low: the median of frames misaligned by up to a pixel (the even shifts that keep the
    # Bayer phase) cuts a 2.5 px PSF's core and wings, which a mean would not; the rest is the
    # background model's bias near stars and the neighbours' wings.
    rows, cols = stack.shape
    ratios = []
    for star in range(len(truth.star_x)):
        sx, sy = truth.star_x[star] - x0, truth.star_y[star] - y0
        others = np.hypot(truth.star_x - truth.star_x[star], truth.star_y - truth.star_y[star])
        if star in truth.curves or not (10 < sx < cols - 10 and 10 < sy < rows - 10) or np.sort(others)[1] < 12:
            continue
        if 1e4 < truth.star_flux[star] < 8e4:  # bright against the noise, not saturated
            ix, iy = int(round(sx)), int(round(sy))
            ratios.append(float(stack[iy - 6 : iy + 7, ix - 6 : ix + 7].sum()) / truth.star_flux[star])
    assert len(ratios) >= 4
    assert 0.85 < np.median(ratios) < 1.0 and min(ratios) > 0.8 and max(ratios) < 1.05, ratios
    sky = stack[np.abs(stack) < 5 * made.frames[0].sky_rms]
    assert abs(float(np.median(sky))) < 0.2 * made.frames[0].sky_rms
    with Image.open(io.BytesIO(made.products.files["stack_png"].data)) as png:
        assert png.format == "PNG" and png.size == (cols, rows)


def test_the_difference_image_highlights_the_variable_star(made: Made) -> None:
    with made.hdus("difference") as hdus:
        difference, header = hdus[1].data, hdus[1].header
    y, x = np.unravel_index(np.nanargmax(difference), difference.shape)
    assert np.hypot(x + header["STACKX0"] - VARIABLE.x, y + header["STACKY0"] - VARIABLE.y) < 3
    assert np.nanmedian(difference) < 2 * made.frames[0].sky_rms  # elsewhere, noise
    with Image.open(io.BytesIO(made.products.files["difference_png"].data)) as png:
        assert png.format == "PNG" and png.size == difference.shape[::-1]


def test_the_stamp_cube_keeps_every_star_centred_and_the_bayer_phase(made: Made) -> None:
    truth = made.truth
    with made.hdus("stamp_cube") as hdus:
        stamps = hdus["STAMPS"].data
        frames = Table(hdus["FRAMES"].data)
        stars = Table(hdus["STARS"].data)
        samples = Table(hdus["SAMPLES"].data)
        size = hdus[0].header["STAMPSZ"]
    usable = made.usable
    assert size == SETTINGS.stamp_size and stamps.dtype.kind == "f"
    assert stamps.shape == (len(stars), len(usable), size, size) and len(samples) == stamps.shape[0] * stamps.shape[1]
    assert list(frames["image_id"]) == [made.frames[f.index].image_id for f in usable]
    assert np.allclose(np.asarray(frames["airmass"]), [1.2 + 0.01 * f.index for f in usable])
    # every star the WCS puts inside every usable frame, and no other
    index = np.array([int(i.split("-")[1]) for i in np.asarray(stars["catalog_id"])])
    offsets = truth.offsets[[f.index for f in usable]]
    px, py = truth.star_x[:, None] + offsets[:, 0], truth.star_y[:, None] + offsets[:, 1]
    rows, cols = SPEC.field.shape
    inside = ((px >= 0) & (px <= cols - 1) & (py >= 0) & (py <= rows - 1)).all(axis=1)
    assert set(index) == set(np.flatnonzero(inside))
    x0 = np.asarray(samples["x0"]).reshape(stamps.shape[:2])
    y0 = np.asarray(samples["y0"]).reshape(stamps.shape[:2])
    assert (x0 % 2 == 0).all() and (y0 % 2 == 0).all()  # Bayer phase: every window starts on R
    centre = (size - 1) / 2
    assert np.abs(px[index] - x0 - centre).max() <= 1.0 + 1e-6
    assert np.abs(py[index] - y0 - centre).max() <= 1.0 + 1e-6
    # the pixels are the frame's own, and the variable star dims in its transit
    star = int(np.flatnonzero(index == next(iter(truth.curves)))[0])
    f = 3
    pixels = made.frames[usable[f].index].load_pixels()
    assert np.array_equal(stamps[star, f], pixels[y0[star, f] : y0[star, f] + size, x0[star, f] : x0[star, f] + size])
    flux = np.nansum(stamps[star], axis=(1, 2))
    curve = np.array(VARIABLE.curve)[[u.index for u in usable]]
    assert np.allclose(flux / np.median(flux[curve == 1.0]), curve, atol=0.05)
    sky = np.asarray(samples["sky"]).reshape(stamps.shape[:2])
    assert np.nanmedian(np.abs(sky)) < 3 * made.frames[0].sky_rms


def test_five_frames_are_not_enough(made: Made) -> None:
    products = op.make_products(made.truth.sequence_id, made.frames[:5], SETTINGS)
    assert products.status is ObservationStatus.NOT_ENOUGH_FRAMES
    assert products.reason.startswith("5 usable frames") and "at least 10 needed" in products.reason
    assert set(products.files) == {"quality_table", "quality_plot"}
    assert pq.read_table(io.BytesIO(products.files["quality_table"].data)).num_rows == 5


def test_thirty_pixels_of_drift_is_too_much() -> None:
    spec = obs.ObservationSpec(frames=12, drift_px_per_hour=(70.0, 0.0), seed=3)
    truth = obs.plan_observation(spec)
    products = op.make_products(truth.sequence_id, observation_frames(truth), SETTINGS)
    assert products.status is ObservationStatus.TOO_MUCH_DRIFT, products.reason
    true_drift = float(np.hypot(*truth.offsets.T).max())
    assert true_drift > 25 and products.drift_px == pytest.approx(true_drift, abs=0.01)
    assert f"{true_drift:.1f} px" in products.reason and "18 px" in products.reason
    assert set(products.files) == {"quality_table", "quality_plot"} and not products.excluded


def lazy_frames(truth: obs.ObservationTruth) -> list[op.ObservationFrame]:
    """Science frames whose pixels are rendered and background-subtracted only when the science
    loads them (20 full frames at once would be 1.4 GB), with no preview and no sky statistics."""

    def pixels(planned: obs.PlannedFrame) -> np.ndarray:
        data, header = obs.render_frame(truth, planned)
        model = bm.load_model(bm.to_fits(bm.estimate(data, header, BACKGROUND), BACKGROUND))
        return data.astype(np.float32) - model

    return [
        op.ObservationFrame(
            image_id=f"{truth.sequence_id}_{planned.index:03d}",
            time=planned.time,
            exposure=planned.exptime,
            airmass=None,
            camera_temp=None,
            wcs_header=truth.wcs(planned).to_header(relax=True),
            load_pixels=lambda planned=planned: pixels(planned),
            load_preview=lambda: None,
            load_sources=lambda: None,
        )
        for planned in truth.science
    ]


def test_twenty_full_frames_make_every_product_with_the_blurred_frame_excluded() -> None:
    """The observation as a unit takes it: 20 full 5208x3476 frames drifting for 50 minutes."""
    from panoptes_network.synthetic.frames import FULL_SHAPE
    from panoptes_network.synthetic.star_field import StarFieldSpec

    spec = obs.ObservationSpec(field=StarFieldSpec(shape=FULL_SHAPE), stars=2000, fwhm_by_frame={5: 5.0}, seed=4)
    truth = obs.plan_observation(spec)
    made = op.make_products(truth.sequence_id, lazy_frames(truth), SETTINGS)
    assert made.status is ObservationStatus.PROCESSED, made.reason
    assert (
        list(made.excluded) == [f"{truth.sequence_id}_005"]
        and "fwhm" in made.excluded[f"{truth.sequence_id}_005"].lower()
    )
    true_drift = max(np.hypot(*f.offset) for f in truth.science if f.index != 5)
    assert made.drift_px == pytest.approx(true_drift, abs=0.2), "the WCS offsets are the truth's, to a fifth of a pixel"
    with fits.open(io.BytesIO(made.files["stack"].data)) as hdus:
        rows, cols = hdus[1].data.shape
        assert FULL_SHAPE[0] - 10 <= rows <= FULL_SHAPE[0] and FULL_SHAPE[1] - 10 <= cols <= FULL_SHAPE[1]
        assert hdus[1].header["NCOMBINE"] == 19
    with fits.open(io.BytesIO(made.files["stamp_cube"].data)) as hdus:
        stars, frames, size, _ = hdus["STAMPS"].data.shape
        assert frames == 19 and size == SETTINGS.stamp_size and stars > 1000
    with av.open(io.BytesIO(made.files["timelapse"].data)) as video:
        assert sum(1 for _ in video.decode(video=0)) == 19
