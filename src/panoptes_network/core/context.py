"""What a step gets to work with: settings and the three adapters, cloud or local."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from panoptes_network.adapters.folder_storage import FolderStorage
from panoptes_network.adapters.metadata import MetadataStore
from panoptes_network.adapters.publisher import Publisher, QueuePublisher
from panoptes_network.adapters.sqlite_metadata import SqliteMetadata
from panoptes_network.adapters.storage import ObjectInfo, Storage
from panoptes_network.core.messages import StepMessage, storage_notification
from panoptes_network.core.settings import Settings
from panoptes_network.core.topology import Topology, load_topology


@dataclasses.dataclass(frozen=True)
class Context:
    settings: Settings
    storage: Storage
    publisher: Publisher
    metadata: MetadataStore
    topology: Topology = dataclasses.field(default_factory=load_topology)

    def publish(self, topic: str, message: StepMessage) -> str:
        """Publish a step message; return the message id. A step's context publishes only to the
        topics the topology lists for the step (the step shell's ``ListedTopics``)."""
        data, attributes = message.encode()
        return self.publisher.publish(topic, data, attributes)


def notify_finalize(publisher: Publisher, topology: Topology, settings: Settings, info: ObjectInfo) -> None:
    """What Cloud Storage does when an object is written: notify the bucket's topics."""
    data, attributes = storage_notification(info.ref, info.size, info.content_type)
    for notification in topology.notifications:
        if settings.bucket(notification.bucket) == info.ref.bucket:
            publisher.publish(notification.topic, data, attributes)


def local_context(settings: Settings, data_dir: Path) -> tuple[Context, QueuePublisher]:
    """The embedded stand-ins: buckets are folders (that notify like Cloud Storage), topics one
    queue, metadata one SQLite file."""
    publisher = QueuePublisher()
    topology = load_topology()
    storage = FolderStorage(
        data_dir / "buckets", on_finalize=lambda info: notify_finalize(publisher, topology, settings, info)
    )
    context = Context(
        settings=settings,
        storage=storage,
        publisher=publisher,
        metadata=SqliteMetadata(data_dir / "metadata.sqlite"),
        topology=topology,
    )
    return context, publisher


def cloud_context(settings: Settings) -> Context:
    """The real Google clients (or their emulators, through the usual *_EMULATOR_HOST variables).

    Clients are created lazily by the adapters, so building a context needs no network.
    """
    from panoptes_network.adapters.firestore_metadata import FirestoreMetadata
    from panoptes_network.adapters.gcs_storage import GcsStorage
    from panoptes_network.adapters.pubsub_publisher import PubSubPublisher

    return Context(
        settings=settings,
        storage=GcsStorage(),
        publisher=PubSubPublisher(settings.project),
        metadata=FirestoreMetadata(settings.project),
    )
