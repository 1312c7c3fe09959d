"""Observations: when one is ready (end marker, or quiet and every frame final), the sweep that
publishes it once, and process-observation on prepared solved frames (SQLite records, folder
buckets): products under the sequence's folder, a redelivery does nothing, a late frame leads
to one re-processing that replaces the products, science outcomes and errors recorded."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from panoptes_network.core import records
from panoptes_network.core.context import Context
from panoptes_network.core.errors import BadInput, MalformedRequest, TransientError
from panoptes_network.core.messages import (
    ObjectRef,
    ObservationMessage,
    PushMessage,
    parse_observation_message,
    storage_notification,
)
from panoptes_network.core.names import END_MARKER, end_marker_sequence, sequence_folder
from panoptes_network.core.observations import (
    already_done,
    frame_summary,
    is_gap,
    late_token,
    pending_after,
    readiness,
    recorded_products,
    retired,
)
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.status import ObservationStatus
from panoptes_network.drivers.embedded import EmbeddedRunner
from panoptes_network.science import fits_codec
from panoptes_network.science.lightcurve_products import LIGHTCURVE_FILES
from panoptes_network.science.observation_products import PRODUCT_FILES
from panoptes_network.science.source_detection import detect_sources
from panoptes_network.science.sources_table import sources_parquet
from panoptes_network.synthetic.star_field import draw_stars
from step_harness import deliver, drain_messages, local

SEQ = "PAN001_14d3bd_20181011T134202"
FOLDER = "PAN001/14d3bd/20181011T134202"
PROCESSED = "panoptes-processed-images"
STEP, LIGHTCURVES = "process-observation", "make-lightcurves"
RAW = "panoptes-raw-images"
NOW = dt.datetime(2018, 10, 11, 16, 0, tzinfo=dt.UTC)
QUIET = dt.timedelta(minutes=30)
SHAPE = (96, 160)
STARS = np.random.default_rng(7).uniform((12.0, 12.0), (110.0, 84.0), (30, 2))  # (x, y) in frame 0


def image(status: str, received: dt.datetime = NOW - dt.timedelta(hours=1), **fields: Any) -> dict[str, Any]:
    return {"sequence_id": SEQ, "status": status, "received": received, **fields}


# --- readiness, pure ---------------------------------------------------------------------------


def test_an_observation_with_frames_in_the_chain_is_still_receiving() -> None:
    images = [("a", image("solved")), ("b", image("background_subtracted"))]
    state = readiness({"pending": True}, images, NOW, QUIET)
    assert state.status is ObservationStatus.RECEIVING and not state.publish
    assert "1 of 2 frames still in the chain" in state.reason


def test_ready_only_after_the_quiet_period_unless_the_end_marker_came() -> None:
    recent = [("a", image("solved", NOW - dt.timedelta(minutes=29))), ("b", image("rejected"))]
    assert not readiness({"pending": True}, recent, NOW, QUIET).publish
    with_marker = readiness({"pending": True, "end_marker": "raw/x#1"}, recent, NOW, QUIET)
    assert with_marker.publish and with_marker.status is ObservationStatus.READY and with_marker.rerun is None
    quiet = readiness({"pending": True}, recent, NOW + dt.timedelta(minutes=1), QUIET)
    assert quiet.publish and "quiet period" in quiet.reason


def test_a_late_frame_after_processing_is_published_with_one_token_per_arrival() -> None:
    arrival = NOW - dt.timedelta(hours=1)
    processed = {"pending": True, "status": "processed", "last_arrival": arrival}
    first = readiness(processed, [("a", image("solved", arrival))], NOW, QUIET)
    again = readiness(processed, [("a", image("solved", arrival))], NOW + QUIET, QUIET)
    assert first.publish and first.rerun == again.rerun == late_token(arrival)
    later = readiness(processed, [("a", image("solved", arrival + dt.timedelta(seconds=1)))], NOW, QUIET)
    assert later.rerun != first.rerun


def test_done_means_processed_nothing_pending_and_the_rerun_recorded() -> None:
    done = {"status": "too_much_drift", "pending": False, "processing": {"rerun": "r1"}}
    assert already_done(done, None) and already_done(done, "r1")
    assert not already_done(done, "r2")
    assert not already_done({**done, "pending": True}, None)
    assert not already_done({"status": "ready", "pending": False}, None)
    assert not already_done(None, None)


def test_a_frame_arriving_while_processing_keeps_the_observation_pending() -> None:
    seen = NOW
    assert not pending_after({"last_arrival": seen}, seen)
    assert pending_after({"last_arrival": seen + dt.timedelta(seconds=1)}, seen)


def test_frame_summary_counts_by_status_and_type_and_spans_the_frames() -> None:
    t0 = NOW - dt.timedelta(hours=2)
    images = [
        ("a", image("solved", time=t0)),
        ("b", image("solved", time=t0 + dt.timedelta(minutes=5), frame_type="dark")),
        ("c", image("unsolved", time=t0 + dt.timedelta(minutes=2))),
    ]
    summary = frame_summary(images)
    assert summary["frames"] == {
        "count": 3,
        "by_status": {"solved": 2, "unsolved": 1},
        "by_type": {"science": 2, "dark": 1},
    }
    assert (summary["first_frame_time"], summary["last_frame_time"]) == (t0, t0 + dt.timedelta(minutes=5))


def test_retired_are_the_recorded_products_under_names_the_latest_run_did_not_write() -> None:
    recorded = {
        "processing": {"product_objects": [f"{PROCESSED}/{FOLDER}/stack.png#1", f"{PROCESSED}/{FOLDER}/quality.png#1"]},
        "retired_products": [f"{PROCESSED}/{FOLDER}/timelapse.mp4#3"],  # left by a crash
    }
    made = [ObjectRef(PROCESSED, f"{FOLDER}/quality.png", 1)]  # the same content: reused, not retired
    assert retired(recorded_products(recorded), made) == [
        f"{PROCESSED}/{FOLDER}/stack.png#1",
        f"{PROCESSED}/{FOLDER}/timelapse.mp4#3",
    ]
    assert retired(recorded_products({"processing": {}}), made) == []


def test_a_gap_is_an_observation_ready_long_ago_and_never_processed() -> None:
    old = [("a", image("solved", NOW - dt.timedelta(hours=3)))]
    assert is_gap({"pending": True}, old, NOW, QUIET)
    assert is_gap({"pending": False, "status": "processed"}, old, NOW, QUIET) is None
    assert is_gap({"pending": True}, [("a", image("solved", NOW - dt.timedelta(minutes=40)))], NOW, QUIET) is None


def test_names_of_the_sequence_folder_and_the_end_marker() -> None:
    assert sequence_folder(SEQ) == FOLDER
    with pytest.raises(BadInput, match="sequence id"):
        sequence_folder("PAN001/14d3bd")
    assert end_marker_sequence(f"{FOLDER}/{END_MARKER}") == SEQ
    assert end_marker_sequence(f"PAN001/Tess_Sec21/14d3bd/20181011T134202/{END_MARKER}") == SEQ
    assert end_marker_sequence(f"{FOLDER}/20181011T134333.fits.fz") is None
    assert end_marker_sequence(f"PAN001/14d3bd/notatime/{END_MARKER}") is None


def test_the_observation_message_round_trips_and_rejects_a_bad_sequence_id() -> None:
    message = ObservationMessage(SEQ, "end marker", "r-1")
    data, attributes = message.encode()
    assert parse_observation_message(PushMessage("1", data, attributes)) == message
    bad = json.dumps({"sequence_id": "../etc", "reason": "x"}).encode()
    with pytest.raises(MalformedRequest, match="sequence_id"):
        parse_observation_message(PushMessage("1", bad, attributes))


# --- the steps, on prepared records ------------------------------------------------------------


def processed_frame(index: int, drift_px: float) -> bytes:
    """A background-subtracted frame of 30 stars with a TAN WCS, both shifted ``drift_px`` per frame in x."""
    rng = np.random.default_rng(index)
    pixels = rng.normal(0, 5, SHAPE).astype(np.float32)
    draw_stars(pixels, STARS[:, 0] + index * drift_px, STARS[:, 1], np.full(len(STARS), 4000.0), 2.5)
    header = fits.Header()
    header.update({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": 48.0 + index * drift_px, "CRPIX2": 32.0,
                   "CRVAL1": 300.0, "CRVAL2": 44.0, "CDELT1": -0.003, "CDELT2": 0.003,
                   "FIELD": "KIC 8462852", "RA-MNT": 301.5, "DEC-MNT": 44.5, "EXPTIME": 120.0})  # fmt: skip
    return fits_codec.compressed_file(pixels, header)


@dataclasses.dataclass
class Night:
    """A sequence's solved frames, stored and recorded as the chain leaves them."""

    context: Context
    frames: int = 0

    def add_frame(self, received: dt.datetime, drift_px: float = 0.5, status: str = "solved") -> str:
        index = self.frames
        self.frames += 1
        taken = dt.datetime(2018, 10, 11, 13, 43, 33, tzinfo=dt.UTC) + dt.timedelta(minutes=2 * index)
        image_id = f"PAN001_14d3bd_{taken:%Y%m%dT%H%M%S}"
        name = f"{FOLDER}/{taken:%Y%m%dT%H%M%S}.fits.fz"
        bucket = self.context.settings.bucket("processed")
        ref = self.context.storage.write_new(bucket, name, processed_frame(index, drift_px), "application/fits")
        outputs = {"processed": {"name": f"{bucket}/{name}", "generation": ref.generation, "state": "written"}}
        records.create_image(
            self.context.metadata,
            image_id,
            {**image(status, received, time=taken, exptime=120.0, image_id=image_id),
             "steps": {"plate-solver": {"state": "done", "outputs": outputs}}},
        )  # fmt: skip
        observation = records.observation(self.context.metadata, SEQ) or {}
        latest = max(received, observation.get("last_arrival") or received)
        records.merge_observation(self.context.metadata, SEQ, {"last_arrival": latest, "pending": True})
        return image_id


