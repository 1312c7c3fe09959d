"""The service factory as Pub/Sub push sees it: status codes, records and one log line per request.

These use the local adapters behind the real Flask app; the same app on the real emulators is
covered by tests/test_stack.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fixtures_service import client_for, request_lines, upload
from panoptes_network.core.errors import TransientError
from panoptes_network.core.messages import ObjectRef, storage_notification
from step_harness import RAW, drain_messages, envelope, step_message

NAME = "PAN001/14d3bd/20181011T134202/20181011T134333"


@pytest.mark.parametrize(
    ("extension", "topic"),
    [("fits", "compress-fits"), ("fits.fz", "record-image"), ("CR2", "make-rgb-fits"), ("dng", "make-rgb-fits")],
)
def test_files_are_routed_by_type(local, json_logs, extension: str, topic: str) -> None:
    context, queue = local
    response = client_for(context).post("/", data=upload(local, f"{NAME}.{extension}"))
    assert response.status_code == 204
    [queued] = drain_messages(queue)
    assert queued.topic == topic
    message = step_message(queued)
    assert message.image_id == "PAN001_14d3bd_20181011T134333"
    assert message.sequence_id == "PAN001_14d3bd_20181011T134202"
    assert message.ref.name == f"{NAME}.{extension}"
    image = context.metadata.get("images", message.image_id)
    assert image["status"] == "received"
    assert image["steps"]["image-received"]["state"] == "done"
    assert image["steps"]["image-received"]["routed_to"] == topic
    [line] = request_lines(json_logs)
    assert line["severity"] == "INFO"
    assert line["outcome"] == "done" and line["status"] == 204
    assert line["image_id"] == message.image_id and line["step"] == "image-received"
    assert line["message_id"].startswith("m-") and line["duration_ms"] >= 0


def test_a_redelivered_notification_publishes_once(local, json_logs) -> None:
    context, queue = local
    body = upload(local, f"{NAME}.fits")
    client = client_for(context)
    assert client.post("/", data=body).status_code == 204
    assert client.post("/", data=body).status_code == 204
    assert len(queue) == 1
    assert [line["outcome"] for line in request_lines(json_logs)] == ["done", "already_done"]


@pytest.mark.parametrize(
    ("name", "status", "why"),
    [
        (f"{NAME}.jpg", "ignored", "file type .jpg"),
        ("PAN001/bad", "rejected", "expected"),
        ("PAN001/14d3bd/20181011T134202/not a time.fits", "rejected", "image time"),
    ],
)
def test_other_objects_are_recorded_and_acknowledged(local, json_logs, name: str, status: str, why: str) -> None:
    context, queue = local
    response = client_for(context).post("/", data=upload(local, name))
    assert response.status_code == 204
    assert len(queue) == 0
    [(doc_id, record)] = context.metadata.list("objects")
    assert record["status"] == status and why in record["reason"] and record["name"] == name
    assert context.metadata.list("images") == []
    [line] = request_lines(json_logs)
    assert line["outcome"] == status and why in line["reason"]
    assert line["severity"] == ("ERROR" if status == "rejected" else "NOTICE")


def test_path_traversal_names_are_rejected_without_touching_anything(local, json_logs) -> None:
    context, queue = local
    payload, attributes = storage_notification(ObjectRef(RAW, "../../etc/passwd", 5), 10)
    response = client_for(context).post("/", data=envelope(payload, attributes))
    assert response.status_code == 204
    [(_, record)] = context.metadata.list("objects")
    assert record["status"] == "rejected" and "'..'" in record["reason"]
    assert len(queue) == 0


def test_other_event_types_are_acknowledged_with_a_log_line(local, json_logs) -> None:
    context, queue = local
    payload, attributes = storage_notification(ObjectRef(RAW, f"{NAME}.fits", 5), 10)
    attributes["eventType"] = "OBJECT_DELETE"
    response = client_for(context).post("/", data=envelope(payload, attributes))
    assert response.status_code == 204
    assert len(queue) == 0 and context.metadata.list("objects") == []
    [line] = request_lines(json_logs)
    assert line["outcome"] == "ignored" and "OBJECT_DELETE" in line["reason"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "not JSON"),
        (
            envelope(
                b"\x00\x01 not json",
                {"eventType": "OBJECT_FINALIZE", "bucketId": RAW, "objectId": "x", "objectGeneration": "1"},
            ),
            "not JSON",
        ),
        (envelope(b"{}", {"schema_version": "1"}), "not a Cloud Storage notification"),
        (b"x" * 300_000, "exceeds"),
    ],
)
def test_malformed_requests_get_400_and_say_why(local, json_logs, body: bytes, why: str) -> None:
    context, queue = local
    response = client_for(context).post("/", data=body)
    assert response.status_code == 400
    [line] = request_lines(json_logs)
    assert line["outcome"] == "malformed" and why in line["reason"] and line["severity"] == "WARNING"
    assert len(queue) == 0


class UnavailableMetadata:
    """A metadata store whose backend is down (as Firestore is during an outage)."""

    def __getattr__(self, name: str):
        def unavailable(*args, **kwargs):
            raise TransientError("metadata store unavailable")

        return unavailable


class BrokenPublisher:
    def publish(self, *args, **kwargs):
        raise RuntimeError("a bug in publishing")


def test_an_unavailable_backend_gets_503_with_retry_after(local, json_logs) -> None:
    context, _ = local
    body = upload(local, f"{NAME}.fits")
    down = dataclasses.replace(context, metadata=UnavailableMetadata())
    response = client_for(down).post("/", data=body)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    [line] = request_lines(json_logs)
    assert line["outcome"] == "transient" and line["severity"] == "WARNING"
    assert "metadata store unavailable" in line["reason"]
    assert line["image_id"] and ".fits#" in line["input"]  # the log line says whose message it was


def test_a_bug_gets_500_is_recorded_and_logged_with_its_traceback(local, json_logs) -> None:
    context, queue = local
    body = upload(local, f"{NAME}.fits")
    broken = dataclasses.replace(context, publisher=BrokenPublisher())
    response = client_for(broken).post("/", data=body)
    assert response.status_code == 500
    image = context.metadata.get("images", "PAN001_14d3bd_20181011T134333")
    assert image["status"] == "error"
    assert image["steps"]["image-received"]["error_class"] == "RuntimeError"
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert any("a bug in publishing" in line.get("stack_trace", "") for line in lines)
    [line] = request_lines(json_logs)
    assert line["outcome"] == "error" and line["severity"] == "ERROR"


def test_healthz_names_the_service(local) -> None:
    context, _ = local
    response = client_for(context).get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["service"] == "image-received"


def test_service_folders_serve_their_step(tmp_path: Path) -> None:
    """Each built service's folder entry point builds the app for its own step (cloud adapters,
    created lazily, so no network is needed to boot)."""
    import os
    import subprocess
    import sys

    from panoptes_network.core.topology import load_topology

    root = Path(__file__).resolve().parents[1]
    for service in load_topology().services:
        script = "import runpy; app = runpy.run_path('main.py')['app']; print(app.name, app.test_client().get('/healthz').json['topic'])"
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=root / service.name,
            env={**os.environ, "GOOGLE_CLOUD_PROJECT": "boot-check"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        printed = result.stdout.splitlines()[-1]  # after the boot log lines (push auth is off)
        assert printed.split() == [service.name, service.topic]


def test_a_redelivery_while_another_attempt_holds_the_lease_is_retried_later(local, json_logs) -> None:
    import datetime as dt

    context, queue = local
    body = upload(local, f"{NAME}.fits")
    now = dt.datetime.now(dt.UTC)
    lease = "image-received:PAN001_14d3bd_20181011T134333"
    assert context.metadata.claim_lease("leases", lease, "the first attempt", now, now + dt.timedelta(minutes=5))
    client = client_for(context)
    response = client.post("/", data=body)
    assert response.status_code == 503 and len(queue) == 0
    assert "lease" in request_lines(json_logs)[-1]["reason"]
    context.metadata.release_lease("leases", lease, "the first attempt")
    assert client.post("/", data=body).status_code == 204 and len(queue) == 1
    assert context.metadata.get("leases", lease) is None  # released after the work
