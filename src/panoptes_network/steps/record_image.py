"""record-image: the FITS header of a ``.fits.fz`` into the metadata store, then on to
background subtraction.

Only the header blocks are read (ranged reads), never the pixels. The unit is created once,
the observation and image are merged (idempotent; the image with its ``frame_type``), and the
counters (images, images of each frame type, and exposure time per observation and unit) are added in one atomic write together with a per-image marker, so
that a redelivered or concurrent message counts nothing twice. The next step is told only
after all of that is written.
"""

from __future__ import annotations

import logging
from functools import partial

from panoptes_network.core import records
from panoptes_network.core.errors import BadInput
from panoptes_network.core.logs import log
from panoptes_network.core.names import parse_raw_name
from panoptes_network.core.status import ImageStatus
from panoptes_network.core.step import INPUT, Step, StepResult, Work
from panoptes_network.science.fits_header import read_image_header
from panoptes_network.science.header_metadata import header_id_mismatches, image_fields, observation_fields, unit_fields

NAME = "record-image"
NEXT_TOPIC = "subtract-background"
logger = logging.getLogger(__name__)


def do(work: Work) -> StepResult:
    context, message = work.context, work.message
    ref = message.ref
    name = parse_raw_name(ref.name)
    header, bytes_read, size_needed = read_image_header(partial(work.read_range, INPUT), ref.identity)
    info = context.storage.stat(ref.bucket, ref.name)
    if info is not None and info.ref.generation == ref.generation and info.size < size_needed:
        raise BadInput(f"{ref.identity} is truncated: {info.size} bytes where its headers describe {size_needed}")
    warnings = header_id_mismatches(header, name)
    for warning in warnings:
        log(logger, "WARNING", f"header disagrees with path: {warning}", input=ref.identity)

    image = image_fields(header, name)
    context.metadata.create(records.UNITS, name.unit_id, unit_fields(header, name))
    context.metadata.merge(records.OBSERVATIONS, name.sequence_id, observation_fields(header, name))
    records.merge_image(
        context.metadata,
        name.image_id,
        {**image, "bucket_path": f"{ref.bucket}/{ref.name}", "generation": ref.generation},
    )
    exptime = image["exptime"] or 0.0
    frame_type = image["frame_type"]
    counts = {"num_images": 1, "total_exptime": exptime, records.frame_count_field(frame_type): 1}
    counted = context.metadata.create_with_increments(
        records.COUNTED_IMAGES,
        name.image_id,
        {"sequence_id": name.sequence_id, "unit_id": name.unit_id, "exptime": exptime, "frame_type": frame_type},
        {(records.OBSERVATIONS, name.sequence_id): counts, (records.UNITS, name.unit_id): counts},
    )
    work.publish(NEXT_TOPIC, message.then(ref, {"file_kind": name.kind.value}))
    return StepResult(
        reason=f"{frame_type} frame: {len(header)} cards recorded from {bytes_read} bytes",
        record={"header_bytes_read": bytes_read, "cards": len(header), "counted": counted, "warnings": warnings},
        status=ImageStatus.RECORDED,
    )


STEP = Step(NAME, do)