@pytest.fixture
def night(tmp_path: Path) -> Night:
    context, _ = local(tmp_path)
    return Night(context)


def products(context: Context) -> dict[str, int]:
    """Every object under the sequence's folder in the processed bucket that is not a frame: name -> generation."""
    return {
        info.ref.name: info.ref.generation
        for info in context.storage.list(context.settings.bucket("processed"), FOLDER + "/")
        if not info.ref.name.endswith("fits.fz") or "/stack" in info.ref.name or "/difference" in info.ref.name
    }


def sweep_at(context: Context, when: dt.datetime) -> list[ObservationMessage]:
    """Run the sweep step as Cloud Scheduler would trigger it; the messages it published."""
    from panoptes_network.steps import sweep_observations

    published: list[ObservationMessage] = []
    sweep_observations.sweep(context, when, published.append)
    return published


def test_the_sweep_publishes_a_quiet_observation_once_it_is_quiet(night: Night) -> None:
    for _ in range(3):
        night.add_frame(NOW - dt.timedelta(minutes=10))
    assert sweep_at(night.context, NOW) == []
    observation = records.observation(night.context.metadata, SEQ) or {}
    assert observation["status"] == "receiving" and observation["frames"]["count"] == 3
    [message] = sweep_at(night.context, NOW + QUIET)
    assert message.sequence_id == SEQ and message.rerun is None
    assert (records.observation(night.context.metadata, SEQ) or {})["status"] == "ready"


