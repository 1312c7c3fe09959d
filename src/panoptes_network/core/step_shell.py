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
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from panoptes_network.core import records
from panoptes_network.core.context import Context
from panoptes_network.core.errors import BadInput, Ignored, MalformedRequest, NotFound, PipelineError, TransientError
from panoptes_network.core.leases import lease
from panoptes_network.core.logs import add_context, log, logging_context
from panoptes_network.core.messages import (
    PushMessage,
    parse_observation_message,
    parse_step_message,
    parse_storage_notification,
    parse_sweep_tick,
)
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.status import StepState
from panoptes_network.core.step import (
    Conflict,
    InputGone,
    Step,
    StepInput,
    Work,
    image_id_of,
    lease_subject,
    subject_of,
)
from panoptes_network.core.step_records import finished, record_conflict, record_done, record_failure
from panoptes_network.core.topology import Service

logger = logging.getLogger(__name__)


PARSERS: dict[str, Callable[[PushMessage], StepInput]] = {
    "storage-notification": parse_storage_notification,
    "step": parse_step_message,
    "observation": parse_observation_message,
    "sweep": parse_sweep_tick,
}


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
    subject = {"image_id": image_id, "input": subject_of(step_input)}
    leased = lease_subject(step_input)
    if leased is None:  # nothing to lease: such inputs are rejected or ignored at once
        return _handle(service, step, context, message, step_input, subject)
    key = f"{service.name}:{leased}"
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
        if step.done is not None:
            done = step.done(context, step_input)
        else:
            done = image_id is not None and finished(
                records.step_record(records.image(context.metadata, image_id), step.name), step_input
            )
        if done:
            return Outcome.ALREADY_DONE, {**subject, "reason": "already done"}
        work = Work(context, step, step_input, service)
        result = step.do(work)
        if image_id is not None:
            record_done(context, work, image_id, message.message_id, result)
    except Conflict as exc:
        log(logger, "WARNING", exc.message, input=subject["input"])
        if image_id is not None:
            record_conflict(context, work, image_id, message.message_id, exc)
        return Outcome.CONFLICT, {
            **subject,
            "reason": f"conflict: {exc.message}",
            "published": work.publisher.published,
        }
    except InputGone as exc:  # the message names an object (or generation) that is gone for good
        if step.consumes_input and _outputs_exist(work):
            return Outcome.ALREADY_DONE, {**subject, "reason": f"{exc.message}, and its outputs exist"}
        gone = BadInput(exc.message, exc.nested)
        record_failure(
            context, service.name, step_input, message.message_id, gone, StepState.REJECTED, step.observation_field
        )
        return Outcome.REJECTED, {**subject, "reason": gone.message, "error_class": "NotFound"}
    except NotFound as exc:
        gone = BadInput(f"{exc.message} (the message names an object that no longer exists)", exc.nested)
        record_failure(
            context, service.name, step_input, message.message_id, gone, StepState.REJECTED, step.observation_field
        )
        return Outcome.REJECTED, {**subject, "reason": gone.message, "error_class": "NotFound"}
    except (BadInput, Ignored) as exc:
        record_failure(
            context, service.name, step_input, message.message_id, exc, StepState.REJECTED, step.observation_field
        )
        outcome = Outcome.IGNORED if isinstance(exc, Ignored) else Outcome.REJECTED
        return outcome, {**subject, "reason": exc.message, "error_class": exc.error_class}
    except TransientError as exc:
        return Outcome.TRANSIENT, {**subject, "reason": exc.message, "error_class": exc.error_class}
    except Exception as exc:  # a bug: keep the traceback, record it, let Pub/Sub retry
        logger.exception("step %s failed unexpectedly", service.name)
        detail = str(exc) or ("the step needs more memory than it may use" if isinstance(exc, MemoryError) else "")
        error = PipelineError(f"{type(exc).__name__}: {detail}", exc)
        try:
            record_failure(
                context, service.name, step_input, message.message_id, error, StepState.ERROR, step.observation_field
            )
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
