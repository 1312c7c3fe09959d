"""Publishing to topics: the interface, and the in-process queue used by the embedded runner."""

from __future__ import annotations

import collections
import dataclasses
import itertools
import threading
from collections.abc import Mapping
from typing import Protocol


class Publisher(Protocol):
    """Publish one message; return its message id. Raises ``TransientError`` when unavailable."""

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str: ...


@dataclasses.dataclass(frozen=True)
class QueuedMessage:
    topic: str
    data: bytes
    attributes: Mapping[str, str]
    message_id: str


class QueuePublisher:
    """Topics as one in-process FIFO queue (the embedded runner drains it)."""

    def __init__(self) -> None:
        self._queue: collections.deque[QueuedMessage] = collections.deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        with self._lock:
            message_id = f"local-{next(self._ids)}"
            self._queue.append(QueuedMessage(topic, bytes(data), dict(attributes), message_id))
        return message_id

    def pop(self) -> QueuedMessage | None:
        """The oldest message not yet taken, or None when the queue is empty."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def __len__(self) -> int:
        return len(self._queue)
