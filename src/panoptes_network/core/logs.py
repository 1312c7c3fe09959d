"""Structured logs: one JSON object per line, as Cloud Logging reads them from stdout.

``logging_context(image_id=..., step=...)`` adds fields to every line logged inside it (in
this thread or task), so call sites do not pass them around (Rubin's ``logging_context``).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any, TextIO

_CONTEXT: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("log_context", default={})  # noqa: B039 (never mutated: each change sets a new dict)

# Python level names -> Cloud Logging severities (NOTICE has no Python level: pass severity=).
SEVERITIES = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARNING", "ERROR": "ERROR", "CRITICAL": "CRITICAL"}
LEVELS = {"NOTICE": logging.INFO + 5, **{name: getattr(logging, name) for name in SEVERITIES}}
logging.addLevelName(LEVELS["NOTICE"], "NOTICE")


@contextlib.contextmanager
def logging_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log line inside the block."""
    token = _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def add_context(**fields: Any) -> None:
    """Add fields to the current context (e.g. the image id once the message is parsed)."""
    _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}})


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with ``severity``, ``message``, context and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname if record.levelname != "WARN" else "WARNING",
            "message": record.getMessage(),
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "logger": record.name,
            **_CONTEXT.get(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(stream: TextIO = sys.stdout, level: int = logging.INFO) -> None:
    """Send every log line of the process to ``stream`` as JSON."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def log(logger: logging.Logger, severity: str, message: str, **fields: Any) -> None:
    """Log one line at a Cloud Logging severity with extra structured fields."""
    logger.log(LEVELS[severity], message, extra={"fields": fields})
