"""The outcome of handling one message, and the one place that maps outcomes to HTTP status.

Pub/Sub push acknowledges only 102, 200, 201 and 204, so every outcome that must not be
redelivered maps to 204; the table is in docs/ARCHITECTURE.md "Outcome -> HTTP status".
"""

from __future__ import annotations

import enum


class Outcome(str, enum.Enum):
    """What happened to one message."""

    DONE = "done"
    ALREADY_DONE = "already_done"
    CONFLICT = "conflict"  # an output name held something else: both kept, recorded for a person
    REJECTED = "rejected"
    IGNORED = "ignored"
    TRANSIENT = "transient"
    ERROR = "error"
    MALFORMED = "malformed"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self]

    @property
    def acknowledged(self) -> bool:
        """True when Pub/Sub will not deliver the message again."""
        return self.http_status in (102, 200, 201, 204)

    @property
    def severity(self) -> str:
        """Cloud Logging severity of the request's log line."""
        return SEVERITY[self]


HTTP_STATUS: dict[Outcome, int] = {
    Outcome.DONE: 204,
    Outcome.ALREADY_DONE: 204,
    Outcome.CONFLICT: 204,
    Outcome.REJECTED: 204,
    Outcome.IGNORED: 204,
    Outcome.TRANSIENT: 503,
    Outcome.ERROR: 500,
    Outcome.MALFORMED: 400,
    Outcome.UNAUTHENTICATED: 401,
    Outcome.FORBIDDEN: 403,
}

SEVERITY: dict[Outcome, str] = {
    Outcome.DONE: "INFO",
    Outcome.ALREADY_DONE: "INFO",
    Outcome.CONFLICT: "WARNING",
    Outcome.REJECTED: "ERROR",
    Outcome.IGNORED: "NOTICE",
    Outcome.TRANSIENT: "WARNING",
    Outcome.ERROR: "ERROR",
    Outcome.MALFORMED: "WARNING",
    Outcome.UNAUTHENTICATED: "WARNING",
    Outcome.FORBIDDEN: "WARNING",
}