def test_the_sweep_service_publishes_through_its_topic(tmp_path: Path) -> None:
    context, queue = local(tmp_path)
    Night(context).add_frame(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    handled = deliver(context, "sweep-observations", PushMessage("tick-1", b"{}", {}))
    assert handled.outcome is Outcome.DONE, handled
    [queued] = drain_messages(queue)
    assert queued.topic == "process-observation"
    assert json.loads(queued.data)["sequence_id"] == SEQ


def process(context: Context, message: ObservationMessage, message_id: str = "m-1") -> Any:
    data, attributes = message.encode()
    return deliver(context, "process-observation", PushMessage(message_id, data, attributes))


def test_processing_writes_the_products_once_and_a_redelivery_is_done(night: Night) -> None:
    for _ in range(12):
        night.add_frame(NOW - dt.timedelta(hours=1))
    handled = process(night.context, ObservationMessage(SEQ, "quiet"))
    assert handled.outcome is Outcome.DONE, handled
    observation = records.observation(night.context.metadata, SEQ) or {}
    assert observation["status"] == "processed" and observation["pending"] is False
    assert observation["products"]["stack"] == f"{PROCESSED}/{FOLDER}/stack.fits.fz"
    assert observation["field"] == {"name": "KIC 8462852", "ra": 301.5, "dec": 44.5, "source": "mount"}
    assert observation["frames"]["by_status"] == {"solved": 12} and observation["drift_px"] == pytest.approx(
        5.5, abs=0.01
    )
    assert observation["pipeline_version"]
    first = products(night.context)
    assert set(first) == {f"{FOLDER}/{suffix}" for suffix, _ in PRODUCT_FILES.values()}
    again = process(night.context, ObservationMessage(SEQ, "quiet"), "m-2")
    assert again.outcome is Outcome.ALREADY_DONE
    assert products(night.context) == first


def test_a_late_frame_leads_to_one_reprocessing_that_replaces_the_products(night: Night) -> None:
    for _ in range(12):
        night.add_frame(NOW - dt.timedelta(hours=1))
    assert process(night.context, ObservationMessage(SEQ, "quiet")).outcome is Outcome.DONE
    first = products(night.context)
    night.add_frame(NOW - dt.timedelta(minutes=40))
    [message] = sweep_at(night.context, NOW)
    assert message.rerun is not None and message.rerun.startswith("late-frame-")
    outcomes = [process(night.context, message, f"m-{i}").outcome for i in range(3)]
    assert outcomes == [Outcome.DONE, Outcome.ALREADY_DONE, Outcome.ALREADY_DONE]
    second = products(night.context)
    assert set(second) == set(first), "the same names: replaced, never duplicated"
    assert all(second[name] != first[name] for name in first), "each product replaced"
    observation = records.observation(night.context.metadata, SEQ) or {}
    assert observation["frames"]["count"] == 13 and observation["processing"]["rerun"] == message.rerun
    assert sweep_at(night.context, NOW + QUIET) == []


def lightcurves(context: Context, message: ObservationMessage, message_id: str = "l-1") -> Any:
    data, attributes = message.encode()
    return deliver(context, "make-lightcurves", PushMessage(message_id, data, attributes))


def test_a_processed_observation_goes_on_to_make_lightcurves_once_and_again_after_a_late_frame(
    tmp_path: Path,
) -> None:
    context, queue = local(tmp_path)
    night = Night(context)
    for _ in range(12):
        night.add_frame(NOW - dt.timedelta(hours=1))
    early = lightcurves(context, ObservationMessage(SEQ, "processed"))
    assert early.outcome is Outcome.ALREADY_DONE, "not processed yet: no lightcurves to make or retire"
    assert process(context, ObservationMessage(SEQ, "quiet")).outcome is Outcome.DONE
    [published] = [m for m in drain_messages(queue) if m.topic == "make-lightcurves"]
    message = parse_observation_message(PushMessage("p-1", published.data, dict(published.attributes)))
    assert message == ObservationMessage(SEQ, "processed", None)
    assert lightcurves(context, message).outcome is Outcome.DONE
    made = (records.observation(context.metadata, SEQ) or {})["lightcurves"]
    assert set(made["products"]) == set(LIGHTCURVE_FILES)
    assert made["frames"] == 12 and made["stars"] > 0 and made["candidates"] == []
    assert made["target"]["star_id"] and made["comparison"]["usable"] > 0
    first = {
        name: generation
        for name, generation in products(context).items()
        if "lightcurve" in name or "comparisons" in name
    }
    assert len(first) == 3
    assert lightcurves(context, message, "l-2").outcome is Outcome.ALREADY_DONE, "a redelivery"
    night.add_frame(NOW - dt.timedelta(minutes=40))
    [late] = sweep_at(context, NOW)
    assert process(context, late).outcome is Outcome.DONE
    [again] = [m for m in drain_messages(queue) if m.topic == "make-lightcurves"]
    rerun = parse_observation_message(PushMessage("p-2", again.data, dict(again.attributes)))
    assert rerun.rerun == late.rerun
    assert [lightcurves(context, rerun, f"l-{i}").outcome for i in range(3, 5)] == [Outcome.DONE, Outcome.ALREADY_DONE]
    second = {name: generation for name, generation in products(context).items() if name in first}
    assert set(second) == set(first), "the same names: replaced, never duplicated"
    table = f"{FOLDER}/lightcurves.parquet"
    assert second[table] != first[table], "13 frames now: the lightcurves replaced"
    assert (records.observation(context.metadata, SEQ) or {})["lightcurves"]["frames"] == 13

    for image_id, _ in records.sequence_images(context.metadata, SEQ)[:8]:  # re-solved, they no longer solve
        records.merge_image(context.metadata, image_id, {"status": "unsolved"})
    assert process(context, ObservationMessage(SEQ, "reprocess", "r-1"), "m-9").outcome is Outcome.DONE
    [fewer] = [m for m in drain_messages(queue) if m.topic == "make-lightcurves"]
    retiring = parse_observation_message(PushMessage("p-3", fewer.data, dict(fewer.attributes)))
    assert retiring == ObservationMessage(SEQ, "not_enough_frames", "r-1")
    assert lightcurves(context, retiring, "l-5").outcome is Outcome.DONE
    assert not [name for name in products(context) if name in first], "the earlier lightcurves are deleted"
    made = (records.observation(context.metadata, SEQ) or {})["lightcurves"]
    assert made == {"status": "not_enough_frames", "reason": "no lightcurves: the observation is not_enough_frames"}
    assert lightcurves(context, retiring, "l-6").outcome is Outcome.ALREADY_DONE


def test_a_lightcurves_failure_is_recorded_on_its_field_and_the_observation_stays_processed(night: Night) -> None:
    for _ in range(12):
        night.add_frame(NOW - dt.timedelta(hours=1))
    assert process(night.context, ObservationMessage(SEQ, "quiet")).outcome is Outcome.DONE
    cube = night.context.storage.stat(PROCESSED, f"{FOLDER}/stamps.fits")
    assert cube is not None
    night.context.storage.replace(cube.ref, b"SIMPLE  = not a FITS file", "application/fits")
    failed = lightcurves(night.context, ObservationMessage(SEQ, "processed"))
    assert failed.outcome is Outcome.ERROR, failed
    observation = records.observation(night.context.metadata, SEQ) or {}
    assert observation["status"] == "processed", "the observation's own outcome is untouched"
    made = observation["lightcurves"]
    assert made["status"] == "error" and made["error"]["step"] == "make-lightcurves" and made["reason"]
    assert not [name for name in products(night.context) if "lightcurve" in name], "nothing half-written"


@pytest.fixture(params=["folder", pytest.param("gcs", marks=pytest.mark.stack)])
def night_on(request: pytest.FixtureRequest, tmp_path: Path) -> Night:
    """A night on folder buckets, or with its processed bucket on fake-gcs-server."""
    context, _ = local(tmp_path)
    if request.param == "gcs":
        from panoptes_network.adapters.gcs_storage import GcsStorage

        client, bucket = request.getfixturevalue("gcs_bucket")
        settings = dataclasses.replace(context.settings, buckets={**context.settings.buckets, "processed": bucket})
        context = dataclasses.replace(context, settings=settings, storage=GcsStorage(client))
    return Night(context)


class DeleteFailsOnce:
    """Storage whose ``delete`` fails as an unreachable backend does, once, after ``succeed`` deletes."""

    def __init__(self, storage: Any, succeed: int) -> None:
        self.storage, self.succeed = storage, succeed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)

    def delete(self, ref: Any) -> None:
        if self.succeed == 0:
            self.succeed = -1
            raise TransientError("storage unavailable")
        self.succeed -= 1
        self.storage.delete(ref)


