"""Run one step on one message: the core that both drivers share.

The Flask service and the embedded runner both call ``run_step``; it knows nothing of HTTP.
It parses the message as the topology says, calls the step, records the outcome on the image
(or on the object when there is no image), and returns a ``Handled`` that the driver maps to
a status code or a summary line. Exceptions are never swallowed: each ends as an outcome
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
from panoptes_network.core.status import ImageStatus, ObjectStatus, StepState, moves_forward
from panoptes_network.core.topology import Service

logger = logging.getLogger(__name__)

StepInput = ObjectEvent | StepMessage

PARSERS: dict[str, Callable[[PushMessage], StepInput]] = {
    "storage-notification": parse_storage_notification,
    "step": parse_step_message,
}


@dataclasses.dataclass(frozen=True)
class StepResult:
    """What a step reports when it did not raise."""

    outcome: Outcome = Outcome.DONE
    reason: str = ""
    published: Mapping[str, str] = dataclasses.field(default_factory=dict)  # topic -> message id
    record: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # extra step-record fields
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # merged into images/{id}
    status: ImageStatus | None = None  # the image's new status (applied only if it moves forward)


@dataclasses.dataclass(frozen=True)
class Step:
    """A step module's entry point: ``handle(context, input) -> StepResult``."""

    name: str
    handle: Callable[[Context, Any], StepResult]


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


def previous_run(context: Context, step: str, image_id: str) -> dict[str, Any]:
    """The step's record on the image from its latest run ({} when it never ran)."""
    return ((context.metadata.get("images", image_id) or {}).get("steps") or {}).get(step) or {}


def done_before(context: Context, step: str, image_id: str, step_input: StepInput) -> bool:
    """Whether the step already finished this exact input (a redelivery answers at once).

    A rerun (``reprocess``) is done only once its own token is recorded; a message without a
    token is done by any finished run of the input, so a late redelivery never repeats work.
    """
    return finished(previous_run(context, step, image_id), step_input)


def finished(record: Mapping[str, Any], step_input: StepInput) -> bool:
    """Whether a step record says this input (and this rerun, if it is one) is done."""
    if record.get("input") != step_input.ref.identity or record.get("state") != StepState.DONE.value:
        return False
    return step_input.rerun is None or record.get("rerun") == step_input.rerun


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
    """Replace the step's record on the image (it describes the latest run, nothing older) and
    merge the step's image fields, in one write: a reader never sees a status without its record.

    The record keeps what rebuilds the step's message (input, extra, rerun), for ``reprocess``."""
    fields = {
        "input": step_input.ref.identity,
        "message_id": message_id,
        "finished": now(),
        "software_version": __version__,
        **({"extra": dict(step_input.extra)} if isinstance(step_input, StepMessage) and step_input.extra else {}),
        **({"rerun": step_input.rerun} if step_input.rerun else {}),
        **record,
    }
    context.metadata.replace_field("images", image_id, ("steps", step), fields, image_fields)


def _record_done(
    context: Context, step: str, step_input: StepInput, image_id: str, message_id: str, result: StepResult
) -> None:
    """The step record, the step's image fields, and the status if it does not move the image
    back. The status is decided on the document as written (a conditional write): the next step,
    already published to, may record a later status between a read and this write."""
    status = result.status

    def fields(image: dict[str, Any]) -> dict[str, Any]:
        forward = status is not None and moves_forward(image.get("status"), status)
        return {**result.fields, **({"status": status.value} if forward else {})}  # type: ignore[union-attr]

    record = {"state": StepState.DONE.value, "published": dict(result.published), **result.record}
    _record_step(context, step, step_input, image_id, message_id, record, fields)


def _record_object(context: Context, step: str, ref: ObjectRef, status: ObjectStatus, reason: str) -> None:
    context.metadata.merge(
        "objects",
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

    def unless_done(image: dict[str, Any]) -> dict[str, Any] | None:
        """An overlapping attempt that finished this input stands: a loser's failure is not recorded."""
        return (
            None
            if finished(((image.get("steps") or {}).get(step)) or {}, step_input)
            else {"status": image_status.value}
        )

    _record_step(context, step, step_input, image_id, message_id, record, unless_done)


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
    """Call the step under its lease and record the outcome."""
    image_id = subject["image_id"]
    try:
        result = step.handle(context, step_input)
        if image_id is not None and result.outcome is Outcome.DONE:
            _record_done(context, service.name, step_input, image_id, message.message_id, result)
    except NotFound as exc:  # the message names an object (or generation) that is gone for good
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
    return result.outcome, {**subject, "reason": result.reason, "published": result.published}


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
