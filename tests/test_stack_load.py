"""Load on the local stack: 200 small frames uploaded at once all reach their final status, and
nothing is lost or duplicated on the way.

The stack is this module's own (a fresh project), so every collection, bucket and dead-letter
subscription holds exactly what these uploads made. The frames are too sparse to solve: each
ends ``unsolved`` after every step ran (``stack_load``). Besides the final state, the services'
request logs (one JSON line per request) show that every step received one message per input
and did its work once; extra deliveries of the same message (Pub/Sub pushing again while a step
is busy) are counted and reported, not failed. Throughput and latencies are printed and written
to the test's report (``record_property``); speed is the bench's business (``bench/run
stack-load``), so nothing here asserts on it.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest

from fixtures_stack import running_stack
from panoptes_network.core.messages import ObjectRef
from panoptes_network.core.names import parse_raw_name
from panoptes_network.core.records import step_record
from panoptes_network.core.topology import load_topology
from panoptes_network.local.stack import LocalStack, patched_env
from panoptes_network.local.stack_load import (
    CHAIN,
    LoadFrame,
    Uploads,
    final_step_done,
    load_frames,
    measure,
    settled,
    upload_all,
    wait_until_final,
)
from panoptes_network.operations.dead_letters import DeadLetter, DeadLetterQueue
from stack_checks import request_lines, stored_uploads

pytestmark = pytest.mark.stack

FRAMES = 200
FITS_FRAMES = FRAMES // 5  # load_frames: every 5th frame is a plain .fits
DEADLINE_SECONDS = 300
FINAL_STATUS = "unsolved"  # fewer than 10 usable sources: no astrometry, a science outcome
REPEAT_OUTCOMES = {"already_done", "transient"}  # what a redelivered message may be answered


@dataclasses.dataclass(frozen=True)
class LoadRun:
    """What was uploaded, when, and the image documents once the run settled (or timed out)."""

    stack: LocalStack
    gcs: Any
    db: Any
    frames: dict[str, LoadFrame]  # by image id
    uploads: Uploads
    images: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    yield from running_stack(tmp_path_factory, "load")


@pytest.fixture(scope="module")
def run(stack: LocalStack) -> LoadRun:
    """The uploads, all at once, and the wait until every image has settled."""
    from google.cloud import firestore, storage

    with patched_env(stack.client_env):
        gcs, db = storage.Client(), firestore.Client(project=stack.project)
    frames = load_frames(FRAMES)
    uploads = upload_all(gcs.bucket(stack.settings.bucket("raw")), frames)
    images = wait_until_final(db, frames, DEADLINE_SECONDS)
    return LoadRun(stack, gcs, db, {frame.image_id: frame for frame in frames}, uploads, images)


@dataclasses.dataclass(frozen=True)
class Deliveries:
    """The request logs summed up per step, and every (step, input) that got more than one
    message or did its work other than once."""

    steps: dict[str, collections.Counter]
    repeated_messages: list[tuple[str, str, list[str]]]
    repeated_work: list[tuple[str, str, int]]

    @property
    def redeliveries(self) -> dict[str, int]:
        return {step: counts["redeliveries"] for step, counts in self.steps.items()}

    @property
    def outcomes(self) -> set[str]:
        return {key for counts in self.steps.values() for key in counts} - {"requests", "messages", "redeliveries"}


def deliveries(lines: list[dict[str, Any]]) -> Deliveries:
    by_input: dict[tuple[str, str], list[dict[str, Any]]] = collections.defaultdict(list)
    for line in lines:
        by_input[line["step"], line.get("input", "")].append(line)
    steps: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    repeated_messages, repeated_work = [], []
    for (step, input_), requests in sorted(by_input.items()):
        messages = {r["message_id"] for r in requests}
        done = sum(r["outcome"] == "done" for r in requests)
        steps[step].update(requests=len(requests), messages=len(messages), redeliveries=len(requests) - len(messages))
        steps[step].update(r["outcome"] for r in requests)
        if len(messages) != 1:
            repeated_messages.append((step, input_, sorted(messages)))
        if done != 1:
            repeated_work.append((step, input_, done))
    return Deliveries(dict(sorted(steps.items())), repeated_messages, repeated_work)


def late_records(images: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(image, step) where the step's record was written after the next step's: a step publishes
    before it records, so under load the next step can finish first. Allowed, but it opens the
    window in which a read-then-write of the status can move an image backwards."""
    late = []
    for image_id, image in images.items():
        steps = image.get("steps", {})
        for step, next_step in zip(CHAIN, CHAIN[1:]):
            if step in steps and next_step in steps and steps[step]["finished"] > steps[next_step]["finished"]:
                late.append((image_id, step))
    return late


def background_name(frame: LoadFrame) -> str:
    return f"{parse_raw_name(frame.name).base_path}-background.fits.fz"