def test_a_rerun_that_makes_fewer_products_deletes_the_earlier_ones_it_did_not_make(night_on: Night) -> None:
    """processed, then re-processed into not_enough_frames: the stack, timelapse and the rest of
    the first run are deleted (at the generation it recorded), even when the deletes fail half-way
    and the message comes again; frames, and an object someone else wrote since, are left alone."""
    context = night_on.context
    bucket = context.settings.bucket("processed")
    frames = [night_on.add_frame(NOW - dt.timedelta(hours=1)) for _ in range(12)]
    assert process(context, ObservationMessage(SEQ, "quiet")).outcome is Outcome.DONE
    first = products(context)
    assert len(first) == len(PRODUCT_FILES)
    theirs = context.storage.replace(context.storage.stat(bucket, f"{FOLDER}/stack.png").ref, b"someone else's")
    for image_id in frames[:8]:  # re-solved, they no longer solve: 4 usable frames
        records.merge_image(context.metadata, image_id, {"status": "unsolved"})
    rerun = ObservationMessage(SEQ, "reprocess", "r-1")
    crashing = dataclasses.replace(context, storage=DeleteFailsOnce(context.storage, succeed=2))
    assert process(crashing, rerun, "m-2").outcome is Outcome.TRANSIENT, "the third delete failed"
    observation = records.observation(context.metadata, SEQ) or {}
    assert observation["status"] == "not_enough_frames" and len(observation["retired_products"]) == 6
    assert len(products(context)) == len(PRODUCT_FILES) - 2, "two deleted before the failure"

    assert process(context, rerun, "m-2").outcome is Outcome.ALREADY_DONE  # Pub/Sub delivers it again
    quality = {f"{FOLDER}/quality.parquet", f"{FOLDER}/quality.png"}
    now_there = products(context)
    assert set(now_there) == {*quality, theirs.name} and now_there[theirs.name] == theirs.generation
    assert all(now_there[name] != first[name] for name in quality), "the quality products replaced"
    observation = records.observation(context.metadata, SEQ) or {}
    assert set(observation["products"]) == {"quality_table", "quality_plot"} and observation["retired_products"] == []
    frame_names = {info.ref.name for info in context.storage.list(bucket, FOLDER + "/")} - set(products(context))
    assert len(frame_names) == 12, "the plate-solver's frames are not this step's to delete"
    assert process(context, rerun, "m-3").outcome is Outcome.ALREADY_DONE
    assert set(products(context)) == {*quality, theirs.name}


