"""The step record: what the shell writes on the image (or the object) after each run, and
when a record says an input is already done. Records are decided on the document as written,
so an image's status never moves back and a loser's failure never undoes a winner.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from panoptes_network import __version__
from panoptes_network.adapters.metadata import AlsoMerge
from panoptes_network.core import records
from panoptes_network.core.context import Context
from panoptes_network.core.errors import Ignored, PipelineError
from panoptes_network.core.messages import (
    ObjectRef,
    ObservationMessage,
    StepMessage,
    SweepTick,
)
from panoptes_network.core.records import StepRecord
from panoptes_network.core.status import ImageStatus, ObjectStatus, ObservationStatus, StepState, moves_forward
from panoptes_network.core.step import Conflict, StepInput, StepResult, Work, image_id_of, subject_of


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def extra_of(step_input: StepInput) -> dict[str, Any]:
    return dict(step_input.extra) if isinstance(step_input, StepMessage) else {}


def finished(record: StepRecord, step_input: StepInput) -> bool:
    """Whether a step record says this input (with these extras, and this rerun if it is one) is done.

    A rerun (``reprocess``) is done only once its own token is recorded; a message without a
    token is done by any finished run of the input, so a late redelivery never repeats work. The
    extras count: plate-solver told of a new background file runs again."""
    if record.input != subject_of(step_input) or record.state != StepState.DONE.value:
        return False
    if record.extra != extra_of(step_input):
        return False
    return step_input.rerun is None or record.rerun == step_input.rerun


def record_step(
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
        "input": subject_of(step_input),
        "message_id": message_id,
        "finished": now(),
        "software_version": __version__,
        **({"extra": extra} if extra else {}),
        **({"rerun": step_input.rerun} if step_input.rerun else {}),
        **record,
    }
    records.replace_step_record(context.metadata, image_id, step, fields, image_fields)


def record_done(context: Context, work: Work, image_id: str, message_id: str, result: StepResult) -> None:
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
    record_step(context, work.step.name, work.message, image_id, message_id, record, fields)


def unless_done(step: str, step_input: StepInput, fields: Mapping[str, Any]) -> AlsoMerge:
    """An overlapping attempt that finished this input stands: a loser's failure is not recorded."""

    def decide(image: dict[str, Any]) -> Mapping[str, Any] | None:
        return None if finished(records.step_record(image, step), step_input) else fields

    return decide


def record_object(context: Context, step: str, ref: ObjectRef, status: ObjectStatus, reason: str) -> None:
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


def record_failure(
    context: Context,
    step: str,
    step_input: StepInput,
    message_id: str,
    error: PipelineError,
    state: StepState,
    observation_field: str | None = None,
) -> None:
    """Record a rejection or an error where people will look for it (an observation step's
    ``observation_field``, when it has one, else the observation's status)."""
    if isinstance(step_input, SweepTick):  # nothing to record on: the log line says it
        return
    if isinstance(step_input, ObservationMessage):
        record_observation_failure(context, step, step_input, message_id, error, state, observation_field)
        return
    image_id = image_id_of(step_input)
    if image_id is None or isinstance(error, Ignored):
        status = ObjectStatus.IGNORED if isinstance(error, Ignored) else ObjectStatus.REJECTED
        record_object(context, step, step_input.ref, status, error.message)
        return
    image_status = ImageStatus.REJECTED if state is StepState.REJECTED else ImageStatus.ERROR
    record = {**error.details, "state": state.value, "error_class": error.error_class, "error": error.message}
    record_step(
        context,
        step,
        step_input,
        image_id,
        message_id,
        record,
        unless_done(step, step_input, {"status": image_status.value}),
    )


def record_conflict(context: Context, work: Work, image_id: str, message_id: str, conflict: Conflict) -> None:
    """``state: conflict`` with the outputs as found; the image's status stays where it was."""
    record = {
        "state": StepState.CONFLICT.value,
        "conflict": conflict.message,
        "outputs": work.outputs,
        "published": dict(work.publisher.published),
    }
    record_step(
        context,
        work.step.name,
        work.message,
        image_id,
        message_id,
        record,
        unless_done(work.step.name, work.message, {}),
    )


def record_observation_failure(
    context: Context,
    step: str,
    message: ObservationMessage,
    message_id: str,
    error: PipelineError,
    state: StepState,
    field: str | None = None,
) -> None:
    """``status: error`` and why on the observation (it stays pending: the sweep or a retry runs it
    again); for a step with its own ``field``, ``{field: {status: error, reason, error}}`` instead."""
    failure = {"step": step, "state": state.value, "error_class": error.error_class, "message_id": message_id}
    status = {"status": ObservationStatus.ERROR.value, "reason": error.message, "error": failure}
    if field:  # replaced as a whole: nothing of an earlier run's outcome stays beside the error
        records.decide_observation(context.metadata, message.sequence_id, field, status, {})
    else:
        records.merge_observation(context.metadata, message.sequence_id, status)
