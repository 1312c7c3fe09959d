"""Which implementation of each adapter a run gets: the one place that builds a ``Context``.

Embedded, buckets are folders (that notify like Cloud Storage), topics one in-process queue,
metadata one SQLite file; in the cloud (or on the local stack's emulators) the Google clients.
Both take the stamps database and the reference catalog from the settings: ``DATABASE_URL``
(else SQLite in the data directory) and ``PANOPTES_REFERENCE_CATALOG``.
"""

from __future__ import annotations

from pathlib import Path

from panoptes_network.adapters.folder_storage import FolderStorage
from panoptes_network.adapters.publisher import Publisher, QueuePublisher
from panoptes_network.adapters.reference_catalog import ReferenceCatalog
from panoptes_network.adapters.sql_catalog import SqlCatalog
from panoptes_network.adapters.sql_stamp_store import SqlStampStore
from panoptes_network.adapters.sqlite_metadata import SqliteMetadata
from panoptes_network.adapters.storage import ObjectInfo
from panoptes_network.adapters.tycho2_index_catalog import Tycho2IndexCatalog
from panoptes_network.core.context import Context
from panoptes_network.core.messages import storage_notification
from panoptes_network.core.settings import Settings
from panoptes_network.core.topology import Topology, load_topology

REFERENCE_CATALOGS = ("tycho2", "sql")


def stamp_store(settings: Settings) -> SqlStampStore:
    """The ``stamps`` table in the settings' database; nothing connects until it is used."""
    return SqlStampStore(settings.sql_url(), settings.database_schema)


def sql_catalog(settings: Settings) -> SqlCatalog:
    """The ``reference_stars`` table in the settings' database (what ``catalog load`` fills)."""
    return SqlCatalog(settings.sql_url(), settings.database_schema)


def reference_catalog(settings: Settings) -> ReferenceCatalog:
    """``tycho2``: the installed index files; ``sql``: ``reference_stars``. Anything else is a
    configuration error, raised when the context is built (at a service's boot)."""
    if settings.reference_catalog == "tycho2":
        return Tycho2IndexCatalog()
    if settings.reference_catalog == "sql":
        return sql_catalog(settings)
    raise ValueError(
        f"PANOPTES_REFERENCE_CATALOG is {settings.reference_catalog!r}; expected one of {', '.join(REFERENCE_CATALOGS)}"
    )


def notify_finalize(publisher: Publisher, topology: Topology, settings: Settings, info: ObjectInfo) -> None:
    """What Cloud Storage does when an object is written: notify the bucket's topics."""
    data, attributes = storage_notification(info.ref, info.size, info.content_type)
    for notification in topology.notifications:
        if settings.bucket(notification.bucket) == info.ref.bucket:
            publisher.publish(notification.topic, data, attributes)


def local_context(settings: Settings, data_dir: Path) -> tuple[Context, QueuePublisher]:
    """The embedded stand-ins under ``data_dir``, and the queue the runner drains."""
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
        stamps=stamp_store(settings),
        catalog=reference_catalog(settings),
        topology=topology,
    )
    return context, publisher


def cloud_context(settings: Settings) -> Context:
    """The real Google clients (or their emulators, through the usual *_EMULATOR_HOST variables).

    Clients and database engines are created lazily, so building a context needs no network.
    """
    from panoptes_network.adapters.firestore_metadata import FirestoreMetadata
    from panoptes_network.adapters.gcs_storage import GcsStorage
    from panoptes_network.adapters.pubsub_publisher import PubSubPublisher

    return Context(
        settings=settings,
        storage=GcsStorage(),
        publisher=PubSubPublisher(settings.project),
        metadata=FirestoreMetadata(settings.project),
        stamps=stamp_store(settings),
        catalog=reference_catalog(settings),
    )
