"""The metadata store: documents in flat collections (Firestore in the cloud, SQLite locally).

The interface is deliberately small and made of operations that are exact under redelivery
without contended transactions (the Firestore emulator aborts those): ``create`` succeeds once,
``merge`` is idempotent. Values are JSON-like plus timezone-aware ``datetime``; nested maps
merge key by key, as Firestore's ``set(..., merge=True)`` does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Protocol

# (collection, document id) -> {field: amount}
Increments = Mapping[tuple[str, str], Mapping[str, float]]
# Fields to merge, fixed or decided from the document as it is when written (None: write nothing).
AlsoMerge = Mapping[str, Any] | Callable[[dict[str, Any]], Mapping[str, Any] | None]


class MetadataStore(Protocol):
    """Errors: ``TransientError`` when the backend is unavailable."""

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        """The document, or None."""
        ...

    def create(self, collection: str, doc_id: str, fields: Mapping[str, Any]) -> bool:
        """Create the document if it does not exist; True when this call created it."""
        ...

    def merge(self, collection: str, doc_id: str, fields: Mapping[str, Any]) -> None:
        """Create or update the document, merging nested maps key by key."""
        ...

    def replace_field(
        self, collection: str, doc_id: str, path: tuple[str, ...], value: Any, also_merge: AlsoMerge | None = None
    ) -> None:
        """Set one (nested) field to ``value`` as a whole, not merged with what was there, and
        merge ``also_merge`` as ``merge`` does, in one atomic write (readers never see one
        without the other); the rest of the document is kept, and it is created when missing.

        ``also_merge`` may be a function of the current document ({} when missing): the write
        then applies only if the document is still as the function saw it (read again and
        retried otherwise; ``TransientError`` if it keeps changing), so a decision such as
        "move the status forward only" cannot be undone by a concurrent writer. When it
        returns None nothing is written (not even ``value``)."""
        ...

    def claim_lease(self, collection: str, doc_id: str, holder: str, now: dt.datetime, expires: dt.datetime) -> bool:
        """Take the lease ``doc_id`` for ``holder`` until ``expires`` if nobody else holds it past
        ``now``; True when taken. One precondition write: no contended transaction."""
        ...

    def release_lease(self, collection: str, doc_id: str, holder: str) -> None:
        """Give the lease up, if ``holder`` still holds it (else leave it to its new holder)."""
        ...

    def create_with_increments(
        self, collection: str, doc_id: str, fields: Mapping[str, Any], increments: Increments
    ) -> bool:
        """Atomically create a marker document and add ``increments`` to other documents
        (created when missing); if the marker exists, change nothing and return False.

        This is how counters stay exact under redelivery, concurrency and crashes: the marker
        says "counted" in the same write that counts.
        """
        ...

    def list(
        self, collection: str, where: Mapping[str, Any] | None = None, limit: int | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """(id, document) pairs whose top-level fields equal ``where``, ordered by id."""
        ...


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into ``base`` the way Firestore merges: maps recursively, the rest replaced."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = dict(value) if isinstance(value, Mapping) else value
    return merged
