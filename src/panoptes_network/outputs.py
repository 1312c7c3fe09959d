"""Writing a step's outputs: create-only, and what an object already under the name means.

A redelivered or concurrent message finds its own earlier output (same content: reuse it);
anything else under the name is never overwritten (kept, for the step to record as a conflict).
"""

from __future__ import annotations

import dataclasses

from .adapters.storage import Storage
from .errors import AlreadyExists
from .fits_codec import same_content
from .messages import ObjectRef

WRITTEN, IDENTICAL, KEPT = "written", "identical", "kept"


@dataclasses.dataclass(frozen=True)
class Stored:
    ref: ObjectRef | None  # the object holding our content; None when a different one was kept
    state: str  # WRITTEN, IDENTICAL or KEPT


def store_output(storage: Storage, bucket: str, name: str, data: bytes, content_type: str) -> Stored:
    """Write ``data`` create-only; reuse an existing object with the same content."""
    try:
        return Stored(storage.write_new(bucket, name, data, content_type), WRITTEN)
    except AlreadyExists:
        existing = storage.stat(bucket, name)
        if existing is not None and same_content(storage.read(existing.ref), data):
            return Stored(existing.ref, IDENTICAL)
        return Stored(None, KEPT)
