"""image-received: route a new raw-bucket object to the step for its file type.

``.fits`` goes to compression, ``.fits.fz`` to header recording, camera raws to the RGB
step; anything else is recorded as ignored and acknowledged, never retried. A redelivered
notification for an input already routed publishes nothing again.
"""

from __future__ import annotations

from panoptes_network.core import records
from panoptes_network.core.errors import Ignored
from panoptes_network.core.messages import ObjectEvent, StepMessage
from panoptes_network.core.names import FileKind, RawName, parse_raw_name
from panoptes_network.core.status import ImageStatus
from panoptes_network.core.step import Step, StepResult, Work
from panoptes_network.core.step_records import now

NAME = "image-received"

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
    message = StepMessage(event.ref, name.image_id, name.sequence_id, {"file_kind": name.kind.value}, event.rerun)
    work.publish(topic, message)
    return StepResult(reason=f"routed to {topic}", record={"routed_to": topic})


STEP = Step(NAME, do)
