"""Buckets in Cloud Storage (or fake-gcs-server): the cloud and local-stack storage.

Every call has a short socket timeout and a bounded retry budget, so that a request that cannot
be served fails as ``TransientError`` well within a push ack deadline (30 s) and Pub/Sub's
redelivery does the long-term retrying.

fake-gcs-server, unlike Cloud Storage, ignores delete preconditions; ``delete`` therefore also
checks the live generation itself first (Cloud Storage then enforces it atomically). Reads ask
for the exact generation and check the generation the server says it served.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import requests
import urllib3
from google.api_core import exceptions as api
from google.auth.exceptions import TransportError
from google.cloud.storage import Blob, Client
from google.cloud.storage.retry import DEFAULT_RETRY
from google.resumable_media.common import DataCorruption

from panoptes_network.adapters.storage import ObjectInfo, require_live_generation
from panoptes_network.core.errors import AlreadyExists, NotFound, PreconditionFailed, TransientError
from panoptes_network.core.messages import ObjectRef

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
RETRY_SECONDS = 5.0
# Worst case per call: the retry budget plus one last attempt's timeouts, about 18 s.
TIMEOUT = (CONNECT_TIMEOUT, READ_TIMEOUT)
RETRY = DEFAULT_RETRY.with_timeout(RETRY_SECONDS).with_delay(initial=0.2, maximum=2.0)

TRANSIENT = (
    api.ServiceUnavailable,
    api.InternalServerError,
    api.BadGateway,
    api.TooManyRequests,
    api.GatewayTimeout,
    api.DeadlineExceeded,
    api.RetryError,
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    TransportError,
    ConnectionError,
    DataCorruption,
)


@contextlib.contextmanager
def _errors(
    what: str, on_precondition: type[AlreadyExists | PreconditionFailed] = PreconditionFailed
) -> Iterator[None]:
    """Say Cloud Storage's failures in the pipeline's terms."""
    try:
        yield
    except api.NotFound as exc:
        raise NotFound(f"{what}: not found", exc) from exc
    except api.PreconditionFailed as exc:
        raise on_precondition(f"{what}: precondition failed", exc) from exc
    except TRANSIENT as exc:
        raise TransientError(f"{what}: storage unavailable ({type(exc).__name__}: {exc})", exc) from exc


def _info(blob: Blob) -> ObjectInfo:
    ref = ObjectRef(blob.bucket.name, blob.name, int(blob.generation))
    return ObjectInfo(ref, int(blob.size), blob.content_type, blob.updated)


class GcsStorage:
    """Implements ``Storage`` with google-cloud-storage (``STORAGE_EMULATOR_HOST`` for fake-gcs-server)."""

    def __init__(self, client: Client | None = None) -> None:
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Client:
        """Created on first use, so that building the adapter never touches the network."""
        with self._lock:
            if self._client is None:
                self._client = Client()
            return self._client

    def _download(self, ref: ObjectRef, start: int | None = None, end: int | None = None) -> bytes:
        blob = self.client.bucket(ref.bucket).blob(ref.name, generation=ref.generation)
        with _errors(ref.identity):
            data: bytes = blob.download_as_bytes(start=start, end=end, timeout=TIMEOUT, retry=RETRY)
        # The served generation comes back in X-Goog-Generation; never accept another one.
        if blob.generation != ref.generation:
            raise NotFound(f"{ref.identity}: the server served generation {blob.generation}")
        return data

    def read(self, ref: ObjectRef) -> bytes:
        return self._download(ref)

    def read_range(self, ref: ObjectRef, start: int, end: int) -> bytes:
        # Cloud Storage's ``end`` is inclusive, and a range starting at or past the end is a 416.
        try:
            if start < end:
                return self._download(ref, start, end - 1)
        except api.RequestRangeNotSatisfiable:
            pass
        self._stat_generation(ref)
        return b""

    def _stat_generation(self, ref: ObjectRef) -> None:
        """``NotFound`` unless this exact generation exists."""
        with _errors(ref.identity):
            blob = self.client.bucket(ref.bucket).get_blob(
                ref.name, generation=ref.generation, timeout=TIMEOUT, retry=RETRY
            )
        if blob is None or blob.generation != ref.generation:
            raise NotFound(f"{ref.identity}: that generation does not exist")

    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        with _errors(f"{bucket}/{name}"):
            blob = self.client.bucket(bucket).get_blob(name, timeout=TIMEOUT, retry=RETRY)
        return None if blob is None else _info(blob)

    def write_new(self, bucket: str, name: str, data: bytes, content_type: str | None = None) -> ObjectRef:
        # fake-gcs-server ignores ifGenerationMatch=0 on resumable uploads (the client's choice
        # above 8 MB): check first, as delete does; Cloud Storage enforces it atomically anyway.
        if self.stat(bucket, name) is not None:
            raise AlreadyExists(f"{bucket}/{name} already exists")
        return self._upload(bucket, name, data, content_type, 0, AlreadyExists)

    def replace(self, ref: ObjectRef, data: bytes, content_type: str | None = None) -> ObjectRef:
        require_live_generation(self, ref)  # fake-gcs-server may not enforce the precondition below
        return self._upload(ref.bucket, ref.name, data, content_type, ref.generation, PreconditionFailed)

    def _upload(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str | None,
        if_generation_match: int,
        on_precondition: type[AlreadyExists | PreconditionFailed],
    ) -> ObjectRef:
        """One upload under a generation precondition (0: the object must not exist)."""
        blob = self.client.bucket(bucket).blob(name)
        with _errors(f"{bucket}/{name}", on_precondition=on_precondition):
            blob.upload_from_string(
                data,
                content_type=content_type or "application/octet-stream",
                if_generation_match=if_generation_match,
                timeout=TIMEOUT,
                retry=RETRY,
            )
        return ObjectRef(bucket, name, int(blob.generation))

    def delete(self, ref: ObjectRef) -> None:
        require_live_generation(self, ref)
        with _errors(ref.identity):
            self.client.bucket(ref.bucket).blob(ref.name).delete(
                if_generation_match=ref.generation, timeout=TIMEOUT, retry=RETRY
            )

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        with _errors(f"{bucket}/{prefix}*"):
            for blob in self.client.list_blobs(bucket, prefix=prefix or None, timeout=TIMEOUT, retry=RETRY):
                yield _info(blob)
