"""Deliver messages to a step exactly as a push would, without HTTP, and see what it published
(tests only): the one way tests build a local context, run a step and drain its queue."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from panoptes_network.adapters.backends import local_context
from panoptes_network.adapters.publisher import QueuedMessage, QueuePublisher
from panoptes_network.core.context import Context
from panoptes_network.core.messages import ObjectRef, PushMessage, StepMessage, parse_step_message
from panoptes_network.core.names import parse_raw_name
from panoptes_network.core.settings import Settings
from panoptes_network.core.step import Step
from panoptes_network.core.step_shell import Handled, run_step
from panoptes_network.core.topology import load_topology

RAW = "panoptes-raw-images"


def local(tmp_path: Path) -> tuple[Context, QueuePublisher]:
    """The embedded stand-ins in ``tmp_path``: a context and the queue its topics share."""
    return local_context(Settings(data_dir=tmp_path), tmp_path)


def message_for(ref: ObjectRef) -> StepMessage:
    name = parse_raw_name(ref.name)
    return StepMessage(ref, name.image_id, name.sequence_id, {"file_kind": name.kind.value})


def deliver(
    context: Context,
    service: str,
    message: StepMessage | PushMessage,
    message_id: str = "m-1",
    step: Step | None = None,
) -> Handled:
    """Run ``service``'s step (or ``step``, a test's own, under that service) on ``message``:
    a step message pushed with ``message_id``, or a push as it came (a storage notification)."""
    spec = load_topology().service(service)
    if isinstance(message, StepMessage):
        data, attributes = message.encode()
        message = PushMessage(message_id, data, attributes)
    return run_step(spec, step or spec.step_module().STEP, context, message)


def drain_messages(queue: QueuePublisher) -> list[QueuedMessage]:
    """Empty the queue; what was in it, oldest first."""
    messages = []
    while (queued := queue.pop()) is not None:
        messages.append(queued)
    return messages


def drain(queue: QueuePublisher) -> list[str]:
    """Empty the queue; the topics of what was in it."""
    return [queued.topic for queued in drain_messages(queue)]


def as_push(queued: QueuedMessage) -> PushMessage:
    """A published message as its subscription would push it."""
    return PushMessage(queued.message_id, queued.data, queued.attributes)


def step_message(queued: QueuedMessage) -> StepMessage:
    """A published step message, read back as the next step reads it."""
    return parse_step_message(as_push(queued))


def envelope(data: bytes, attributes: dict[str, str] | None = None, message_id: str = "1") -> bytes:
    """The HTTP body Pub/Sub pushes for a message."""
    return json.dumps(
        {
            "message": {
                "data": base64.b64encode(data).decode(),
                "attributes": attributes or {},
                "messageId": message_id,
                "publishTime": "2026-11-24T00:00:00Z",
            },
            "subscription": "projects/p/subscriptions/s",
        }
    ).encode()
