"""Object storage: the interface every step uses, with Cloud Storage and folder implementations.

Inputs are always read at an exact generation, outputs are written create-only, and deletes
carry a generation precondition, so that a newer upload of the same name is never touched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Protocol

from panoptes_network.core.errors import NotFound, PreconditionFailed
from panoptes_network.core.messages import ObjectRef


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """What a listing or a stat says about the live generation of an object."""

    ref: ObjectRef
    size: int
    content_type: str | None = None
    updated: dt.datetime | None = None


class Storage(Protocol):
    """Buckets of objects with generations.

    Errors: ``NotFound`` (no such object or generation), ``AlreadyExists`` (create-only write
    found an object), ``PreconditionFailed`` (generation mismatch), ``TransientError``
    (backend unavailable; worth a retry).
    """

    def read(self, ref: ObjectRef) -> bytes:
        """The whole content of exactly this generation."""
        ...

    def read_range(self, ref: ObjectRef, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of exactly this generation (shorter at the end of the object)."""
        ...

    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        """The live generation of an object, or None when there is none."""
        ...

    def write_new(self, bucket: str, name: str, data: bytes, content_type: str | None = None) -> ObjectRef:
        """Create an object that must not exist yet; return its new generation."""
        ...

    def replace(self, ref: ObjectRef, data: bytes, content_type: str | None = None) -> ObjectRef:
        """Overwrite the object only if its live generation is ``ref.generation``; return the new one."""
        ...

    def delete(self, ref: ObjectRef) -> None:
        """Delete the object only if its live generation is ``ref.generation``."""
        ...

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Live objects whose name starts with ``prefix``, in name order."""
        ...


def require_live_generation(storage: Storage, ref: ObjectRef) -> ObjectInfo:
    """The live object, if it is exactly ``ref``; else ``NotFound`` or ``PreconditionFailed``.

    Backends that cannot make a delete conditional (folders, fake-gcs-server) check this first.
    """
    info = storage.stat(ref.bucket, ref.name)
    if info is None:
        raise NotFound(f"{ref.identity} does not exist")
    if info.ref.generation != ref.generation:
        raise PreconditionFailed(
            f"{ref.bucket}/{ref.name} is at generation {info.ref.generation}, not {ref.generation}"
        )
    return info
