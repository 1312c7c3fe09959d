"""The local cloud stack end to end: real client upload -> fake-gcs notification -> Pub/Sub push
-> image-received under gunicorn -> a message on the right topic and records in Firestore."""

from __future__ import annotations

import json
import os
import uuid

import pytest
import requests

from panoptes_network.core.messages import SCHEMA_VERSION
from panoptes_network.local.stack import LocalStack, patched_env
from polling import wait_for
from stack_checks import pull_messages

pytestmark = pytest.mark.stack

SEQUENCE = "PAN012/0a1b2c/20251001T030000"
DEADLINE_SECONDS = 30


@pytest.fixture(scope="module")
def clients(local_stack: LocalStack):
    from google.cloud import firestore, pubsub_v1, storage

    with patched_env(local_stack.client_env):
        yield storage.Client(), pubsub_v1.SubscriberClient(), firestore.Client(project=local_stack.project)


def wait_for_document(db, collection: str, doc_id: str, ready=lambda doc: True) -> dict:
    document = db.collection(collection).document(doc_id)
    return wait_for(
        lambda: document.get().to_dict(),
        f"document {collection}/{doc_id}",
        DEADLINE_SECONDS,
        until=lambda doc: doc is not None and ready(doc),
    )


@pytest.mark.parametrize(
    ("filename", "topic"),
    [
        ("20251001T030100.fits", "compress-fits"),
        ("20251001T030200.fits.fz", "record-image"),
        ("20251001T030300.CR2", "make-rgb-fits"),
    ],
)
def test_an_upload_reaches_the_right_topic(local_stack: LocalStack, clients, filename: str, topic: str) -> None:
    gcs, subscriber, db = clients
    subscription = subscriber.subscription_path(local_stack.project, f"test-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(
        request={"name": subscription, "topic": subscriber.topic_path(local_stack.project, topic)}
    )
    blob = gcs.bucket(local_stack.settings.bucket("raw")).blob(f"{SEQUENCE}/{filename}")
    blob.upload_from_string(b"SIMPLE  =                    T")
    [message] = pull_messages(subscriber, subscription, DEADLINE_SECONDS)
    data = json.loads(message.data)
    image_id = "PAN012_0a1b2c_" + filename.split(".")[0]
    assert message.attributes["schema_version"] == SCHEMA_VERSION
    assert data["bucket"] == local_stack.settings.bucket("raw")
    assert data["name"] == blob.name
    assert data["generation"] == blob.generation
    assert data["image_id"] == image_id
    assert data["sequence_id"] == "PAN012_0a1b2c_20251001T030000"
    # Later steps reject the dummy bytes: only the routing is asserted here.
    image = wait_for_document(db, "images", image_id, lambda doc: "image-received" in doc.get("steps", {}))
    assert image["steps"]["image-received"]["routed_to"] == topic
    assert image["steps"]["image-received"]["input"].endswith(f"#{blob.generation}")


@pytest.mark.parametrize(
    ("name", "status"),
    [(f"{SEQUENCE}/20251001T030400.jpg", "ignored"), ("PAN001/bad", "rejected")],
)
def test_other_uploads_are_recorded_and_acknowledged(local_stack: LocalStack, clients, name: str, status: str) -> None:
    from urllib.parse import quote

    gcs, _, db = clients
    blob = gcs.bucket(local_stack.settings.bucket("raw")).blob(name)
    blob.upload_from_string(b"whatever")
    doc_id = quote(f"{local_stack.settings.bucket('raw')}/{name}#{blob.generation}", safe="")
    record = wait_for_document(db, "objects", doc_id)
    assert record["status"] == status
    assert record["reason"]


