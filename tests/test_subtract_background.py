"""subtract-background: the background's accuracy on synthetic and real frames, the file
contract the plate-solver relies on, and the step's records, messages and redeliveries."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clipped_stats

from panoptes_network.core.errors import BadInput
from panoptes_network.core.messages import ObjectRef, StepMessage
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.topology import load_topology
from panoptes_network.science import background_model as bm
from panoptes_network.science import fits_codec
from panoptes_network.science.source_detection import superpixel_rms
from panoptes_network.steps import subtract_background
from panoptes_network.synthetic import frames as synthetic
from step_harness import deliver as deliver_to
from step_harness import drain_messages, step_message
from step_harness import local as local_stand_ins

SETTINGS = bm.BackgroundSettings()
SPEC = synthetic.FrameSpec(shape=(1200, 1800), stars=400, seed=5)
RAW_NAME = "PAN000/SC5348/20261124T080000/20261124T080203.fits.fz"


@pytest.fixture(scope="module")
def synthetic_frame() -> tuple[np.ndarray, fits.Header, np.ndarray]:
    """A frame with a known smooth sky (gradient, vignette, channel offsets), noise and stars."""
    data, header = synthetic.make_frame(SPEC)
    return data, header, synthetic.bayer_sky(SPEC.shape) + synthetic.BLACK_LEVEL


@pytest.fixture(scope="module")
def synthetic_file(synthetic_frame) -> bytes:
    data, header, _ = synthetic_frame
    return bm.to_fits(bm.estimate(data, header, SETTINGS), SETTINGS)


def channels():
    """(name, slices of the full frame) for each RGGB channel."""
    for name, row, col in bm.channel_names("RGGB"):
        yield name, (slice(row, None, 2), slice(col, None, 2))


def test_load_model_is_full_resolution_with_the_black_level(synthetic_frame, synthetic_file) -> None:
    data, _, _ = synthetic_frame
    model, rms = bm.load_model(synthetic_file), bm.load_rms(synthetic_file)
    assert model.shape == rms.shape == data.shape
    assert model.dtype == rms.dtype == np.float32
    subtracted = data.astype(np.float32) - model
    assert abs(float(np.median(subtracted))) < 1.0  # sky removed, black level included in the model
    assert 5 < float(np.median(rms)) < 30


def test_subtracting_channel_by_channel_is_the_full_model_subtracted(synthetic_frame, synthetic_file) -> None:
    """What the plate-solver uses (no full-frame maps) against contract 1's full-resolution maps."""
    data, _, _ = synthetic_frame
    model, rms = bm.load_model(synthetic_file), bm.load_rms(synthetic_file)
    subtracted = bm.BackgroundFile(synthetic_file).subtract(data)
    assert np.array_equal(subtracted.frame, data.astype(np.float32) - model)  # the same float32 values
    assert np.allclose(subtracted.superpixel_rms, superpixel_rms(rms, data.shape), rtol=1e-6)
    assert subtracted.sky_rms == pytest.approx(float(np.median(rms)), rel=0.005)  # a sample of a smooth map
    assert subtracted.sky_level == pytest.approx(float(np.median(model)), abs=0.5)
    with pytest.raises(BadInput, match="differ in shape"):
        bm.BackgroundFile(synthetic_file).subtract(data[:-2])


def test_the_background_matches_the_known_sky_in_every_channel(synthetic_frame, synthetic_file) -> None:
    data, _, truth = synthetic_frame
    model, rms = bm.load_model(synthetic_file), bm.load_rms(synthetic_file)
    residuals = {}
    for name, where in channels():
        noise = float(np.median(rms[where]))
        expected_noise = np.sqrt(np.median(truth[where] - synthetic.BLACK_LEVEL) / synthetic.GAIN + 9.0)
        assert noise == pytest.approx(expected_noise, rel=0.1), name
        error = np.median(np.abs(model[where] - truth[where]))
        assert error < 0.1 * noise, f"{name}: median |model - truth| {error:.2f} ADU, noise {noise:.1f}"
        residuals[name] = float(np.median(data[where] - model[where])) / noise
    # no channel pattern: every channel's residual sky sits at zero, to a tenth of its noise
    assert max(abs(r) for r in residuals.values()) < 0.1, residuals