def test_too_few_frames_and_too_much_drift_are_science_outcomes(tmp_path: Path) -> None:
    few = Night(local(tmp_path / "few")[0])
    for _ in range(5):
        few.add_frame(NOW - dt.timedelta(hours=1))
    assert process(few.context, ObservationMessage(SEQ, "quiet")).outcome is Outcome.DONE
    observation = records.observation(few.context.metadata, SEQ) or {}
    assert observation["status"] == "not_enough_frames" and "5 usable frames" in observation["reason"]
    quality_only = {f"{FOLDER}/quality.parquet", f"{FOLDER}/quality.png"}  # so the operator sees why
    assert set(products(few.context)) == quality_only
    assert set(observation["products"]) == {"quality_table", "quality_plot"}
    drifting = Night(local(tmp_path / "drift")[0])
    for _ in range(12):
        drifting.add_frame(NOW - dt.timedelta(hours=1), drift_px=3.0)
    process(drifting.context, ObservationMessage(SEQ, "quiet"))
    observation = records.observation(drifting.context.metadata, SEQ) or {}
    assert observation["status"] == "too_much_drift" and observation["drift_px"] == pytest.approx(33.0, abs=0.01)


def test_frames_still_in_the_chain_make_it_wait_unless_forced(night: Night) -> None:
    for _ in range(11):
        night.add_frame(NOW - dt.timedelta(hours=1))
    night.add_frame(NOW - dt.timedelta(hours=1), status="background_subtracted")
    handled = process(night.context, ObservationMessage(SEQ, "end marker"))
    assert handled.outcome is Outcome.DONE and "not ready: 1 frames still in the chain" in handled.reason
    assert (records.observation(night.context.metadata, SEQ) or {}).get("status") is None
    forced = process(night.context, ObservationMessage(SEQ, "forced", "r-1"), "m-2")
    assert forced.outcome is Outcome.DONE
    observation = records.observation(night.context.metadata, SEQ) or {}
    assert observation["status"] == "processed" and observation["frames"]["by_status"] == {
        "solved": 11,
        "background_subtracted": 1,
    }


def test_a_vanished_frame_is_an_error_on_the_observation(night: Night) -> None:
    for _ in range(12):
        night.add_frame(NOW - dt.timedelta(hours=1))
    gone = next(iter(night.context.storage.list(PROCESSED, FOLDER + "/")))
    night.context.storage.delete(gone.ref)
    handled = process(night.context, ObservationMessage(SEQ, "quiet"))
    assert handled.outcome is Outcome.REJECTED
    observation = records.observation(night.context.metadata, SEQ) or {}
    assert observation["status"] == "error" and gone.ref.name in observation["reason"]
    assert observation["pending"] is True, "still pending: the next sweep tries again"


def test_the_end_marker_publishes_process_observation_at_once(tmp_path: Path) -> None:
    context, queue = local(tmp_path)
    ref = context.storage.write_new(RAW, f"{FOLDER}/{END_MARKER}", b"{}")
    drain_messages(queue)
    data, attributes = storage_notification(ref, 2)
    handled = deliver(context, "image-received", PushMessage("n-1", data, attributes))
    assert handled.outcome is Outcome.DONE, handled
    [queued] = drain_messages(queue)
    assert queued.topic == "process-observation"
    assert json.loads(queued.data) == {"sequence_id": SEQ, "reason": "end marker"}
    assert (records.observation(context.metadata, SEQ) or {})["end_marker"] == ref.identity


