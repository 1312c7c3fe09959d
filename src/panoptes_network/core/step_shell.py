"""The step shell: run one step on one message, the core that both drivers share.

A step declares what it reads and what it writes (``Step``) and does its science on a ``Work``
(in the spirit of a BANZAI stage's ``do_stage(image)``); the shell does the rest, once for
every step: parsing the message as the topology says, the image's lease, the already-done
check, reading inputs at their generations (a vanished input is a recorded rejection),
create-only output writes with one conflict policy (identical: reused; different: kept, and the
step ends ``state: conflict``; replaced only by a rerun token), publishing only to the topics
the topology lists for the step, and the step record on the image (or on the object when there
is no image). It knows nothing of HTTP: ``run_step`` returns a ``Handled`` that the driver maps
to a status code or a summary line. Exceptions are never swallowed: each ends as an outcome
with its class and message, and unexpected ones keep their traceback in the log.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from panoptes_network import __version__
from panoptes_network.adapters.metadata import AlsoMerge
from panoptes_network.adapters.publisher import Publisher
from panoptes_network.core import records
from panoptes_network.core.context import Context
from panoptes_network.core.errors import BadInput, Ignored, MalformedRequest, NotFound, PipelineError, TransientError
from panoptes_network.core.leases import lease
from panoptes_network.core.logs import add_context, log, logging_context
from panoptes_network.core.messages import (
    ObjectEvent,
    ObjectRef,
    PushMessage,
    StepMessage,
    parse_step_message,
    parse_storage_notification,
)
from panoptes_network.core.names import parse_raw_name
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.outputs import CONFLICT, KEPT, store_output
from panoptes_network.core.records import StepRecord
from panoptes_network.core.status import ImageStatus, ObjectStatus, StepState, moves_forward
from panoptes_network.core.topology import Service

logger = logging.getLogger(__name__)

StepInput = ObjectEvent | StepMessage
INPUT = "input"  # the key of the object the message names, among a step's inputs

PARSERS: dict[str, Callable[[PushMessage], StepInput]] = {
    "storage-notification": parse_storage_notification,
    "step": parse_step_message,
}


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
        """The whole input ``key``; ``InputGone`` when that generation no longer exists."""
        ref = self.inputs[key]
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

    def publish(self, topic: str, message: StepMessage) -> str:
        """Publish to a topic the topology lists for this step (``UnlistedTopic`` otherwise)."""
        return self.context.publish(topic, message)


@dataclasses.dataclass(frozen=True)
class Handled:
    """The outcome of one message, for the driver (status code, log line, summary)."""

    step: str
    outcome: Outcome
    message_id: str | None = None
    image_id: str | None = None
    input: str | None = None
    reason: str = ""
    error_class: str | None = None
    published: Mapping[str, str] = dataclasses.field(default_factory=dict)
    duration_ms: float = 0.0

    def log_fields(self) -> dict[str, Any]:
        """The structured fields of the request's one log line."""
        fields = {
            "step": self.step,
            "outcome": self.outcome.value,
            "status": self.outcome.http_status,
            "message_id": self.message_id,
            "image_id": self.image_id,
            "input": self.input,
            "reason": self.reason or None,
            "error_class": self.error_class,
            "published": dict(self.published) or None,
            "duration_ms": round(self.duration_ms, 1),
        }
        return {k: v for k, v in fields.items() if v is not None}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def extra_of(step_input: StepInput) -> dict[str, Any]:
    return dict(step_input.extra) if isinstance(step_input, StepMessage) else {}


def finished(record: StepRecord, step_input: StepInput) -> bool:
    """Whether a step record says this input (with these extras, and this rerun if it is one) is done.

    A rerun (``reprocess``) is done only once its own token is recorded; a message without a
    token is done by any finished run of the input, so a late redelivery never repeats work. The
    extras count: plate-solver told of a new background file runs again."""
    if record.input != step_input.ref.identity or record.state != StepState.DONE.value:
        return False
    if record.extra != extra_of(step_input):
        return False
    return step_input.rerun is None or record.rerun == step_input.rerun


def image_id_of(step_input: StepInput) -> str | None:
    """The image an input belongs to, when it has one."""
    if isinstance(step_input, StepMessage):
        return step_input.image_id
    try:
        return parse_raw_name(step_input.ref.name).image_id
    except BadInput:
        return None


