"""Observations on the local cloud stack: frames uploaded through google-cloud-storage become an
observation that the sweep (the stack's timer in place of Cloud Scheduler) publishes once it is
quiet, or the end marker at once; the observation message pushed 5 times at once runs once; a
late frame leads to exactly one re-processing whose products replace the first.

A stack of its own: the quiet period is seconds here, the sweep runs every 2 s, and 3 usable
frames make an observation (the real crop, which solves, uploaded under several names)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

from fixtures_stack import running_stack
from panoptes_network.core.messages import ObservationMessage
from panoptes_network.core.settings import Settings
from panoptes_network.local.stack import LocalStack, patched_env
from panoptes_network.science import fits_codec
from panoptes_network.science.lightcurve_products import LIGHTCURVE_FILES
from panoptes_network.science.observation_products import PRODUCT_FILES
from polling import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]

QUIET_MINUTES = 0.2  # 12 s
SETTINGS = dataclasses.replace(
    Settings(), observation_quiet_minutes=QUIET_MINUTES, sweep_interval_seconds=2.0, min_frames=3
)
SEQUENCE_TIME = "20160909T081152"
FRAME_TIMES = ("20160909T081314", "20160909T081522", "20160909T081730")
LATE_TIME = "20160909T082200"
DEADLINE_SECONDS = 240


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    yield from running_stack(tmp_path_factory, "observations", settings=SETTINGS)


@pytest.fixture(scope="module")
def clients(stack: LocalStack) -> Iterator[Any]:
    from google.cloud import firestore, pubsub_v1, storage

    with patched_env(stack.client_env):
        yield storage.Client(), firestore.Client(project=stack.project), pubsub_v1.PublisherClient()


@pytest.fixture(scope="module")
def frame(test_data: Path) -> bytes:
    with fits.open(test_data / "panoptes" / "unsolved.fits") as hdus:
        return fits_codec.compressed_file(hdus[0].data, hdus[0].header)


def upload(stack: LocalStack, gcs: Any, camera: str, name: str, data: bytes) -> None:
    gcs.bucket(stack.settings.bucket("raw")).blob(f"PAN001/{camera}/{SEQUENCE_TIME}/{name}").upload_from_string(data)


def observation(db: Any, camera: str) -> dict[str, Any]:
    return db.collection("observations").document(f"PAN001_{camera}_{SEQUENCE_TIME}").get().to_dict() or {}


def finished(db: Any, camera: str, check: Any, what: str) -> dict[str, Any]:
    return wait_for(lambda: observation(db, camera), what, DEADLINE_SECONDS, until=check, every=0.5)


def products(stack: LocalStack, gcs: Any, camera: str) -> dict[str, int]:
    """The observation's products in the processed bucket (not the frames', named by their time): name -> generation."""
    folder = f"PAN001/{camera}/{SEQUENCE_TIME}/"
    blobs = gcs.bucket(stack.settings.bucket("processed")).list_blobs(prefix=folder)
    return {b.name: b.generation for b in blobs if not b.name.removeprefix(folder)[:1].isdigit()}


def runs(stack: LocalStack, camera: str) -> list[str]:
    """What process-observation answered for this observation, in order: its outcome, and for a
    run that made products its status (``done processed``)."""
    subject = f"observations/PAN001_{camera}_{SEQUENCE_TIME}"
    text = stack.services["process-observation"].log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [
        f"done {line.get('reason', '').split(':')[0]}" if line["outcome"] == "done" else line["outcome"]
        for line in lines
        if line.get("input") == subject and "outcome" in line
    ]


def made_runs(stack: LocalStack, camera: str) -> list[str]:
    """The runs that did something: a sweep that publishes again while the observation is being
    processed (or while make-lightcurves follows) is answered ``already_done``, as it should be."""
    return [r for r in runs(stack, camera) if r != "already_done"]


def processed(doc: dict[str, Any]) -> bool:
    return doc.get("status") == "processed" and doc.get("pending") is False


def with_lightcurves(frames: int, rerun: str | None = None) -> Any:
    """Processed, and make-lightcurves (process-observation's next step) ran on that many frames (and rerun)."""

    def check(doc: dict[str, Any]) -> bool:
        made = doc.get("lightcurves") or {}
        return processed(doc) and made.get("frames") == frames and (rerun is None or made.get("rerun") == rerun)

    return check


ALL_FILES = {suffix for suffix, _ in (*PRODUCT_FILES.values(), *LIGHTCURVE_FILES.values())}


def test_without_a_marker_processed_once_after_the_quiet_period_and_a_late_frame_once_more(
    stack: LocalStack, clients: Any, frame: bytes
) -> None:
    gcs, db, _ = clients
    camera = "Q" + uuid.uuid4().hex[:5]
    for time in FRAME_TIMES:
        upload(stack, gcs, camera, f"{time}.fits.fz", frame)
    first = finished(db, camera, with_lightcurves(3), "the quiet observation processed, then its lightcurves")
    assert first["processing"]["reason"].startswith("no frame for"), first["processing"]
    assert first["processing"]["started"] - first["last_arrival"] >= SETTINGS.observation_quiet
    assert first["frames"] == {"count": 3, "by_status": {"solved": 3}, "by_type": {"science": 3}} and first[
        "drift_px"
    ] == pytest.approx(0, abs=1e-6)  # the same frame three times: no drift, to a micro-pixel
    assert first["field"]["name"] == "KIC 8462852"
    made = products(stack, gcs, camera)
    assert made_runs(stack, camera) == ["done processed"]
    assert set(made) == {f"PAN001/{camera}/{SEQUENCE_TIME}/{suffix}" for suffix in ALL_FILES}
    recorded = {*first["products"].values(), *first["lightcurves"]["products"].values()}
    assert {f"{stack.settings.bucket('processed')}/{name}" for name in made} == recorded
    assert first["lightcurves"]["stars"] > 10 and first["lightcurves"]["candidates"] == []

    upload(stack, gcs, camera, f"{LATE_TIME}.fits.fz", frame)
    second = finished(
        db,
        camera,
        lambda doc: with_lightcurves(4)(doc) and doc["frames"]["count"] == 4,
        "the late frame's re-processing",
    )
    assert second["processing"]["rerun"].startswith("late-frame-")
    replaced = products(stack, gcs, camera)
    assert set(replaced) == set(made), "replaced under the same names, never duplicated"
    assert (
        replaced[f"PAN001/{camera}/{SEQUENCE_TIME}/quality.parquet"]
        != made[f"PAN001/{camera}/{SEQUENCE_TIME}/quality.parquet"]
    )
    ticks = stack.timer.ticks if stack.timer else 0
    wait_for(lambda: stack.timer.ticks if stack.timer else 0, "three more sweeps", 60, until=lambda t: t >= ticks + 3)
    assert made_runs(stack, camera) == ["done processed", "done processed"]


def test_with_the_end_marker_at_once_and_five_concurrent_messages_run_once(
    stack: LocalStack, clients: Any, frame: bytes
) -> None:
    gcs, db, publisher = clients
    camera = "M" + uuid.uuid4().hex[:5]
    for name in (*(f"{time}.fits.fz" for time in FRAME_TIMES), "sequence-complete.json"):
        upload(stack, gcs, camera, name, frame if name.endswith(".fz") else b"{}")
    first = finished(
        db, camera, with_lightcurves(3), "the observation processed on its end marker, then its lightcurves"
    )
    assert first["processing"]["reason"] == "end marker"
    assert first["end_marker"].split("#")[0].endswith(f"/{SEQUENCE_TIME}/sequence-complete.json")
    made = products(stack, gcs, camera)

    message = ObservationMessage(f"PAN001_{camera}_{SEQUENCE_TIME}", "forced", f"test-{uuid.uuid4().hex[:6]}")
    data, attributes = message.encode()
    topic = publisher.topic_path(stack.project, "process-observation")
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        list(pool.map(lambda _: publisher.publish(topic, data, **attributes).result(timeout=30), range(5)))
    again = finished(db, camera, with_lightcurves(3, message.rerun), "the forced re-run and its lightcurves")
    assert again["status"] == "processed"
    wait_for(lambda: runs(stack, camera), "every copy answered", 60, until=lambda r: r.count("already_done") >= 4)
    outcomes = [
        o for o in runs(stack, camera) if o != "done not ready"
    ]  # the marker came before the frames were solved
    assert outcomes.count("done processed") == 2, outcomes
    assert set(outcomes) <= {"done processed", "already_done", "transient"}, outcomes
    assert set(products(stack, gcs, camera)) == set(made), "one set of products"
