"""image-received: route a new raw-bucket object to the step for its file type.

``.fits`` goes to compression, ``.fits.fz`` to header recording, camera raws to the RGB
step; anything else is recorded as ignored and acknowledged, never retried. A redelivered
notification for an input already routed publishes nothing again.

Each frame marks its observation pending (``last_arrival``), for the sweep. A sequence's end
marker (``{sequence folder}/sequence-complete.json``) is recorded on the observation and
publishes ``process-observation`` at once.
"""

from __future__ import annotations

from panoptes_network.core import records
from panoptes_network.core.errors import Ignored
from panoptes_network.core.messages import ObjectEvent, ObservationMessage, StepMessage
from panoptes_network.core.names import FileKind, RawName, end_marker_sequence, parse_raw_name
from panoptes_network.core.observations import END_MARKER_REASON
from panoptes_network.core.status import ImageStatus
from panoptes_network.core.step import Step, StepResult, Work
from panoptes_network.core.step_records import now

NAME = "image-received"
OBSERVATION_TOPIC = "process-observation"

ROUTES: dict[FileKind, str] = {
    FileKind.FITS: "compress-fits",
    FileKind.FITS_FZ: "record-image",
    FileKind.RAW: "make-rgb-fits",
}


def route_for(name: RawName) -> str:
    """The topic for a parsed raw name, or ``Ignored`` saying why it has none. Pointing images
    go the same way as science frames: record-image records them as ``frame_type`` pointing."""
    try:
        return ROUTES[name.kind]
    except KeyError:
        shown = f".{name.extension}" if name.extension else "no extension"
        raise Ignored(f"file type {shown} is not processed (expected .fits, .fits.fz or a camera raw)") from None


def do(work: Work) -> StepResult:
    event: ObjectEvent = work.message
    raw_bucket = work.context.settings.bucket("raw")
    if event.ref.bucket != raw_bucket:
        raise Ignored(f"bucket {event.ref.bucket} is not the raw bucket {raw_bucket}")
    sequence_id = end_marker_sequence(event.ref.name)
    if sequence_id is not None:
        return end_of_sequence(work, sequence_id)
    name = parse_raw_name(event.ref.name)
    topic = route_for(name)
    records.create_image(
        work.context.metadata,
        name.image_id,
        {
            "image_id": name.image_id,
            "sequence_id": name.sequence_id,
            "unit_id": name.unit_id,
            "camera_id": name.camera_id,
            "time": name.image_time,
            "status": ImageStatus.RECEIVED.value,
            "received": now(),
        },
    )
    records.frame_arrived(work.context.metadata, name.sequence_id, now())
    message = StepMessage(event.ref, name.image_id, name.sequence_id, {"file_kind": name.kind.value}, event.rerun)
    work.publish(topic, message)
    return StepResult(reason=f"routed to {topic}", record={"routed_to": topic})


def end_of_sequence(work: Work, sequence_id: str) -> StepResult:
    """The unit says the sequence is over: record it and have the observation processed now."""
    event: ObjectEvent = work.message
    records.merge_observation(
        work.context.metadata,
        sequence_id,
        {"sequence_id": sequence_id, "end_marker": event.ref.identity, "end_marker_time": now()},
    )
    work.publish(OBSERVATION_TOPIC, ObservationMessage(sequence_id, END_MARKER_REASON))
    return StepResult(reason=f"end marker of {sequence_id}: published {OBSERVATION_TOPIC}")


STEP = Step(NAME, do)
