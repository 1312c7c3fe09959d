"""Writing one output: create-only, and what an object already under the name means (the step
shell's writer; the shell decides what a kept object means for the step).

A redelivered or concurrent message finds its own earlier output (same content: reuse it);
anything else under the name is never overwritten (kept, for the step to record as a conflict),
unless the run was asked for to replace it (``reprocess``): then the new content replaces
exactly the generation that was compared, never a newer one.
"""

from __future__ import annotations

import dataclasses

from panoptes_network.adapters.storage import Storage
from panoptes_network.core.errors import AlreadyExists, TransientError
from panoptes_network.core.messages import ObjectRef
from panoptes_network.science.fits_codec import same_content

WRITTEN, IDENTICAL, KEPT, REPLACED = "written", "identical", "kept", "replaced"
CONFLICT = "conflict"  # KEPT, where the name is the step's own: the step shell records a conflict


@dataclasses.dataclass(frozen=True)
class Stored:
    ref: ObjectRef | None  # the object holding our content; None when a different one was kept
    state: str  # WRITTEN, IDENTICAL, KEPT or REPLACED


def store_output(
    storage: Storage, bucket: str, name: str, data: bytes, content_type: str, replace: bool = False
) -> Stored:
    """Write ``data`` create-only; reuse an existing object with the same content; replace a
    different one only when ``replace`` (a ``PreconditionFailed`` if it changed meanwhile)."""
    try:
        return Stored(storage.write_new(bucket, name, data, content_type), WRITTEN)
    except AlreadyExists:
        existing = storage.stat(bucket, name)
        if existing is None:  # deleted since: the next attempt writes it afresh
            raise TransientError(f"{bucket}/{name} vanished while being compared") from None
        if same_content(storage.read(existing.ref), data):
            return Stored(existing.ref, IDENTICAL)
        if replace:
            return Stored(storage.replace(existing.ref, data, content_type), REPLACED)
        return Stored(None, KEPT)