def test_the_stored_grid_reproduces_the_estimate_and_the_bytes_repeat(synthetic_frame, synthetic_file) -> None:
    data, header, _ = synthetic_frame
    background = bm.estimate(data, header, SETTINGS)
    model = bm.load_model(synthetic_file)
    for channel in background.channels:
        stored = model[channel.row :: 2, channel.col :: 2] - channel.black
        assert np.max(np.abs(stored - channel.model())) < 0.01 * np.median(channel.rms_grid)
    assert bm.to_fits(background, SETTINGS) == synthetic_file


def test_the_summary_samples_the_full_maps_within_a_thousandth_of_the_noise(synthetic_frame) -> None:
    """The recorded statistics come from every other row and column of the smooth maps."""
    data, header, _ = synthetic_frame
    background = bm.estimate(data, header, SETTINGS)
    recorded = bm.summary(background)["channels"]
    for channel in background.channels:
        model, rms = channel.model(), channel.rms()
        noise = float(np.median(rms))
        full = dict(zip(bm.PERCENTILES, np.percentile(model, bm.PERCENTILES)))
        stats = recorded[channel.name]
        assert stats["median"] == pytest.approx(float(np.median(model)), abs=0.001 * noise), channel.name
        assert stats["rms"] == pytest.approx(noise, abs=0.001 * noise), channel.name
        for p, value in full.items():
            assert stats["percentiles"][f"p{p}"] == pytest.approx(value, abs=0.001 * noise), (channel.name, p)


def test_the_file_is_documented_in_its_header(synthetic_file) -> None:
    hdus = fits_codec.open_fits(synthetic_file, "background")
    names = [hdu.name for hdu in hdus[1:]]
    assert names == ["BKG_R", "BKG_G1", "BKG_G2", "BKG_B", "RMS_R", "RMS_G1", "RMS_G2", "RMS_B"]
    header = hdus[0].header
    assert header["MESH"] == 42 and header["MESHFULL"] == 84 and header["BKGFILT"] == 3
    assert header["BLACKLVL"] == 2048 and header["BLACKSRC"] == "setting"
    assert header["SWVERSN"] and header["METHOD"] and header["STORAGE"]


def test_real_frame_channels_agree_with_their_sigma_clipped_median(test_data: Path) -> None:
    hdu = fits.open(test_data / "panoptes" / "unsolved.fits")[0]
    background = bm.estimate(hdu.data, hdu.header, SETTINGS)
    stats = bm.summary(background)
    for channel in background.channels:
        pixels = hdu.data[channel.row :: 2, channel.col :: 2].astype(np.float64) - channel.black
        _, clipped_median, _ = sigma_clipped_stats(pixels, sigma=SETTINGS.sigma)
        assert abs(stats["channels"][channel.name]["median"] - clipped_median) <= 1.0, channel.name
    assert stats["warnings"] == []


@pytest.mark.parametrize("shape", [(200, 200), (201, 303), (33, 47)])
def test_small_and_odd_frames_shrink_the_mesh_and_never_crash(shape: tuple[int, int]) -> None:
    data, header = synthetic.make_frame(synthetic.FrameSpec(shape=shape, stars=5, seed=2))
    background = bm.estimate(data, header, SETTINGS)
    assert background.mesh < SETTINGS.mesh
    assert "mesh shrunk" in background.warnings[0]
    model = bm.load_model(bm.to_fits(background, SETTINGS))
    assert model.shape == shape and np.all(np.isfinite(model))


def test_header_levels_are_used_when_present() -> None:
    header = fits.Header({"BLACKLVL": "2040 2050 2050 2060", "SATURATE": 15000, "BAYERPAT": "GRBG"})
    levels = bm.camera_levels(header, bm.bayer_pattern(header, SETTINGS), SETTINGS)
    assert levels.black == {"G1": 2040.0, "R": 2050.0, "B": 2050.0, "G2": 2060.0}
    assert levels.black_source == "header BLACKLVL" and levels.white_source == "header SATURATE"
    assert bm.camera_levels(fits.Header(), "RGGB", SETTINGS).black == dict.fromkeys(["R", "G1", "G2", "B"], 2048.0)