def _record_step(
    context: Context,
    step: str,
    step_input: StepInput,
    image_id: str,
    message_id: str,
    record: Mapping[str, Any],
    image_fields: AlsoMerge | None = None,
) -> None:
    """Replace the step's record on the image and merge the step's image fields, in one write:
    a reader never sees a status without its record.

    The record keeps what rebuilds the step's message (input, extra, rerun), for ``reprocess``."""
    extra = extra_of(step_input)
    fields = {
        "input": step_input.ref.identity,
        "message_id": message_id,
        "finished": now(),
        "software_version": __version__,
        **({"extra": extra} if extra else {}),
        **({"rerun": step_input.rerun} if step_input.rerun else {}),
        **record,
    }
    records.replace_step_record(context.metadata, image_id, step, fields, image_fields)


def _record_done(context: Context, work: Work, image_id: str, message_id: str, result: StepResult) -> None:
    """The step record, the step's image fields, and the status if it does not move the image
    back. The status is decided on the document as written (a conditional write): the next step,
    already published to, may record a later status between a read and this write."""
    status = result.status

    def fields(image: dict[str, Any]) -> dict[str, Any]:
        forward = status is not None and moves_forward(image.get("status"), status)
        return {**result.fields, **({"status": status.value} if forward and status else {})}

    record = {
        "state": StepState.DONE.value,
        "published": dict(work.publisher.published),
        **({"outputs": work.outputs} if work.outputs else {}),
        **result.record,
    }
    _record_step(context, work.step.name, work.message, image_id, message_id, record, fields)


def _unless_done(step: str, step_input: StepInput, fields: Mapping[str, Any]) -> AlsoMerge:
    """An overlapping attempt that finished this input stands: a loser's failure is not recorded."""

    def decide(image: dict[str, Any]) -> Mapping[str, Any] | None:
        return None if finished(records.step_record(image, step), step_input) else fields

    return decide


def _record_object(context: Context, step: str, ref: ObjectRef, status: ObjectStatus, reason: str) -> None:
    records.merge_object(
        context.metadata,
        ref.doc_id,
        {
            "bucket": ref.bucket,
            "name": ref.name,
            "generation": ref.generation,
            "status": status.value,
            "reason": reason,
            "step": step,
            "time": now(),
        },
    )


def _record_failure(
    context: Context, step: str, step_input: StepInput, message_id: str, error: PipelineError, state: StepState
) -> None:
    """Record a rejection or an error where people will look for it."""
    image_id = image_id_of(step_input)
    if image_id is None or isinstance(error, Ignored):
        status = ObjectStatus.IGNORED if isinstance(error, Ignored) else ObjectStatus.REJECTED
        _record_object(context, step, step_input.ref, status, error.message)
        return
    image_status = ImageStatus.REJECTED if state is StepState.REJECTED else ImageStatus.ERROR
    record = {**error.details, "state": state.value, "error_class": error.error_class, "error": error.message}
    _record_step(
        context,
        step,
        step_input,
        image_id,
        message_id,
        record,
        _unless_done(step, step_input, {"status": image_status.value}),
    )


def _record_conflict(context: Context, work: Work, image_id: str, message_id: str, conflict: Conflict) -> None:
    """``state: conflict`` with the outputs as found; the image's status stays where it was."""
    record = {
        "state": StepState.CONFLICT.value,
        "conflict": conflict.message,
        "outputs": work.outputs,
        "published": dict(work.publisher.published),
    }
    _record_step(
        context,
        work.step.name,
        work.message,
        image_id,
        message_id,
        record,
        _unless_done(work.step.name, work.message, {}),
    )


def _outputs_exist(work: Work) -> bool:
    targets = work.targets()
    return bool(targets) and all(work.context.storage.stat(t.bucket, t.name) is not None for t in targets.values())


def _execute(service: Service, step: Step, context: Context, message: PushMessage) -> tuple[Outcome, dict[str, Any]]:
    """Parse, take the image's lease for this step, handle and record; failures to record
    propagate to ``run_step``. A live lease held by another attempt (a redelivery while the
    first is still running) is a transient outcome: Pub/Sub asks again later."""
    try:
        step_input = PARSERS[service.message](message)
    except MalformedRequest as exc:
        return Outcome.MALFORMED, {"reason": exc.message, "error_class": exc.error_class}
    except Ignored as exc:
        return Outcome.IGNORED, {"reason": exc.message}
    image_id = image_id_of(step_input)
    add_context(image_id=image_id)
    subject = {"image_id": image_id, "input": step_input.ref.identity}
    if image_id is None:  # nothing to lease: such inputs are rejected or ignored at once
        return _handle(service, step, context, message, step_input, subject)
    key = f"{service.name}:{image_id}"
    try:
        with lease(context.metadata, key, context.settings.lease_seconds) as held:
            if not held:
                return Outcome.TRANSIENT, {**subject, "reason": f"another attempt holds the lease on {key}"}
            return _handle(service, step, context, message, step_input, subject)
    except TransientError as exc:  # the store was unreachable for the lease or for recording a failure
        return Outcome.TRANSIENT, {
            **subject,
            "reason": f"could not record: {exc.message}",
            "error_class": exc.error_class,
        }


