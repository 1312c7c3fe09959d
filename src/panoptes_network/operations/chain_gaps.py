"""Find raw objects whose chain never finished: the upstream wish "find the files that were
never processed", answered from the raw bucket and the metadata store.

A `.fits.fz` is finished when its image is solved or unsolved (or rejected, with a reason); a
camera raw when it was converted; a stray `.fits` should not exist for long at all (it is
compressed and deleted); anything else when image-received recorded it as ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from panoptes_network.adapters.metadata import MetadataStore
from panoptes_network.adapters.storage import Storage
from panoptes_network.core import records
from panoptes_network.core.errors import BadInput
from panoptes_network.core.names import FileKind, parse_raw_name
from panoptes_network.core.status import ImageStatus, StepState

FINISHED = {ImageStatus.SOLVED.value, ImageStatus.UNSOLVED.value, ImageStatus.REJECTED.value}


@dataclasses.dataclass(frozen=True)
class Gap:
    identity: str  # bucket/name#generation
    image_id: str | None
    status: str | None
    why: str


def _last_step(image: dict[str, Any]) -> str:
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
        return f"still uncompressed; {_last_step(image)}"
    if kind is FileKind.RAW:
        convert = records.step_record(image, "make-rgb-fits")
        if convert.input == identity and convert.state in (StepState.DONE.value, StepState.REJECTED.value):
            return None
        return f"not converted; {_last_step(image)}"
    if image.get("status") in FINISHED:
        return None
    return f"stopped at {image.get('status')}; {_last_step(image)}"


def find_gaps(storage: Storage, metadata: MetadataStore, raw_bucket: str) -> Iterator[Gap]:
    """Every raw object whose chain has not finished, in name order."""
    for info in storage.list(raw_bucket):
        ref = info.ref
        kind, image_id = kind_of(ref.name)
        image = records.image(metadata, image_id) if image_id is not None else None
        seen = records.object_record(metadata, ref.doc_id) is not None
        why = gap_of(kind, ref.identity, image, seen)
        if why is not None:
            yield Gap(ref.identity, image_id, (image or {}).get("status"), why)
