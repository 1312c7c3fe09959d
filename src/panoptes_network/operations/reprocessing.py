"""Re-run chosen images through a step: ``panoptes-network reprocess``.

Every step record keeps the input and message extras of the step's latest run, so its message
can be rebuilt exactly. A fresh rerun token makes a step that already finished that input run
again (once per token: a redelivered rerun is still a redelivery), replace its own derived
outputs instead of keeping them as conflicts, and pass the token down the chain. Counters stay
exact because record-image counts an image once, ever (its ``counted_images`` marker).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

from panoptes_network.core import records
from panoptes_network.core.context import Context
from panoptes_network.core.messages import ObjectRef, ObservationMessage, StepMessage, storage_notification


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which images to re-run; empty fields select everything."""

    statuses: tuple[str, ...] = ()
    unit: str | None = None
    since: dt.datetime | None = None  # images taken at or after this time
    step: str | None = None  # None: each image's latest step, where its chain stopped

    def admits(self, image: dict[str, Any]) -> bool:
        if self.since is None:
            return True
        taken = image.get("time")
        return isinstance(taken, dt.datetime) and taken >= self.since


@dataclasses.dataclass(frozen=True)
class Rerun:
    """One image's planned re-run: the message to publish, or why there is none."""

    image_id: str
    step: str | None
    topic: str | None = None
    data: bytes = b""
    attributes: dict[str, str] = dataclasses.field(default_factory=dict)
    skipped: str | None = None


def new_token(clock: dt.datetime | None = None) -> str:
    """A rerun token that says when it was made and is unique to this invocation."""
    stamp = (clock or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"reprocess-{stamp}-{uuid.uuid4().hex[:6]}"


def select_images(context: Context, selection: Selection) -> Iterator[tuple[str, dict[str, Any]]]:
    """Matching images in id order (equality filters run in the store, the date filter here)."""
    base = {"unit_id": selection.unit} if selection.unit else {}
    filters = [{**base, "status": status} for status in selection.statuses] or [base]
    found: dict[str, dict[str, Any]] = {}
    for where in filters:
        found.update(records.images(context.metadata, where or None))
    for image_id in sorted(found):
        if selection.admits(found[image_id]):
            yield image_id, found[image_id]


def plan_rerun(context: Context, image_id: str, image: dict[str, Any], step: str | None, token: str) -> Rerun:
    """The message that re-runs ``step`` (default: the latest) on this image, rebuilt from its record."""
    step = step or records.latest_step(image)
    record = records.step_record(image, step or "")
    if step is None or record.input is None:
        return Rerun(image_id, step, skipped=f"{step or 'no step'} never ran on this image")
    if not image.get("sequence_id"):
        return Rerun(image_id, step, skipped="the image record has no sequence_id")
    ref = ObjectRef.from_identity(record.input)
    live = context.storage.stat(ref.bucket, ref.name)
    if live is None or live.ref.generation != ref.generation:
        return Rerun(image_id, step, skipped=f"its input {ref.identity} no longer exists")
    service = context.topology.service(step)
    if service.message == "storage-notification":
        data, attributes = storage_notification(ref, live.size, live.content_type)
        attributes = {**attributes, "rerun": token}
    else:
        message = StepMessage(ref, image_id, image["sequence_id"], record.extra, token)
        data, attributes = message.encode()
    return Rerun(image_id, step, service.topic, data, attributes)


OBSERVATION_STEP = "process-observation"


def plan_observation_rerun(context: Context, sequence_id: str, token: str) -> Rerun:
    """The message that processes an observation again and replaces its products."""
    if records.observation(context.metadata, sequence_id) is None:
        return Rerun(sequence_id, OBSERVATION_STEP, skipped="no such observation")
    data, attributes = ObservationMessage(sequence_id, "reprocess", token).encode()
    return Rerun(sequence_id, OBSERVATION_STEP, context.topology.service(OBSERVATION_STEP).topic, data, attributes)


def publish(context: Context, rerun: Rerun) -> str:
    """Publish a planned re-run to its step's topic; the message id."""
    if rerun.topic is None:
        raise ValueError(f"{rerun.image_id}: nothing to publish ({rerun.skipped})")
    return context.publisher.publish(rerun.topic, rerun.data, rerun.attributes)


class Pace:
    """At most ``rate`` publishes a second (None: no limit), so a backfill does not flood the services."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next = time.monotonic()

    def wait(self) -> None:
        delay = self.next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self.next = max(self.next, time.monotonic()) + self.interval


def parse_since(text: str) -> dt.datetime:
    """A date or time in ISO 8601 (``2026-11-24``, ``2026-11-24T08:00``, ``20261124T080000``); UTC unless it says."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 date or time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
