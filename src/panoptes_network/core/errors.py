"""What can go wrong, said as meaning rather than status codes.

Steps raise these; only the drivers (the service factory and the embedded runner) decide what
each means for delivery (see ``outcomes.py``). The original exception, when there is one, is
kept as ``nested`` so that logs and records can show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class PipelineError(Exception):
    """Base class: a message for people, optionally the exception that caused it, and details
    worth keeping on the step record (e.g. the EXIF that could still be read from a bad raw)."""

    def __init__(
        self, message: str, nested: BaseException | None = None, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.nested = nested
        self.details = dict(details or {})

    @property
    def error_class(self) -> str:
        """The name recorded on the image: the cause's class when there is one."""
        return type(self.nested).__name__ if self.nested is not None else type(self).__name__


class MalformedRequest(PipelineError):
    """The request itself is not a push envelope we can read (HTTP 400, nothing recorded)."""


class BadInput(PipelineError):
    """Permanent: the input can never be processed (recorded as rejected, then acknowledged)."""


class OverLimit(BadInput):
    """Permanent: the input is larger than a configured limit, found from its headers or its
    stored size before anything was allocated (a decompression bomb is rejected, not decoded)."""

    def __init__(self, what: str, limit: str, value: int, maximum: int, setting: str) -> None:
        super().__init__(
            f"{what}: {limit} {value:,} exceeds the limit of {maximum:,} (setting {setting})",
            details={"limit": limit, "value": value, "maximum": maximum, "setting": setting},
        )


class Ignored(PipelineError):
    """Not for this pipeline (another event type, an unknown file type): recorded, acknowledged."""


class TransientError(PipelineError):
    """Worth retrying later: a backend was unavailable, a timeout, a lease held by another worker."""


class AlreadyExists(PipelineError):
    """A create-only write found the object or document already there."""


class PreconditionFailed(PipelineError):
    """A generation precondition did not hold (the object changed or is gone)."""


class NotFound(PipelineError):
    """The object, or the exact generation asked for, does not exist."""