def test_the_service_answers_bad_requests_itself(local_stack: LocalStack) -> None:
    url = local_stack.services["image-received"].url
    assert requests.post(url + "/", data=b"not json", timeout=10).status_code == 400
    assert requests.get(url + "/healthz", timeout=10).json()["service"] == "image-received"
    lines = [
        json.loads(line)
        for line in local_stack.services["image-received"].log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    assert any(line.get("outcome") == "malformed" and line.get("status") == 400 for line in lines)


def test_the_stack_command_starts_everything_and_sigterm_stops_every_child(tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "panoptes_network", "stack", "--project", "cli-stack", "--log-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []

    def read_line() -> str:
        lines.append(process.stdout.readline())
        return lines[-1]

    wait_for(
        read_line, "'Ready in' or the end of output", 60, until=lambda line: not line or "Ready in" in line, every=0
    )
    output = "".join(lines)
    assert "Ready in" in output, output + process.stderr.read() if process.poll() is not None else output
    assert "export PUBSUB_EMULATOR_HOST=127.0.0.1:" in output
    assert "export STORAGE_EMULATOR_HOST=http://127.0.0.1:" in output
    pids = [int(word) for line in lines if " pid " in line for word in [line.split(" pid ")[1].split()[0]]]
    from panoptes_network.core.topology import load_topology

    assert len(pids) == 3 + len(load_topology().service_names)  # Pub/Sub, Firestore, fake GCS, each service
    [explorer_line] = [line for line in lines if line.startswith("data-explorer: open http://127.0.0.1:")]
    assert requests.get(explorer_line.split()[2], timeout=10).status_code == 200, "the explorer's home page"
    service_line = next(line for line in lines if line.strip().startswith("image-received"))
    service_url = service_line.split()[1]
    assert requests.get(service_url + "/healthz", timeout=10).status_code == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_message_that_always_fails_ends_in_the_dead_letter_topic(local_stack: LocalStack, clients) -> None:
    """A step message the service can never accept (400) is pushed 5 times, then dead-lettered."""
    from google.cloud import pubsub_v1

    from panoptes_network.core.topology import MAX_DELIVERY_ATTEMPTS, dead_letter_topic, load_topology

    _, subscriber, _ = clients
    with patched_env(local_stack.client_env):
        publisher = pubsub_v1.PublisherClient()
    service = load_topology().service("compress-fits")
    poison = json.dumps({"bucket": "b", "name": "n"}).encode()  # lacks generation and ids: 400
    publisher.publish(publisher.topic_path(local_stack.project, service.topic), poison, schema_version="1").result()
    kept = subscriber.subscription_path(local_stack.project, dead_letter_topic(service.subscription))
    [message] = pull_messages(subscriber, kept, 120)  # 5 pushes, backing off 2-10 s
    assert message.data == poison
    assert message.attributes["CloudPubSubDeadLetterSourceSubscription"] == service.subscription
    assert int(message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"]) == MAX_DELIVERY_ATTEMPTS


def test_dead_letters_are_listed_in_place_and_replayed_to_their_topic(local_stack: LocalStack, clients) -> None:
    import subprocess
    import sys

    from google.cloud import pubsub_v1

    from panoptes_network.core.topology import load_topology

    _, subscriber, _ = clients
    with patched_env(local_stack.client_env):
        publisher = pubsub_v1.PublisherClient()
    service = load_topology().service("record-image")
    poison = json.dumps({"bucket": "b", "name": "PAN001/x", "note": "dlq-test"}).encode()
    publisher.publish(publisher.topic_path(local_stack.project, service.topic), poison, schema_version="1").result()

    def cli(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, **local_stack.client_env}
        return subprocess.run(
            [sys.executable, "-m", "panoptes_network", "dlq", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    def ours() -> list[dict]:
        listed = [json.loads(line) for line in cli("list", "--step", "record-image", "--json").stdout.splitlines()]
        return [row for row in listed if row["data"].get("note") == "dlq-test"]

    # Five pushes, backing off, then the dead-letter topic.
    [row] = wait_for(ours, "the poison message in the dead-letter listing", 120, every=2)
    assert row["deliveries"] == 5 and "refused at the boundary" in row["error"]
    again = cli("list", "--step", "record-image", "--json").stdout  # listing did not consume it
    assert row["message_id"] in again
    watcher = subscriber.subscription_path(local_stack.project, f"watch-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(
        request={"name": watcher, "topic": publisher.topic_path(local_stack.project, service.topic)}
    )
    replay = cli("replay", "--step", "record-image", row["message_id"])
    assert replay.returncode == 0, replay.stderr
    [replayed] = pull_messages(subscriber, watcher, DEADLINE_SECONDS)
    assert replayed.data == poison and replayed.attributes["schema_version"] == "1"
    assert "CloudPubSubDeadLetterSourceSubscription" not in replayed.attributes
    assert row["message_id"] not in cli("list", "--step", "record-image", "--json").stdout