# --- the step -------------------------------------------------------------------------------

SERVICE = load_topology().service(subtract_background.NAME)


@pytest.fixture
def local(tmp_path: Path):
    return local_stand_ins(tmp_path)


def put_raw(context, data: np.ndarray, header: fits.Header | None = None) -> StepMessage:
    """A raw .fits.fz in the raw bucket and the message record-image would send about it."""
    ref = context.storage.write_new(context.settings.bucket("raw"), RAW_NAME, fits_codec.compressed_file(data, header))
    return StepMessage(ref, "PAN000_SC5348_20261124T080203", "PAN000_SC5348_20261124T080000", {"file_kind": "fits.fz"})


def deliver(context, message: StepMessage, message_id: str = "m-1"):
    return deliver_to(context, SERVICE.name, message, message_id)


@pytest.fixture(scope="module")
def small_frame() -> tuple[np.ndarray, fits.Header]:
    return synthetic.make_frame(synthetic.FrameSpec(shape=(300, 420), stars=30, seed=3))


def test_the_step_stores_records_and_publishes_to_plate_solve(local, small_frame) -> None:
    context, queue = local
    drain_messages(queue)
    message = put_raw(context, *small_frame)
    handled = deliver(context, message)
    assert handled.outcome is Outcome.DONE, handled.reason
    [queued] = [q for q in drain_messages(queue) if q.topic == "plate-solve"]
    sent = step_message(queued)
    assert sent.ref == message.ref and sent.image_id == message.image_id and sent.sequence_id == message.sequence_id
    background = sent.extra["background"]
    assert background["bucket"] == "panoptes-backgrounds"
    assert background["name"] == "PAN000/SC5348/20261124T080000/20261124T080203-background.fits.fz"
    stored = context.storage.read(ObjectRef(background["bucket"], background["name"], background["generation"]))
    assert bm.load_model(stored).shape == small_frame[0].shape
    image = context.metadata.get("images", message.image_id)
    assert image["status"] == "background_subtracted"
    stats = image["background"]
    assert set(stats["channels"]) == {"R", "G1", "G2", "B"}
    assert set(stats["channels"]["G1"]["percentiles"]) == {"p5", "p25", "p50", "p75", "p95"}
    assert stats["black_level"]["R"] == 2048 and stats["mesh_px"] < 42 and stats["warnings"]
    step = image["steps"]["subtract-background"]
    assert step["state"] == "done" and step["outputs"]["background"]["generation"] == background["generation"]
    assert step["published"]["plate-solve"] == queued.message_id


def test_a_redelivery_changes_nothing(local, small_frame) -> None:
    context, queue = local
    message = put_raw(context, *small_frame)
    assert deliver(context, message, "m-1").outcome is Outcome.DONE
    drain_messages(queue)
    assert deliver(context, message, "m-2").outcome is Outcome.ALREADY_DONE
    assert drain_messages(queue) == []
    assert len(list(context.storage.list("panoptes-backgrounds"))) == 1


def test_concurrent_deliveries_write_one_file(local, small_frame) -> None:
    context, queue = local
    message = put_raw(context, *small_frame)
    outcomes = []
    threads = [
        threading.Thread(target=lambda i=i: outcomes.append(deliver(context, message, f"m-{i}").outcome))
        for i in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.value for o in outcomes) in (["already_done", "done"], ["done", "done"], ["done", "transient"])
    [stored] = list(context.storage.list("panoptes-backgrounds"))
    sent = [q for q in drain_messages(queue) if q.topic == "plate-solve"]
    assert sent and all(q.data == sent[0].data for q in sent)  # at least once, always the same file
    assert f'"generation": {stored.ref.generation}' in sent[0].data.decode()
    assert deliver(context, message, "m-3").outcome is Outcome.ALREADY_DONE