def test_a_routed_frame_marks_its_observation_pending(tmp_path: Path) -> None:
    context, queue = local(tmp_path)
    ref = context.storage.write_new(RAW, f"{FOLDER}/20181011T134333.fits.fz", b"SIMPLE  =")
    drain_messages(queue)
    data, attributes = storage_notification(ref, 9)
    assert deliver(context, "image-received", PushMessage("n-1", data, attributes)).outcome is Outcome.DONE
    observation = records.observation(context.metadata, SEQ) or {}
    assert observation["pending"] is True and isinstance(observation["last_arrival"], dt.datetime)


def test_embedded_finishing_reprocesses_a_changed_observation_with_a_token(tmp_path: Path) -> None:
    runner = EmbeddedRunner(tmp_path)
    night = Night(runner.context)
    for _ in range(12):
        night.add_frame(NOW - dt.timedelta(hours=1))
    first = runner.finish_observation(SEQ, "embedded run finished")
    assert [(h.step, h.outcome) for h in first] == [(STEP, Outcome.DONE), (LIGHTCURVES, Outcome.DONE)], first
    night.add_frame(NOW)
    second = runner.finish_observation(SEQ, "embedded run finished")
    assert [(h.step, h.outcome) for h in second] == [(STEP, Outcome.DONE), (LIGHTCURVES, Outcome.DONE)], second
    observation = records.observation(runner.metadata, SEQ) or {}
    assert observation["frames"]["count"] == 13 and observation["processing"]["rerun"] == late_token(NOW)


# --- operations and the command line -----------------------------------------------------------


def test_gaps_list_an_observation_ready_long_ago_and_never_processed(tmp_path: Path) -> None:
    from panoptes_network.operations.chain_gaps import find_gaps

    context, queue = local(tmp_path)
    night = Night(context)
    night.add_frame(NOW - dt.timedelta(hours=3))
    marker = context.storage.write_new(RAW, f"{FOLDER}/{END_MARKER}", b"{}")
    drain_messages(queue)
    records.merge_observation(context.metadata, SEQ, {"end_marker": marker.identity})
    [gap] = find_gaps(context.storage, context.metadata, RAW, QUIET, NOW)
    assert gap.identity == f"observations/{SEQ}" and "not processed" in gap.why
    frame = night.add_frame(NOW - dt.timedelta(minutes=5), status="recorded")
    gaps = find_gaps(context.storage, context.metadata, RAW, QUIET, NOW)
    assert [g.image_id for g in gaps] == [frame], "the frame in the chain is a gap; its receiving observation is not"


