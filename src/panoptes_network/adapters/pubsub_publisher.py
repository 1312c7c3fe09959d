"""Publishing to Pub/Sub topics (the cloud and the local stack, via ``PUBSUB_EMULATOR_HOST``).

``publish`` waits for the server's acknowledgement within a bounded time: a step that says it
published must have published, and one that cannot must fail as ``TransientError`` (HTTP 503)
before its own push ack deadline, so that the message that triggered it comes back.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from google.api_core import exceptions as api
from google.api_core import retry as retries
from google.cloud.pubsub_v1 import PublisherClient

from panoptes_network.core.errors import TransientError

RETRY_SECONDS = 5.0
PUBLISH_TIMEOUT = 10.0
TRANSIENT = (
    api.ServiceUnavailable,
    api.InternalServerError,
    api.TooManyRequests,
    api.ResourceExhausted,
    api.Aborted,
    api.DeadlineExceeded,
    api.GatewayTimeout,
    api.RetryError,
    api.NotFound,  # the topic is not there (yet): deployment order, worth a retry
    TimeoutError,
)
RETRY = retries.Retry(
    predicate=retries.if_exception_type(
        api.ServiceUnavailable, api.InternalServerError, api.ResourceExhausted, api.Aborted, api.DeadlineExceeded
    ),
    initial=0.2,
    maximum=2.0,
    timeout=RETRY_SECONDS,
)


class PubSubPublisher:
    """Implements ``Publisher`` with one ``PublisherClient`` per instance, created on first use."""

    def __init__(self, project: str, client: PublisherClient | None = None) -> None:
        self.project = project
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> PublisherClient:
        with self._lock:
            if self._client is None:
                self._client = PublisherClient()
            return self._client

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        path = self.client.topic_path(self.project, topic)
        try:
            future = self.client.publish(path, data, retry=RETRY, timeout=PUBLISH_TIMEOUT, **attributes)
            return str(future.result(timeout=PUBLISH_TIMEOUT))
        except TRANSIENT as exc:
            raise TransientError(f"publishing to {path} failed ({type(exc).__name__}: {exc})", exc) from exc