def test_a_different_existing_file_is_a_recorded_conflict(local, small_frame) -> None:
    context, queue = local
    message = put_raw(context, *small_frame)
    target = subtract_background.background_name(RAW_NAME)
    context.storage.write_new("panoptes-backgrounds", target, b"SIMPLE  = something else")
    drain_messages(queue)
    handled = deliver(context, message)
    assert handled.outcome is Outcome.CONFLICT and "conflict" in handled.reason
    assert [q for q in drain_messages(queue) if q.topic == "plate-solve"] == []
    step = context.metadata.get("images", message.image_id)["steps"]["subtract-background"]
    assert step["state"] == "conflict" and target in step["conflict"]
    assert step["outputs"]["background"]["state"] == "conflict"
    assert context.storage.read(context.storage.stat("panoptes-backgrounds", target).ref) == b"SIMPLE  = something else"


def test_a_frame_with_no_sky_is_a_recorded_rejection(local) -> None:
    context, queue = local
    saturated = np.full((200, 300), synthetic.BLACK_LEVEL + synthetic.SATURATION, dtype=np.uint16)
    message = put_raw(context, saturated, synthetic.header_for(synthetic.FrameSpec()))
    handled = deliver(context, message)
    assert handled.outcome is Outcome.REJECTED and "no sky" in handled.reason
    image = context.metadata.get("images", message.image_id)
    assert image["status"] == "rejected" and image["steps"]["subtract-background"]["state"] == "rejected"
    assert list(context.storage.list("panoptes-backgrounds")) == []


def test_the_tiny_real_crop_goes_through_with_a_warning(local, test_data: Path) -> None:
    context, queue = local
    hdu = fits.open(test_data / "panoptes" / "tiny.fits")[0]
    message = put_raw(context, hdu.data, hdu.header)
    assert deliver(context, message).outcome is Outcome.DONE
    image = context.metadata.get("images", message.image_id)
    assert "mesh shrunk" in image["steps"]["subtract-background"]["warnings"][0]
    assert 150 < image["background"]["channels"]["R"]["median"] < 220


def test_nans_and_saturated_patches_are_masked_not_modelled(synthetic_frame) -> None:
    data, header, truth = synthetic_frame
    frame = data.astype(np.float32)
    frame[100:300, 200:500] = np.nan
    frame[600:700, 900:1000] = synthetic.BLACK_LEVEL + synthetic.SATURATION
    background = bm.estimate(frame, header, SETTINGS)
    model = bm.load_model(bm.to_fits(background, SETTINGS))
    assert np.all(np.isfinite(model))
    rms = bm.load_rms(bm.to_fits(background, SETTINGS))
    for name, where in channels():
        hole = (slice(50, 150), slice(100, 250))  # the NaN patch on the channel grid: filled from around it
        error = np.median(np.abs((model - truth)[where][hole]))
        assert error < 0.25 * np.median(rms[where]), name
    assert all(c.masked_fraction > 0.03 for c in background.channels)  # 200x300 + 100x100 of 1200x1800


@pytest.mark.parametrize("dtype", [np.uint16, np.dtype(">i2")])
def test_integer_frames_give_the_float_estimate_exactly(synthetic_frame, dtype) -> None:
    """Camera raws are sorted as integers (a radix sort), anything else as float32: the two ways
    must agree to the bit, saturated patches and partial edge meshes included."""
    data, header, _ = synthetic_frame
    frame = data.copy()
    frame[600:700, 900:1000] = synthetic.BLACK_LEVEL + synthetic.SATURATION
    as_integers = bm.estimate(frame[:-5, :-7].astype(dtype), header, SETTINGS)
    as_floats = bm.estimate(frame[:-5, :-7].astype(np.float32), header, SETTINGS)
    for integer, floating in zip(as_integers.channels, as_floats.channels, strict=True):
        assert np.array_equal(integer.model_grid, floating.model_grid), integer.name
        assert np.array_equal(integer.rms_grid, floating.rms_grid), integer.name
        assert integer.masked_fraction == floating.masked_fraction > 0
    assert bm.summary(as_integers) == bm.summary(as_floats)


def test_a_frame_too_small_for_any_mesh_is_bad_input() -> None:
    with pytest.raises(BadInput, match="too small"):
        bm.estimate(np.full((10, 400), 2300, dtype=np.uint16), fits.Header(), SETTINGS)