def test_every_image_reaches_the_final_status(run: LoadRun, record_property) -> None:
    if sum(map(final_step_done, run.images.values())) >= 2:
        report = measure(run.uploads, run.images)
        for key, value in report.fields().items():
            record_property(key, value)
        print(f"\nstack load: {report.line()}")
    found = deliveries(request_lines(run.stack))
    late = late_records(run.images)
    record_property("redeliveries", found.redeliveries)
    record_property("records_after_the_next_step", len(late))
    print(f"stack load: redeliveries {found.redeliveries}; {len(late)} step record(s) written after the next step's")
    print(f"stack load: requests per step {json.dumps(found.steps)}")

    statuses = collections.Counter(image.get("status") for image in run.images.values())
    unsettled = [image_id for image_id, frame in run.frames.items() if not settled(frame, run.images.get(image_id))]
    assert not unsettled, (
        f"{len(unsettled)} unfinished after {DEADLINE_SECONDS} s, e.g. {unsettled[:3]}; {dict(statuses)}"
    )
    assert statuses == {FINAL_STATUS: FRAMES}, {
        image_id: (image["status"], {step: str(record["finished"]) for step, record in image["steps"].items()})
        for image_id, image in run.images.items()
        if image["status"] != FINAL_STATUS
    }
    assert {doc.id for doc in run.db.collection("images").stream()} == set(run.frames)  # and no other image


def test_each_step_ran_once_on_what_the_step_before_handed_it(run: LoadRun) -> None:
    topology = load_topology()
    raw, backgrounds = run.stack.settings.bucket("raw"), run.stack.settings.bucket("backgrounds")
    for image_id, frame in run.frames.items():
        image = run.images[image_id]
        steps = image["steps"]
        assert {step: record["state"] for step, record in steps.items()} == {step: "done" for step in frame.steps}
        for step, next_step in zip(CHAIN, CHAIN[1:]):  # the message each step published is the one the next took
            assert steps[step]["published"] == {topology.service(next_step).topic: steps[next_step]["message_id"]}
        assert {steps[step]["input"] for step in CHAIN} == {
            ObjectRef(raw, frame.compressed_name, image["generation"]).identity
        }
        background = ObjectRef(
            backgrounds,
            background_name(frame),
            step_record(image, "subtract-background").output_generation("background"),
        )
        assert steps["plate-solver"]["background"] == background.identity


def test_each_output_object_is_written_once(run: LoadRun) -> None:
    """One .fits.fz per image at the generation recorded (no .fits left), one background each,
    each uploaded once (fake-gcs-server's access log), nothing processed (an unsolved image has
    no products)."""
    raw, backgrounds = run.stack.settings.bucket("raw"), run.stack.settings.bucket("backgrounds")
    assert {blob.name: blob.generation for blob in run.gcs.list_blobs(raw)} == {
        frame.compressed_name: run.images[image_id]["generation"] for image_id, frame in run.frames.items()
    }
    assert {blob.name: blob.generation for blob in run.gcs.list_blobs(backgrounds)} == {
        background_name(frame): step_record(run.images[image_id], "subtract-background").output_generation("background")
        for image_id, frame in run.frames.items()
    }
    assert list(run.gcs.list_blobs(run.stack.settings.bucket("processed"))) == []
    assert {bucket: stored_uploads(run.stack, bucket) for bucket in (raw, backgrounds)} == {
        raw: FRAMES + FITS_FRAMES,  # the uploads, and compress-fits' .fits.fz
        backgrounds: FRAMES,
    }


def expected_counters(frames: list[LoadFrame], key: str) -> dict[str, tuple[int, float]]:
    totals: dict[str, tuple[int, float]] = {}
    for frame in frames:
        count, exptime = totals.get(getattr(frame, key), (0, 0.0))
        totals[getattr(frame, key)] = (count + 1, exptime + frame.exptime)
    return totals


def stored_counters(db: Any, collection: str) -> dict[str, tuple[int, float]]:
    return {doc.id: (doc.get("num_images"), doc.get("total_exptime")) for doc in db.collection(collection).stream()}


def test_each_image_is_counted_once_and_nothing_else_is_left(run: LoadRun) -> None:
    frames = list(run.frames.values())
    assert len({frame.unit_id for frame in frames}) == 4 and len({frame.sequence_id for frame in frames}) == 40
    assert len(list(run.db.collection("counted_images").stream())) == FRAMES
    assert stored_counters(run.db, "units") == expected_counters(frames, "unit_id")
    assert stored_counters(run.db, "observations") == expected_counters(frames, "sequence_id")
    assert list(run.db.collection("objects").stream()) == []  # nothing ignored or rejected
    assert list(run.db.collection("leases").stream()) == []  # every lease released


def test_each_step_got_one_message_per_input_and_did_its_work_once(run: LoadRun) -> None:
    found = deliveries(request_lines(run.stack))
    assert found.repeated_messages == [] and found.repeated_work == []
    assert found.outcomes <= {"done", *REPEAT_OUTCOMES}, found.steps
    assert (
        {step: counts["messages"] for step, counts in found.steps.items()}
        == {
            "image-received": FRAMES + FITS_FRAMES,  # the .fits and then its .fits.fz
            "compress-fits": FITS_FRAMES,
            **{step: FRAMES for step in CHAIN[1:]},
        }
    )


def dead_letters(stack: LocalStack) -> list[DeadLetter]:
    """Every service's dead letters, the services listed side by side (each listing ends with
    empty pulls that wait seconds)."""
    topology = load_topology()
    with patched_env(stack.client_env):
        queue = DeadLetterQueue(stack.project, topology)
    with concurrent.futures.ThreadPoolExecutor(len(topology.services)) as pool:
        return [letter for found in pool.map(queue.list, [s.name for s in topology.services]) for letter in found]


def test_no_message_is_dead_lettered(run: LoadRun) -> None:
    assert [(letter.service, letter.payload()) for letter in dead_letters(run.stack)] == []
