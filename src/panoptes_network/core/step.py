"""What a step is and what its science sees: ``Step`` declares what it reads and writes,
``Work`` hands it its message, inputs (read at their generations), create-only outputs (one
conflict policy for every step) and a publisher limited to the topics the topology lists for
it. A step module is its science plus a ``StepResult``; the shell (``step_shell``) does the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from panoptes_network.adapters.publisher import Publisher
from panoptes_network.core.context import Context
from panoptes_network.core.errors import BadInput, NotFound, PipelineError
from panoptes_network.core.messages import (
    ObjectEvent,
    ObjectRef,
    ObservationMessage,
    StepMessage,
    SweepTick,
)
from panoptes_network.core.names import parse_raw_name
from panoptes_network.core.outputs import CONFLICT, KEPT, store_output
from panoptes_network.core.status import ImageStatus
from panoptes_network.core.topology import Service

StepInput = ObjectEvent | StepMessage | ObservationMessage | SweepTick


INPUT = "input"  # the key of the object the message names, among a step's inputs


class UnlistedTopic(RuntimeError):
    """A step published to a topic its topology entry does not list: a bug in the step."""


@dataclasses.dataclass(frozen=True)
class Target:
    """Where one of a step's outputs goes."""

    bucket: str  # the bucket's name (``settings.bucket(key)``)
    name: str
    content_type: str
    shared: bool = False  # another writer (the unit itself) may put it there first: a different
    # object under the name is theirs, left alone and never replaced, and no conflict

    @property
    def location(self) -> str:
        return f"{self.bucket}/{self.name}"


@dataclasses.dataclass(frozen=True)
class StepResult:
    """What a step's science reports when it did not raise; the shell records it."""

    reason: str = ""
    record: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # the step's own record fields
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # merged into the image document
    status: ImageStatus | None = None  # the image's new status (applied only if it moves forward)


def _the_message_object(step_input: StepInput) -> Mapping[str, ObjectRef]:
    if isinstance(step_input, ObservationMessage | SweepTick):
        return {}
    return {INPUT: step_input.ref}


def _no_outputs(context: Context, step_input: StepInput) -> Mapping[str, Target]:
    return {}


@dataclasses.dataclass(frozen=True)
class Step:
    """A step: its science (``do``), what it reads and what it writes; the shell does the rest.

    ``reads`` names the objects the step reads (each at the generation the message gives);
    ``writes`` the outputs it may store, by key. ``consumes_input``: the step deletes its input
    once its outputs are stored, so an input that is gone while every output exists was done.
    """

    name: str
    do: Callable[[Work], StepResult]
    reads: Callable[[Any], Mapping[str, ObjectRef]] = _the_message_object
    writes: Callable[[Context, Any], Mapping[str, Target]] = _no_outputs
    consumes_input: bool = False
    # Whether a message is already done, for steps whose record is not an image's step record
    # (process-observation's is the observation); None: the image's step record says.
    done: Callable[[Context, Any], bool] | None = None
    # An observation step after process-observation (make-lightcurves) records its failures in this
    # field of the observation, never in its status: the observation stays processed. None: status.
    observation_field: str | None = None


class InputGone(NotFound):
    """An input the step reads no longer exists at the generation the message names."""


class Conflict(PipelineError):
    """An output name already holds different content; both are kept."""


class ListedTopics:
    """The publisher a step sees: only the topics its topology entry lists, each id kept for the record."""

    def __init__(self, publisher: Publisher, service: Service) -> None:
        self.publisher = publisher
        self.service = service
        self.published: dict[str, str] = {}

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        if topic not in self.service.publishes:
            listed = ", ".join(self.service.publishes) or "none"
            raise UnlistedTopic(f"{self.service.name} may not publish to {topic!r} (the topology lists: {listed})")
        message_id = self.publisher.publish(topic, data, attributes)
        self.published[topic] = message_id
        return message_id


