"""Deliver step messages to a step exactly as a push would, without HTTP (tests only)."""

from __future__ import annotations

from pathlib import Path

from panoptes_network.adapters.backends import local_context
from panoptes_network.adapters.publisher import QueuePublisher
from panoptes_network.core.context import Context
from panoptes_network.core.messages import ObjectRef, PushMessage, StepMessage
from panoptes_network.core.names import parse_raw_name
from panoptes_network.core.settings import Settings
from panoptes_network.core.step_shell import Handled, run_step
from panoptes_network.core.topology import load_topology

RAW = "panoptes-raw-images"


def local(tmp_path: Path) -> tuple[Context, QueuePublisher]:
    return local_context(Settings(data_dir=tmp_path), tmp_path)


def message_for(ref: ObjectRef) -> StepMessage:
    name = parse_raw_name(ref.name)
    return StepMessage(ref, name.image_id, name.sequence_id, {"file_kind": name.kind.value})


def deliver(context: Context, service: str, message: StepMessage, message_id: str = "m-1") -> Handled:
    spec = load_topology().service(service)
    data, attributes = message.encode()
    return run_step(spec, spec.step_module().STEP, context, PushMessage(message_id, data, attributes))


def drain(queue: QueuePublisher) -> list[str]:
    """Empty the queue; the topics of what was in it."""
    topics = []
    while (queued := queue.pop()) is not None:
        topics.append(queued.topic)
    return topics
