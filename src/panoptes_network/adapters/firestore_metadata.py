"""The metadata store in Firestore (the cloud, and the local stack via ``FIRESTORE_EMULATOR_HOST``).

Only single-document operations that are exact under redelivery: ``create`` (fails if the
document exists) and ``set(..., merge=True)``; no transactions, which contend and abort on hot
documents. Calls have a bounded retry budget so that an unavailable Firestore shows up as
``TransientError`` well within a push ack deadline. Times come back as
``DatetimeWithNanoseconds``, which compares equal to the aware ``datetime`` that was stored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from google.api_core import exceptions as api
from google.api_core import retry as retries
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from panoptes_network.adapters.metadata import AlsoMerge, Increments
from panoptes_network.core.errors import TransientError
from panoptes_network.core.geo_point import GeoPoint

RETRY_SECONDS = 5.0
CONDITIONAL_ATTEMPTS = 10  # conditional writes read again this often before giving up (transient)
TIMEOUT = 10.0  # the whole call, retries included
RETRY = retries.Retry(predicate=retries.if_transient_error, initial=0.2, maximum=2.0, timeout=RETRY_SECONDS)
TRANSIENT = (
    api.ServiceUnavailable,
    api.InternalServerError,
    api.TooManyRequests,
    api.Aborted,
    api.DeadlineExceeded,
    api.GatewayTimeout,
    api.RetryError,
)


def _to_firestore(value: Any) -> Any:
    """Our value types in Firestore's (GeoPoint), recursively."""
    if isinstance(value, GeoPoint):
        return firestore.GeoPoint(value.latitude, value.longitude)
    if isinstance(value, Mapping):
        return {key: _to_firestore(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_firestore(item) for item in value]
    return value


def _from_firestore(value: Any) -> Any:
    if isinstance(value, firestore.GeoPoint):
        return GeoPoint(value.latitude, value.longitude)
    if isinstance(value, dict):
        return {key: _from_firestore(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_firestore(item) for item in value]
    return value


def _leaves(fields: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(field path, value) of the values in nested maps (an empty map is itself a value)."""
    for key, value in fields.items():
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _replacing(path: tuple[str, ...], value: Any, also_merge: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
    """Field path -> value: ``path`` whole, and the leaves of ``also_merge`` outside it."""
    writes = {leaf: item for leaf, item in _leaves(_to_firestore(also_merge)) if leaf[: len(path)] != path}
    return {**writes, path: _to_firestore(value)}


def _nested(writes: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    """The field paths and values as one nested map (for set and create)."""
    document: dict[str, Any] = {}
    for leaf, item in writes.items():
        node = document
        for key in leaf[:-1]:
            node = node.setdefault(key, {})
        node[leaf[-1]] = item
    return document


@contextlib.contextmanager
def _errors(what: str) -> Iterator[None]:
    try:
        yield
    except TRANSIENT as exc:
        raise TransientError(f"{what}: Firestore unavailable ({type(exc).__name__}: {exc})", exc) from exc


class FirestoreMetadata:
    """Implements ``MetadataStore`` with one Firestore client per instance, created on first use."""

    def __init__(self, project: str, client: firestore.Client | None = None) -> None:
        self.project = project
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> firestore.Client:
        with self._lock:
            if self._client is None:
                self._client = firestore.Client(project=self.project)
            return self._client

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        with _errors(f"get {collection}/{doc_id}"):
            snapshot = self.client.collection(collection).document(doc_id).get(retry=RETRY, timeout=TIMEOUT)
        return _from_firestore(snapshot.to_dict()) if snapshot.exists else None

    def create(self, collection: str, doc_id: str, fields: Mapping[str, Any]) -> bool:
        with _errors(f"create {collection}/{doc_id}"):
            try:
                self.client.collection(collection).document(doc_id).create(
                    _to_firestore(fields), retry=RETRY, timeout=TIMEOUT
                )
            except api.Conflict:  # AlreadyExists is a Conflict
                return False
        return True

    def merge(self, collection: str, doc_id: str, fields: Mapping[str, Any]) -> None:
        with _errors(f"merge {collection}/{doc_id}"):
            document = self.client.collection(collection).document(doc_id)
            document.set(_to_firestore(fields), merge=True, retry=RETRY, timeout=TIMEOUT)

    def replace_field(
        self, collection: str, doc_id: str, path: tuple[str, ...], value: Any, also_merge: AlsoMerge | None = None
    ) -> None:
        """Fixed fields: one set() whose merge list names ``path`` (replaced whole) and every
        leaf of ``also_merge`` (so those merge key by key, as merge=True would). Fields decided
        from the document: read, decide, then update on the condition that the document is
        still the version read (create if it was missing); another write in between: again."""
        document = self.client.collection(collection).document(doc_id)
        what = f"replace {collection}/{doc_id}.{'.'.join(path)}"
        if not callable(also_merge):
            with _errors(what):
                writes = _replacing(path, value, also_merge or {})
                merge = [FieldPath(*leaf) for leaf in writes]
                # set() documents and passes on a list of field paths (to a batch typed bool | list), but is typed bool
                document.set(_nested(writes), merge=merge, retry=RETRY, timeout=TIMEOUT)  # type: ignore[arg-type]
            return
        for _ in range(CONDITIONAL_ATTEMPTS):
            with _errors(what):
                snapshot = document.get(retry=RETRY, timeout=TIMEOUT)
                current = _from_firestore(snapshot.to_dict() or {}) if snapshot.exists else {}
                decided = also_merge(current)
                if decided is None:
                    return
                writes = _replacing(path, value, decided)
                try:
                    if snapshot.exists:
                        option = self.client.write_option(last_update_time=snapshot.update_time)
                        updates = {FieldPath(*leaf).to_api_repr(): item for leaf, item in writes.items()}
                        document.update(updates, option=option, retry=RETRY, timeout=TIMEOUT)
                    else:
                        document.create(_nested(writes), retry=RETRY, timeout=TIMEOUT)
                    return
                except (api.Conflict, api.FailedPrecondition):
                    continue  # written by someone else since the read: decide again
        raise TransientError(f"{what}: the document kept changing ({CONDITIONAL_ATTEMPTS} attempts)")

    def claim_lease(self, collection: str, doc_id: str, holder: str, now: dt.datetime, expires: dt.datetime) -> bool:
        """Create the lease, or take over an expired one with an update conditioned on the
        version read (another worker's takeover in between fails the precondition)."""
        document = self.client.collection(collection).document(doc_id)
        lease = {"holder": holder, "expires": expires}
        with _errors(f"claim {collection}/{doc_id}"):
            try:
                document.create(lease, retry=RETRY, timeout=TIMEOUT)
                return True
            except api.Conflict:
                pass
            snapshot = document.get(retry=RETRY, timeout=TIMEOUT)
            current = snapshot.to_dict() if snapshot.exists else None
            if current is not None and current["holder"] != holder and current["expires"] > now:
                return False
            option = self.client.write_option(last_update_time=snapshot.update_time) if snapshot.exists else None
            try:
                if option is None:
                    document.create(lease, retry=RETRY, timeout=TIMEOUT)
                else:
                    document.update(lease, option=option, retry=RETRY, timeout=TIMEOUT)
            except (api.Conflict, api.FailedPrecondition, api.NotFound):
                return False  # someone else took it (or gave it up) in between
        return True

    def release_lease(self, collection: str, doc_id: str, holder: str) -> None:
        document = self.client.collection(collection).document(doc_id)
        with _errors(f"release {collection}/{doc_id}"):
            snapshot = document.get(retry=RETRY, timeout=TIMEOUT)
            if snapshot.exists and (snapshot.to_dict() or {}).get("holder") == holder:
                option = self.client.write_option(last_update_time=snapshot.update_time)
                with contextlib.suppress(api.FailedPrecondition, api.NotFound):  # taken over after it expired
                    document.delete(option=option, retry=RETRY, timeout=TIMEOUT)

    def create_with_increments(
        self, collection: str, doc_id: str, fields: Mapping[str, Any], increments: Increments
    ) -> bool:
        """One batched write: its create precondition fails the whole batch, increments included."""
        batch = self.client.batch()
        batch.create(self.client.collection(collection).document(doc_id), _to_firestore(fields))
        for (target, target_id), amounts in increments.items():
            document = self.client.collection(target).document(target_id)
            batch.set(document, {key: firestore.Increment(value) for key, value in amounts.items()}, merge=True)
        with _errors(f"create {collection}/{doc_id} with increments"):
            try:
                batch.commit(retry=RETRY, timeout=TIMEOUT)
            except api.Conflict:
                return False
        return True

    def list(
        self, collection: str, where: Mapping[str, Any] | None = None, limit: int | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        query: Any = self.client.collection(collection)
        for key, value in (where or {}).items():
            query = query.where(filter=FieldFilter(key, "==", value))
        query = query.order_by(FieldPath.document_id())
        if limit is not None:
            query = query.limit(limit)
        with _errors(f"list {collection}"):
            return [(doc.id, _from_firestore(doc.to_dict())) for doc in query.stream(retry=RETRY, timeout=TIMEOUT)]
