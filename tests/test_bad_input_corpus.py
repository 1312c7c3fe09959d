"""Junk through every step: each ends as a recorded rejection (or a 400), without hanging, with
nothing else touched — the input stays as it was and no output appears anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from panoptes_network.core.messages import ObjectRef, PushMessage, StepMessage, storage_notification
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.topology import load_topology
from polling import returns_within
from step_harness import RAW, deliver, drain, local, message_for

SEQUENCE = "PAN001/14d3bd/20181011T134202"
EXTENSION = {"compress-fits": "fits", "record-image": "fits.fz", "make-rgb-fits": "cr2",
             "subtract-background": "fits.fz", "plate-solver": "fits.fz"}  # fmt: skip
HANG_SECONDS = 60  # far beyond a rejection, short of a solve's budget: a bound, not a speed


def truncated_fits(test_data: Path) -> bytes:
    return (test_data / "panoptes" / "unsolved.fits").read_bytes()[:5000]


CONTENTS = {
    "zero bytes": lambda data: b"",
    "wrong magic": lambda data: b"GIF89a" + bytes(3000),
    "text": lambda data: b"observing log, not an image\n" * 10,
    "truncated FITS": truncated_fits,
}
STEP_SERVICES = [s.name for s in load_topology().services if s.message == "step"]


def everything(context) -> dict[str, int]:
    buckets = context.settings.buckets.values()
    return {info.ref.identity: info.size for bucket in buckets for info in context.storage.list(bucket)}


def message_with_background(ref: ObjectRef) -> StepMessage:
    message = message_for(ref)
    background = {"bucket": "panoptes-backgrounds", "name": "PAN001/none-background.fits.fz", "generation": 1}
    return StepMessage(message.ref, message.image_id, message.sequence_id, {**message.extra, "background": background})


@pytest.mark.parametrize("content", sorted(CONTENTS))
@pytest.mark.parametrize("service", STEP_SERVICES)
def test_junk_is_rejected_and_nothing_is_touched(tmp_path: Path, test_data: Path, service: str, content: str) -> None:
    context, queue = local(tmp_path)
    data = CONTENTS[content](test_data)
    ref = context.storage.write_new(RAW, f"{SEQUENCE}/20181011T134333.{EXTENSION[service]}", data)
    drain(queue)
    before = everything(context)
    message = message_with_background(ref) if service == "plate-solver" else message_for(ref)
    handled = returns_within(lambda: deliver(context, service, message), f"{service} answering", HANG_SECONDS)
    assert handled.outcome is Outcome.REJECTED, (handled.outcome, handled.reason)
    assert handled.reason
    assert everything(context) == before and context.storage.read(ref) == data
    assert drain(queue) == []
    step = context.metadata.get("images", message.image_id)["steps"][service]
    assert step["state"] == "rejected" and step["error"]


@pytest.mark.parametrize("service", STEP_SERVICES)
def test_a_message_for_a_generation_that_no_longer_exists_is_rejected(tmp_path: Path, service: str) -> None:
    context, queue = local(tmp_path)
    name = f"{SEQUENCE}/20181011T134333.{EXTENSION[service]}"
    old = context.storage.write_new(RAW, name, b"SIMPLE  = old")
    context.storage.delete(old)
    newer = context.storage.write_new(RAW, name, b"SIMPLE  = newer")
    drain(queue)
    message = message_with_background(old) if service == "plate-solver" else message_for(old)
    handled = deliver(context, service, message)
    assert handled.outcome is Outcome.REJECTED, (handled.outcome, handled.reason)
    assert context.storage.read(newer) == b"SIMPLE  = newer"


@pytest.mark.parametrize(
    "name",
    ["PAN001/14d3bd/../20181011T134333.fits", "PAN001/14d3bd/20181011T134202/with space.fits",
     "PAN001/14d3bd/20181011T134202/ünïcödé.fits", "PAN001/14d3bd/20181011T134202/20181011T134333",
     "PANX01/14d3bd/20181011T134202/20181011T134333.fits", "no-extension-at-all"],
)  # fmt: skip
def test_odd_names_are_recorded_not_routed(tmp_path: Path, name: str) -> None:
    context, queue = local(tmp_path)
    data, attributes = storage_notification(ObjectRef(RAW, name, 7), 10)
    handled = deliver(context, "image-received", PushMessage("m", data, attributes))
    assert handled.outcome in (Outcome.REJECTED, Outcome.IGNORED)
    assert drain(queue) == [] and context.metadata.list("images") == []
    [(_, record)] = context.metadata.list("objects")
    assert record["name"] == name and record["reason"]