class Work:
    """One message's work, as the step's science sees it: the message, its inputs (read at their
    generations) and its outputs (written create-only, one conflict policy for every step)."""

    def __init__(self, context: Context, step: Step, message: Any, service: Service | None = None) -> None:
        self.publisher = ListedTopics(context.publisher, service or context.topology.service(step.name))
        self.context = dataclasses.replace(context, publisher=self.publisher)
        self.step = step
        self.message = message
        self.inputs = step.reads(message)
        self.outputs: dict[str, dict[str, Any]] = {}  # key -> {name, generation, state}: the step record's

    def targets(self) -> Mapping[str, Target]:
        return self.step.writes(self.context, self.message)

    def read(self, key: str = INPUT) -> bytes:
        """The whole input ``key``; ``InputGone`` when that generation no longer exists, and
        ``OverLimit`` when the stored size exceeds ``max_object_bytes`` (asked before downloading)."""
        ref = self.inputs[key]
        info = self.context.storage.stat(ref.bucket, ref.name)
        if info is not None and info.ref.generation == ref.generation:
            self.context.settings.limits.check(ref.identity, "max_object_bytes", info.size)
        try:
            return self.context.storage.read(ref)
        except NotFound as exc:
            raise InputGone(f"{key} {ref.identity} no longer exists", exc) from exc

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of input ``key``; ``InputGone`` when it no longer exists."""
        ref = self.inputs[key]
        try:
            return self.context.storage.read_range(ref, start, end)
        except NotFound as exc:
            raise InputGone(f"{key} {ref.identity} no longer exists", exc) from exc

    def write(self, contents: Mapping[str, bytes]) -> dict[str, ObjectRef]:
        """Store each output create-only; the objects that hold them (a shared name that another
        writer holds with other content is left out). The same content already there is reused; different content is replaced
        only by a rerun (``reprocess``), otherwise kept, and once every output was tried the step
        ends in ``Conflict``: recorded as ``state: conflict``, nothing published, no status."""
        targets = self.targets()
        rerun = getattr(self.message, "rerun", None) is not None
        stored: dict[str, ObjectRef] = {}
        conflicts = []
        for key, data in contents.items():
            target = targets[key]
            result = store_output(
                self.context.storage,
                target.bucket,
                target.name,
                data,
                target.content_type,
                replace=rerun and not target.shared,
            )
            state = CONFLICT if result.state == KEPT and not target.shared else result.state
            generation = result.ref.generation if result.ref else None
            self.outputs[key] = {"name": target.location, "generation": generation, "state": state}
            if result.ref is not None:
                stored[key] = result.ref
            if state == CONFLICT:
                conflicts.append(target.location)
        if conflicts:
            raise Conflict(f"{', '.join(conflicts)} already held different content; both kept, nothing overwritten")
        return stored

    def publish(self, topic: str, message: StepMessage | ObservationMessage) -> str:
        """Publish to a topic the topology lists for this step (``UnlistedTopic`` otherwise)."""
        return self.context.publish(topic, message)


def subject_of(step_input: StepInput) -> str:
    """What a message is about, for the log line: an object's identity, or the observation."""
    if isinstance(step_input, ObservationMessage):
        return f"observations/{step_input.sequence_id}"
    if isinstance(step_input, SweepTick):
        return "observation-sweep"
    return step_input.ref.identity


def lease_subject(step_input: StepInput) -> str | None:
    """What one attempt at a time is held on: the image, or the observation (None: nothing)."""
    if isinstance(step_input, ObservationMessage):
        return step_input.sequence_id
    return image_id_of(step_input)


def image_id_of(step_input: StepInput) -> str | None:
    """The image an input belongs to, when it has one."""
    if isinstance(step_input, ObservationMessage | SweepTick):
        return None
    if isinstance(step_input, StepMessage):
        return step_input.image_id
    try:
        return parse_raw_name(step_input.ref.name).image_id
    except BadInput:
        return None
