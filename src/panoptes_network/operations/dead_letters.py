"""Dead letters: messages a service failed five times, kept on each service's dead-letter
subscription, listed with what the image record says went wrong, and replayed after a fix.

Listing does not consume: pulled messages are released at once (ack deadline 0). Replaying
publishes the original data and attributes to the service's own topic, then acknowledges the
dead letter, so a crash between the two can only duplicate a message, never lose one.
"""

from __future__ import annotations

import builtins
import concurrent.futures
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

from panoptes_network.adapters.metadata import MetadataStore
from panoptes_network.core import records
from panoptes_network.core.topology import Service, Topology, dead_letter_topic

SOURCE_ATTRIBUTE_PREFIX = "CloudPubSubDeadLetter"
PULL_TIMEOUT_SECONDS = 5.0
EMPTY_PULLS_BEFORE_DONE = 2  # the emulator may answer an empty pull while messages exist


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    service: str
    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: str
    ack_id: str

    @property
    def delivery_count(self) -> int | None:
        count = self.attributes.get(f"{SOURCE_ATTRIBUTE_PREFIX}SourceDeliveryCount")
        return int(count) if count and count.isdigit() else None

    @property
    def original_attributes(self) -> dict[str, str]:
        return {k: v for k, v in self.attributes.items() if not k.startswith(SOURCE_ATTRIBUTE_PREFIX)}

    def payload(self) -> Any:
        try:
            return json.loads(self.data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return self.data.decode(errors="replace")


def last_error(metadata: MetadataStore | None, letter: DeadLetter) -> str:
    """What the image's step record says about the failure, when the message names an image."""
    payload = letter.payload()
    image_id = payload.get("image_id") if isinstance(payload, dict) else None
    if metadata is None or not isinstance(image_id, str):
        return "no image record (refused at the boundary: see the service's log)"
    step = records.step_record(records.image(metadata, image_id), letter.service)
    if not step.error:
        return f"no error recorded on {records.IMAGES}/{image_id}"
    return f"{step.get('error_class', 'Error')}: {step.error}"


class DeadLetterQueue:
    """The dead-letter subscriptions of a project's services (Pub/Sub or its emulator)."""

    def __init__(self, project: str, topology: Topology, subscriber: Any = None, publisher: Any = None) -> None:
        from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

        self.project = project
        self.topology = topology
        self.subscriber = subscriber or SubscriberClient()
        self.publisher = publisher or PublisherClient()

    def _services(self, step: str | None) -> list[Service]:
        return [self.topology.service(step)] if step else list(self.topology.services)

    def _pull(self, service: Service) -> Iterator[DeadLetter]:
        """Every message on the service's dead-letter subscription, each once (not released)."""
        path = self.subscriber.subscription_path(self.project, dead_letter_topic(service.subscription))
        seen: set[str] = set()
        empty = 0
        while empty < EMPTY_PULLS_BEFORE_DONE:
            response = self.subscriber.pull(
                request={"subscription": path, "max_messages": 100}, timeout=PULL_TIMEOUT_SECONDS
            )
            fresh = [r for r in response.received_messages if r.message.message_id not in seen]
            empty = 0 if fresh else empty + 1
            for received in fresh:
                seen.add(received.message.message_id)
                message = received.message
                yield DeadLetter(
                    service.name, message.message_id, bytes(message.data), dict(message.attributes),
                    message.publish_time.isoformat() if message.publish_time else "", received.ack_id,
                )  # fmt: skip

    def _release(self, service: Service, letters: list[DeadLetter]) -> None:
        if letters:
            path = self.subscriber.subscription_path(self.project, dead_letter_topic(service.subscription))
            self.subscriber.modify_ack_deadline(
                request={
                    "subscription": path,
                    "ack_ids": [letter.ack_id for letter in letters],
                    "ack_deadline_seconds": 0,
                }
            )

    def list(self, step: str | None = None) -> list[DeadLetter]:
        """Every dead letter (of one step, or of all), left in place. Subscriptions are read in
        parallel: an empty one costs two pulls of up to ``PULL_TIMEOUT_SECONDS`` each."""

        def pull_and_release(service: Service) -> list[DeadLetter]:
            letters = list(self._pull(service))
            self._release(service, letters)
            return letters

        services = self._services(step)
        with concurrent.futures.ThreadPoolExecutor(len(services)) as pool:
            return [letter for letters in pool.map(pull_and_release, services) for letter in letters]

    # builtins.list: in this class body, ``list`` names the method above
    def replay(self, step: str | None = None, message_ids: set[str] | None = None) -> builtins.list[DeadLetter]:
        """Publish dead letters back to their service's topic (all, or those named), then ack them."""
        replayed: list[DeadLetter] = []
        for service in self._services(step):
            letters = list(self._pull(service))
            chosen = [letter for letter in letters if message_ids is None or letter.message_id in message_ids]
            self._release(service, [letter for letter in letters if letter not in chosen])
            topic = self.publisher.topic_path(self.project, service.topic)
            for letter in chosen:
                self.publisher.publish(topic, letter.data, **letter.original_attributes).result(timeout=30)
            if chosen:
                path = self.subscriber.subscription_path(self.project, dead_letter_topic(service.subscription))
                self.subscriber.acknowledge(
                    request={"subscription": path, "ack_ids": [letter.ack_id for letter in chosen]}
                )
            replayed += chosen
        return replayed