def test_the_observations_command_lists_shows_and_forces_one(tmp_path: Path, capsys) -> None:
    from panoptes_network.drivers.cli import main

    night = Night(EmbeddedRunner(tmp_path).context)
    for _ in range(10):
        night.add_frame(NOW - dt.timedelta(minutes=1))
    assert main(["observations", "list", "--data-dir", str(tmp_path)]) == 0
    assert SEQ in capsys.readouterr().out
    assert main(["observations", "process", SEQ, "--data-dir", str(tmp_path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "processed" and shown["processing"]["reason"] == "forced"
    assert main(["observations", "show", SEQ, "--data-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["products"]["stack"].endswith(f"{FOLDER}/stack.fits.fz")
    assert main(["observations", "show", "PAN001_14d3bd_20200101T000000", "--data-dir", str(tmp_path)]) == 1


def test_reprocess_an_observation_replaces_its_products_once(tmp_path: Path, capsys) -> None:
    from panoptes_network.drivers.cli import main

    runner = EmbeddedRunner(tmp_path)
    night = Night(runner.context)
    for _ in range(10):
        night.add_frame(NOW - dt.timedelta(hours=1))
    handled, lightcurves_made = runner.finish_observation(SEQ, "quiet")
    assert handled.outcome is Outcome.DONE and lightcurves_made.step == LIGHTCURVES
    before = products(runner.context)
    assert main(["reprocess", "--observation", SEQ, "--data-dir", str(tmp_path), "--json", "-q"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["step"], row["result"], row["status"]) == ("process-observation", "done", "processed")
    observation = records.observation(runner.metadata, SEQ) or {}
    assert observation["processing"]["rerun"].startswith("reprocess-")
    assert products(runner.context) == before, "the same content: the same objects, nothing duplicated"


# --- embedded, the whole chain -----------------------------------------------------------------


def test_process_runs_a_synthetic_observation_to_its_products(tmp_path: Path, capsys) -> None:
    """Small real-sky frames (they solve against the installed Tycho-2 index), one of them blurred
    to twice the FWHM, a pointing image and a dark: ``process`` solves the frames, then processes
    the observation once; the blurred frame is excluded with its reason, every product reads back."""
    import av
    import pyarrow.parquet as pq
    from PIL import Image

    from panoptes_network.drivers.cli import main
    from panoptes_network.synthetic import observation as synthetic

    blurred = 7
    spec = synthetic.ObservationSpec(frames=20, stars=None, pointing_images=1, darks=1)
    spec = dataclasses.replace(spec, fwhm_by_frame={blurred: 2 * spec.field.fwhm})
    truth = synthetic.write_observation(spec, tmp_path / "frames")
    sequence_id = truth.sequence_id
    data = tmp_path / "data"
    assert main(["process", str(tmp_path / "frames"), "--data-dir", str(data), "-j", "2", "-q"]) == 0
    runner = EmbeddedRunner(data)
    observation = records.observation(runner.metadata, sequence_id) or {}
    assert observation["status"] == "processed", observation.get("reason")
    assert observation["frames"]["by_type"] == {"science": 20, "pointing": 1, "dark": 1}
    assert observation["processing"]["frames_used"] == spec.frames - 1, "the pointing image, the dark, the blur out"
    excluded = {
        image_id: image["observation_excluded"]
        for image_id, image in records.sequence_images(runner.metadata, sequence_id)
        if image.get("observation_excluded")
    }
    [(excluded_id, why)] = excluded.items()
    assert excluded_id.endswith(f"{truth.science[blurred].time:%Y%m%dT%H%M%S}") and "fwhm" in why.lower(), why
    assert observation["pending"] is False and observation["field"]["name"] == spec.field_name
    files = {key: data / "buckets" / location for key, location in observation["products"].items()}
    assert set(files) == set(PRODUCT_FILES)
    assert pq.read_table(files["quality_table"]).num_rows == spec.frames
    for key in ("quality_plot", "stack_png", "difference_png"):
        assert Image.open(files[key]).format == "PNG"
    with av.open(str(files["timelapse"])) as video:
        assert video.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in video.decode(video=0)) == spec.frames - 1
    with fits.open(files["stack"]) as hdus:
        assert np.isfinite(hdus[1].data).all() and hdus[1].header["NCOMBINE"] == spec.frames - 1
        stack_shape = hdus[1].data.shape
    with fits.open(files["difference"]) as hdus:  # an RMS over the frames, on the stack's pixels and WCS
        rms = hdus[1].data[np.isfinite(hdus[1].data)]
        assert hdus[1].data.shape == stack_shape and hdus[1].header["NCOMBINE"] == spec.frames - 1
        assert rms.size > 0.9 * hdus[1].data.size and np.median(rms) > 0 and "CTYPE1" in hdus[1].header
    with fits.open(files["stamp_cube"]) as hdus:
        stars, frames, size, _ = hdus["STAMPS"].data.shape
        assert frames == spec.frames - 1 and len(hdus["FRAMES"].data) == frames and size >= 14
        assert stars == len(hdus["STARS"].data) > 10, "the field's catalog stars inside every usable frame"
    made = observation["lightcurves"]
    lightcurves = {key: data / "buckets" / location for key, location in made["products"].items()}
    assert set(lightcurves) == set(LIGHTCURVE_FILES)
    table = pq.read_table(lightcurves["lightcurves"]).to_pydict()
    assert len(set(table["star"])) == stars == made["stars"] and len(set(table["frame"])) == frames == made["frames"]
    assert set(table["channel"]) == {"R", "G", "B", "sum"} and len(table["star"]) == stars * frames * 4
    assert pq.read_table(lightcurves["comparisons"]).num_rows > 0
    assert Image.open(lightcurves["lightcurve_plot"]).format == "PNG"
    assert made["candidates"] == [], "no star varies in this night"
    assert made["target"]["star_id"] and made["precision"] and made["precision"][0]["ppm_frame"]["sum"] > 0
    again = runner.finish_observation(sequence_id, "embedded run finished")
    assert [h.outcome for h in again] == [Outcome.ALREADY_DONE]


def test_process_runs_a_realistic_night_through_make_lightcurves(tmp_path: Path) -> None:
    """Small real-sky frames with the night's realism (transparency, airmass in the headers, seeing
    2.5-4 px, colours, blends): the embedded chain solves them, processes the observation and makes
    its lightcurves, airmass from the headers, no candidate in a night without a signal."""
    import pyarrow.parquet as pq

    from panoptes_network.drivers.cli import main
    from panoptes_network.synthetic import observation as synthetic

    conditions = synthetic.Conditions(blended_pairs=5)
    spec = synthetic.ObservationSpec(frames=12, stars=None, conditions=conditions, seed=3)
    truth = synthetic.write_observation(spec, tmp_path / "frames")
    data = tmp_path / "data"
    assert main(["process", str(tmp_path / "frames"), "--data-dir", str(data), "-q"]) == 0
    observation = records.observation(EmbeddedRunner(data).metadata, truth.sequence_id) or {}
    assert observation["status"] == "processed", observation.get("reason")
    made = observation["lightcurves"]
    assert made.get("status") != "error", made
    assert made["frames"] == observation["processing"]["frames_used"] >= 10
    assert made["candidates"] == [] and made["comparison"]["usable"] >= 5 and made["precision"]
    with fits.open(data / "buckets" / observation["products"]["stamp_cube"]) as hdus:
        airmass = np.asarray(hdus["FRAMES"].data["airmass"])
    assert truth.night is not None and np.all(np.diff(airmass) < 0), (
        "the headers' airmass, falling towards the meridian"
    )
    table = pq.read_table(data / "buckets" / made["products"]["lightcurves"]).to_pydict()
    assert len(set(table["star"])) == made["stars"] > 10


def test_reprocessing_the_frames_of_a_processed_observation_processes_it_once_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """``reprocess --step plate-solver`` on the frames of a processed observation: each re-run
    frame makes the observation pending, and the embedded run then processes it once (as the
    sweep would), with a new token; its products are replaced under the same names."""
    from panoptes_network.drivers.cli import main
    from panoptes_network.synthetic import observation as synthetic

    monkeypatch.setenv("PANOPTES_MIN_FRAMES", "3")
    spec = synthetic.ObservationSpec(frames=4, stars=None, pointing_images=1, seed=5)
    sequence_id = synthetic.write_observation(spec, tmp_path / "frames").sequence_id
    data = tmp_path / "data"
    assert main(["process", str(tmp_path / "frames"), "--data-dir", str(data), "-j", "1", "-q"]) == 0
    runner = EmbeddedRunner(data)
    first = records.observation(runner.metadata, sequence_id) or {}
    assert first["status"] == "processed" and first["pending"] is False, first.get("reason")
    capsys.readouterr()

    args = ["reprocess", "--step", "plate-solver", "--data-dir", str(data), "--json", "-q"]
    assert main(args) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["step"] for r in rows] == ["plate-solver"] * 5 + ["process-observation"], rows
    assert all(r["result"] == "done" for r in rows), rows
    again = records.observation(runner.metadata, sequence_id) or {}
    assert (again["status"], again["pending"], again["processing"]["reason"]) == ("processed", False, "frames re-run")
    assert (
        again["processing"]["rerun"].startswith("late-frame-") and again["processing"]["started"] > first["processed"]
    )
    assert again["products"] == first["products"], "the same names, replaced, never duplicated"
    assert again["frames"]["by_type"] == {"science": 4, "pointing": 1}
    assert [h.outcome for h in runner.finish_observation(sequence_id, "embedded run finished")] == [
        Outcome.ALREADY_DONE
    ], "processed once: nothing left pending"


@pytest.mark.parametrize(
    ("frames", "drift_per_hour", "status", "why"),
    [
        (5, (6.0, -3.0), "not_enough_frames", "5 usable frames"),
        (12, (0.0, 70.0), "too_much_drift", "drift"),  # 0.46 h of frames: about 32 px in y
    ],
)
def test_process_ends_a_short_or_drifting_night_with_its_science_outcome(
    frames: int, drift_per_hour: tuple[float, float], status: str, why: str, tmp_path: Path
) -> None:
    """``process`` on a folder: too few frames, or 30 px of drift, is an outcome recorded with its
    reason (and the quality products that show it), not a failure."""
    from panoptes_network.drivers.cli import main
    from panoptes_network.synthetic import observation as synthetic

    spec = synthetic.ObservationSpec(frames=frames, stars=None, drift_px_per_hour=drift_per_hour, seed=3)
    sequence_id = synthetic.write_observation(spec, tmp_path / "frames").sequence_id
    data = tmp_path / "data"
    assert main(["process", str(tmp_path / "frames"), "--data-dir", str(data), "-q"]) == 0
    observation = records.observation(EmbeddedRunner(data).metadata, sequence_id) or {}
    assert observation["status"] == status and why in observation["reason"], observation.get("reason")
    assert set(observation["products"]) == {"quality_table", "quality_plot"}
    if status == "too_much_drift":
        assert observation["drift_px"] > 18.0


def test_the_frame_quality_reads_the_plate_solvers_sources_instead_of_detecting_again(night: Night) -> None:
    """Each frame's sources table holds the first 10 of its detections: the quality table counts
    those 10 (detecting again would find the frame's 30 stars, some blended: more than 20)."""
    for _ in range(12):
        image_id = night.add_frame(NOW - dt.timedelta(hours=1))
        image = night.context.metadata.get("images", image_id)
        name = image["steps"]["plate-solver"]["outputs"]["processed"]["name"].partition("/")[2]
        pixels = fits_codec.image_hdu(
            fits_codec.open_fits(night.context.storage.read(night.context.storage.stat(PROCESSED, name).ref), name),
            name,
        ).data
        found = detect_sources(pixels, 5.0)
        assert len(found) > 20
        table = sources_parquet(image_id, SEQ, found.take(np.arange(10)), [])
        ref = night.context.storage.write_new(PROCESSED, name.replace(".fits.fz", "-sources.parquet"), table)
        output = {"name": f"{PROCESSED}/{ref.name}", "generation": ref.generation, "state": "written"}
        night.context.metadata.replace_field(
            "images", image_id, ("steps", "plate-solver", "outputs", "sources"), output
        )
    assert process(night.context, ObservationMessage(SEQ, "quiet")).outcome is Outcome.DONE
    quality = night.context.storage.read(night.context.storage.stat(PROCESSED, f"{FOLDER}/quality.parquet").ref)
    assert pq.read_table(io.BytesIO(quality)).column("sources").to_pylist() == [10] * 12
