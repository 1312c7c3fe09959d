"""The service app behind local adapters, as the service and push-auth tests drive it: the
JSON log lines it writes, a local context, a test client, and uploads that cause a push."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from panoptes_network.adapters.publisher import QueuePublisher
from panoptes_network.core.context import Context
from panoptes_network.core.logs import JsonFormatter
from panoptes_network.core.messages import parse_storage_notification
from panoptes_network.drivers.service import create_app
from step_harness import RAW, as_push, drain_messages, envelope
from step_harness import local as local_stand_ins


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Every log line of the test, as the service writes them (JSON, one per line)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


def request_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """The one line per request, of all the lines logged."""
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == "panoptes_network.request"]


@pytest.fixture
def local(tmp_path: Path) -> tuple[Context, QueuePublisher]:
    return local_stand_ins(tmp_path)


def client_for(context: Context) -> Any:
    """A Flask test client of image-received over ``context``."""
    return create_app("image-received", lambda: context).test_client()


def upload(local: tuple[Context, QueuePublisher], name: str, data: bytes = b"SIMPLE  =") -> bytes:
    """Store an object in the raw bucket and return the push body of the notification it caused."""
    context, queue = local
    ref = context.storage.write_new(RAW, name, data)
    [notification] = drain_messages(queue)
    assert notification.topic == "image-received"
    assert parse_storage_notification(as_push(notification)).ref == ref
    return envelope(notification.data, notification.attributes, message_id=f"m-{ref.generation}")