def _handle(
    service: Service, step: Step, context: Context, message: PushMessage, step_input: StepInput, subject: dict[str, Any]
) -> tuple[Outcome, dict[str, Any]]:
    """Under the lease: the already-done check, the step's science, and the record of its outcome."""
    image_id = subject["image_id"]
    try:
        if image_id is not None and finished(
            records.step_record(records.image(context.metadata, image_id), step.name), step_input
        ):
            return Outcome.ALREADY_DONE, {**subject, "reason": "already done"}
        work = Work(context, step, step_input, service)
        result = step.do(work)
        if image_id is not None:
            _record_done(context, work, image_id, message.message_id, result)
    except Conflict as exc:
        log(logger, "WARNING", exc.message, input=step_input.ref.identity)
        if image_id is not None:
            _record_conflict(context, work, image_id, message.message_id, exc)
        return Outcome.CONFLICT, {
            **subject,
            "reason": f"conflict: {exc.message}",
            "published": work.publisher.published,
        }
    except InputGone as exc:  # the message names an object (or generation) that is gone for good
        if step.consumes_input and _outputs_exist(work):
            return Outcome.ALREADY_DONE, {**subject, "reason": f"{exc.message}, and its outputs exist"}
        gone = BadInput(exc.message, exc.nested)
        _record_failure(context, service.name, step_input, message.message_id, gone, StepState.REJECTED)
        return Outcome.REJECTED, {**subject, "reason": gone.message, "error_class": "NotFound"}
    except NotFound as exc:
        gone = BadInput(f"{exc.message} (the message names an object that no longer exists)", exc.nested)
        _record_failure(context, service.name, step_input, message.message_id, gone, StepState.REJECTED)
        return Outcome.REJECTED, {**subject, "reason": gone.message, "error_class": "NotFound"}
    except (BadInput, Ignored) as exc:
        _record_failure(context, service.name, step_input, message.message_id, exc, StepState.REJECTED)
        outcome = Outcome.IGNORED if isinstance(exc, Ignored) else Outcome.REJECTED
        return outcome, {**subject, "reason": exc.message, "error_class": exc.error_class}
    except TransientError as exc:
        return Outcome.TRANSIENT, {**subject, "reason": exc.message, "error_class": exc.error_class}
    except Exception as exc:  # a bug: keep the traceback, record it, let Pub/Sub retry
        logger.exception("step %s failed unexpectedly", service.name)
        error = PipelineError(f"{type(exc).__name__}: {exc}", exc)
        try:
            _record_failure(context, service.name, step_input, message.message_id, error, StepState.ERROR)
        except Exception as record_exc:
            log(logger, "ERROR", f"could not record the failure either: {record_exc!r}")
        return Outcome.ERROR, {**subject, "reason": error.message, "error_class": error.error_class}
    return Outcome.DONE, {**subject, "reason": result.reason, "published": work.publisher.published}


def run_step(service: Service, step: Step, context: Context, message: PushMessage) -> Handled:
    """Handle one message with one step and return what happened; never raises."""
    started = time.monotonic()
    with logging_context(step=service.name, message_id=message.message_id):
        try:
            outcome, fields = _execute(service, step, context, message)
        except TransientError as exc:  # the backend failed while recording the outcome
            outcome, fields = (
                Outcome.TRANSIENT,
                {"reason": f"could not record: {exc.message}", "error_class": exc.error_class},
            )
        except Exception as exc:
            logger.exception("recording the outcome of step %s failed", service.name)
            outcome, fields = (
                Outcome.ERROR,
                {"reason": f"{type(exc).__name__}: {exc}", "error_class": type(exc).__name__},
            )
        return Handled(
            step=service.name,
            outcome=outcome,
            message_id=message.message_id,
            duration_ms=(time.monotonic() - started) * 1000,
            **fields,
        )
