"""Find raw objects whose chain never finished: the upstream wish "find the files that were
never processed", answered from the raw bucket and the metadata store.

A `.fits.fz` is finished when its image is solved or unsolved (or rejected, with a reason); a
camera raw when it was converted; a stray `.fits` should not exist for long at all (it is
compressed and deleted); a sequence's end marker when its observation recorded it; anything
else when image-received recorded it as ignored. An observation is a gap when it was ready
long ago (quiet, every frame final) and is still not processed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

from panoptes_network.adapters.metadata import MetadataStore
from panoptes_network.adapters.storage import Storage
from panoptes_network.core import records
from panoptes_network.core.errors import BadInput
from panoptes_network.core.names import FileKind, end_marker_sequence, parse_raw_name
from panoptes_network.core.observations import is_gap
from panoptes_network.core.status import StepState


@dataclasses.dataclass(frozen=True)
class Gap:
    identity: str  # bucket/name#generation
    image_id: str | None
    status: str | None
    why: str


def last_step(image: dict[str, Any]) -> str:
    """Where an image's chain stopped: its latest step, that step's state and error."""
    name = records.latest_step(image)
    if name is None:
        return "no step recorded"
    record = records.step_record(image, name)
    return f"last step {name}: {record.state}" + (f" ({record.error})" if record.error else "")


def kind_of(object_name: str) -> tuple[FileKind, str | None]:
    """What gaps takes a raw object for, and its image id: a name the pipeline cannot parse is
    another object (image-received only records it)."""
    try:
        name = parse_raw_name(object_name)
    except BadInput:
        return FileKind.OTHER, None
    return name.kind, name.image_id


def gap_of(kind: FileKind, identity: str, image: dict[str, Any] | None, seen: bool) -> str | None:
    """Why this object's chain is unfinished, or None when it is finished: from its kind, its
    identity (bucket/name#generation), its image record and whether image-received saw it. A
    conflict is a gap whatever else happened: an output name holds something else, and a person
    must decide."""
    if kind is FileKind.OTHER:
        return None if seen else "never seen by image-received"
    if image is None:
        return "no image record: never routed or never recorded"
    steps = records.steps(image)
    conflicts = [
        f"{name}: {record.conflict}" for name, record in steps.items() if record.state == StepState.CONFLICT.value
    ]
    if conflicts:
        return "conflict in " + "; ".join(conflicts)
    if kind is FileKind.FITS:
        return f"still uncompressed; {last_step(image)}"
    if kind is FileKind.RAW:
        convert = records.step_record(image, "make-rgb-fits")
        if convert.input == identity and convert.state in (StepState.DONE.value, StepState.REJECTED.value):
            return None
        return f"not converted; {last_step(image)}"
    if records.frame_is_final(image):
        return None
    return f"stopped at {image.get('status')}; {last_step(image)}"


def _seen(metadata: MetadataStore, identity: str, doc_id: str, name: str) -> bool:
    """Whether image-received recorded an object it did not route as a frame."""
    sequence_id = end_marker_sequence(name)
    if sequence_id is not None:
        return (records.observation(metadata, sequence_id) or {}).get("end_marker") == identity
    return records.object_record(metadata, doc_id) is not None


def find_gaps(
    storage: Storage, metadata: MetadataStore, raw_bucket: str, quiet: dt.timedelta, now: dt.datetime | None = None
) -> Iterator[Gap]:
    """Every raw object whose chain has not finished, in name order; then every image that
    stopped short of a final status with no raw object left to show it; then every observation
    ready long ago (``quiet`` is the observations' quiet period) and never processed."""
    listed: set[str | None] = set()
    for info in storage.list(raw_bucket):
        ref = info.ref
        kind, image_id = kind_of(ref.name)
        image = records.image(metadata, image_id) if image_id is not None else None
        why = gap_of(kind, ref.identity, image, _seen(metadata, ref.identity, ref.doc_id, ref.name))
        if why is not None:
            listed.add(image_id)
            yield Gap(ref.identity, image_id, (image or {}).get("status"), why)
    for image_id, image in records.images(metadata):
        if image_id not in listed and not records.frame_is_final(image):
            identity = image.get("bucket_path") or "-"
            yield Gap(identity, image_id, image.get("status"), f"stopped at {image.get('status')}; {last_step(image)}")
    when = now or dt.datetime.now(dt.UTC)
    for sequence_id, observation in records.pending_observations(metadata):
        why = is_gap(observation, records.sequence_images(metadata, sequence_id), when, quiet)
        if why is not None:
            yield Gap(f"observations/{sequence_id}", None, observation.get("status"), why)
