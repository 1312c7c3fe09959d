"""What the stack tests check from outside: messages on pull subscriptions, the services'
request logs, the storage server's access log, and "this image went through every step exactly
once"."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from panoptes_network.core.names import parse_raw_name
from panoptes_network.core.records import step_record
from panoptes_network.local.stack import LocalStack, patched_env
from panoptes_network.science.fits_codec import compressed_file
from panoptes_network.synthetic.star_field import StarFieldSpec, make_star_field
from polling import wait_for

DEADLINE_SECONDS = 240  # a full frame through the chain on a busy machine (the solve alone is ~20 s)
CHAIN = ("image-received", "record-image", "subtract-background", "plate-solver")
FOLLOW_ON_TOPICS = ("record-image", "subtract-background", "plate-solve")


def pull_once(subscriber: Any, subscription: str) -> list[Any]:
    """One pull on ``subscription``: the messages it brought (acknowledged), perhaps none."""
    response = subscriber.pull(request={"subscription": subscription, "max_messages": 10}, timeout=5)
    if response.received_messages:
        subscriber.acknowledge(
            request={"subscription": subscription, "ack_ids": [m.ack_id for m in response.received_messages]}
        )
    return [m.message for m in response.received_messages]


def pull_messages(subscriber: Any, subscription: str, seconds: float) -> list[Any]:
    """The messages of the first pull on ``subscription`` that brings any."""
    return wait_for(lambda: pull_once(subscriber, subscription), f"a message on {subscription}", seconds)


def pull_matching(subscriber: Any, subscription: str, matches: Callable[[dict], bool], seconds: float) -> dict:
    """The data of the first message on ``subscription`` that ``matches`` (others are dropped:
    other tests' images travel the same topics)."""
    seen: list[dict] = []

    def pulled() -> list[dict]:
        seen.extend(json.loads(m.data) for m in pull_once(subscriber, subscription))
        return seen

    wait_for(pulled, f"a matching message on {subscription}", seconds, until=lambda data: any(map(matches, data)))
    return next(data for data in seen if matches(data))


class Watch:
    """The stack seen from outside: Google clients, and a pull subscription on each follow-on
    topic (made before the upload) that counts what the steps published."""

    def __init__(self, stack: LocalStack) -> None:
        from google.cloud import firestore, pubsub_v1, storage

        self.stack = stack
        with patched_env(stack.client_env):
            self.gcs = storage.Client()
            self.db = firestore.Client(project=stack.project)
            self.publisher = pubsub_v1.PublisherClient()
            self.subscriber = pubsub_v1.SubscriberClient()
        self.subscriptions: dict[str, str] = {}
        self.seen: dict[str, list[Any]] = {topic: [] for topic in FOLLOW_ON_TOPICS}
        for topic in FOLLOW_ON_TOPICS:
            path = self.subscriber.subscription_path(stack.project, f"watch-{topic}-{uuid.uuid4().hex[:8]}")
            self.subscriber.create_subscription(
                request={"name": path, "topic": self.subscriber.topic_path(stack.project, topic)}
            )
            self.subscriptions[topic] = path

    def upload_star_field(self, camera: str) -> tuple[str, str, Any]:
        """A full synthetic frame (the solve runs for seconds) into the raw bucket: name, image id, blob."""
        data, header, _ = make_star_field(StarFieldSpec())
        name = f"PAN001/{camera}/20261124T080000/20261124T080203.fits.fz"
        blob = self.gcs.bucket(self.stack.settings.bucket("raw")).blob(name)
        blob.upload_from_string(compressed_file(data, header))
        return name, parse_raw_name(name).image_id, blob

    def image(self, image_id: str) -> dict:
        return self.db.collection("images").document(image_id).get().to_dict() or {}

    def wait_for_step(self, image_id: str, step: str, seconds: float) -> dict:
        """The image document once ``step`` is done on it."""
        return wait_for(
            lambda: self.image(image_id),
            f"{step} finishing {image_id}",
            seconds,
            until=lambda image: image.get("steps", {}).get(step, {}).get("state") == "done",
        )

    def published(self, topic: str) -> list[Any]:
        """Every message published on ``topic`` since the watch began (``PubsubMessage``); pulls
        until the subscription answers empty (which the emulator may take seconds to say)."""
        while self.pull(topic):
            pass
        return self.seen[topic]

    def pull(self, topic: str) -> list[Any]:
        """One pull: the messages it brought (returns as soon as there are any)."""
        subscription = self.subscriptions[topic]
        response = self.subscriber.pull(request={"subscription": subscription, "max_messages": 100}, timeout=10)
        fresh = [m.message for m in response.received_messages]
        if fresh:
            self.seen[topic] += fresh
            self.subscriber.acknowledge(
                request={"subscription": subscription, "ack_ids": [m.ack_id for m in response.received_messages]}
            )
        return fresh


def request_lines(stack: LocalStack, image_id: str | None = None) -> list[dict[str, Any]]:
    """Every service's request log lines (the one JSON line per request), of one image or all."""
    lines = []
    for service in stack.services.values():
        for line in service.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("logger") == "panoptes_network.request" and image_id in (None, record.get("image_id")):
                    lines.append(record)
    return lines


ACCESS_LOG = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/1\.1\\" (?P<status>\d{3}) ')


def stored_uploads(stack: LocalStack, bucket: str) -> int:
    """Uploads into ``bucket`` that fake-gcs-server completed, from its access log (kept across
    restarts): a multipart POST, or the PUT that carries a resumable upload's data."""
    marker = f"/upload/storage/v1/b/{bucket}/o?"
    served = [m for m in map(ACCESS_LOG.search, stack.gcs.log_path.read_text(errors="replace").splitlines()) if m]
    return sum(
        1
        for m in served
        if m["status"] == "200"
        and m["path"].startswith(marker)
        and (m["method"] == "PUT" or "uploadType=multipart" in m["path"])
    )


def assert_completed_once(watch: Watch, name: str, image_id: str, republished_ok: bool = False) -> dict:
    """The image went through every step once: solved, each step's work done by one request,
    one object per output at the generation its step recorded, uploaded once, counted once, one
    message per follow-on topic (``republished_ok``, for outages: copies of that one message, as when
    an attempt published but could not record its outcome, and a step that answered 503 may have
    done its work again, finding its outputs already there), no lease left. Returns the image document."""
    stack, db = watch.stack, watch.db
    image = watch.wait_for_step(image_id, "plate-solver", DEADLINE_SECONDS)
    assert image["status"] == "solved"
    assert {step: image["steps"][step]["state"] for step in CHAIN} == {step: "done" for step in CHAIN}
    # A service writes its request line after its record: the record can be read first.
    lines = wait_for(
        lambda: request_lines(stack, image_id),
        "a request line of each step's done",
        30,
        until=lambda lines: {r["step"] for r in lines if r["outcome"] == "done"} >= set(CHAIN),
    )
    done = sorted(r["step"] for r in lines if r["outcome"] == "done")
    if republished_ok:
        # A step whose science finished while its record could not be written answered 503 and
        # ran again on the redelivery: done twice in the log, once in effect (checked below: one
        # upload per output, counted once). Every extra "done" needs a transient failure before it.
        retried = [r["step"] for r in lines if r["status"] == 503]
        assert set(done) == set(CHAIN), lines
        assert all(done.count(step) <= 1 + retried.count(step) for step in CHAIN), lines
    else:
        assert done == sorted(CHAIN), lines

    base = parse_raw_name(name).base_path
    backgrounds, processed = stack.settings.bucket("backgrounds"), stack.settings.bucket("processed")
    listed = {
        bucket: {blob.name: blob.generation for blob in watch.gcs.list_blobs(bucket)}
        for bucket in (backgrounds, processed)
    }
    solved = image["steps"]["plate-solver"]["outputs"]
    expected = {
        backgrounds: {
            f"{base}-background.fits.fz": step_record(image, "subtract-background").output_generation("background")
        },
        processed: {
            f"{base}.fits.fz": solved["processed"]["generation"],
            f"{base}.png": solved["quick_look"]["generation"],
            f"{base}-sources.parquet": solved["sources"]["generation"],
        },
    }
    assert listed == expected, f"stored {listed}, recorded {expected}; steps {image['steps']}"
    assert {bucket: stored_uploads(stack, bucket) for bucket in listed} == {backgrounds: 1, processed: 3}

    exptime = image["exptime"]
    assert exptime > 0
    unit = db.collection("units").document(image["unit_id"]).get().to_dict()
    observation = db.collection("observations").document(image["sequence_id"]).get().to_dict()
    assert (unit["num_images"], unit["total_exptime"]) == (1, exptime)
    assert (observation["num_images"], observation["total_exptime"]) == (1, exptime)
    assert db.collection("counted_images").document(image_id).get().exists

    published = {topic: watch.published(topic) for topic in FOLLOW_ON_TOPICS}
    assert {topic: {json.loads(m.data)["image_id"] for m in messages} for topic, messages in published.items()} == {
        topic: {image_id} for topic in FOLLOW_ON_TOPICS
    }
    copies = {topic: (len(messages), len({m.data for m in messages})) for topic, messages in published.items()}
    if republished_ok:
        assert all(distinct == 1 for _, distinct in copies.values()), copies
    else:
        assert all(copy == (1, 1) for copy in copies.values()), copies
    leases = db.collection("leases")
    # Released just after the done record is written: give the last attempt a moment.
    wait_for(
        lambda: [lease.id for lease in leases.stream() if lease.id.endswith(image_id)],
        "leases released",
        10,
        until=lambda held: not held,
    )
    return image
