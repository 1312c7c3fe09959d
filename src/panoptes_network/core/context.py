"""What a step gets to work with: settings and the adapters, cloud or local.

Only the interfaces live here; ``adapters/backends.py`` chooses and builds the implementations.
"""

from __future__ import annotations

import dataclasses

from panoptes_network.adapters.metadata import MetadataStore
from panoptes_network.adapters.publisher import Publisher
from panoptes_network.adapters.reference_catalog import ReferenceCatalog
from panoptes_network.adapters.stamp_store import StampStore
from panoptes_network.adapters.storage import Storage
from panoptes_network.core.messages import ObservationMessage, StepMessage
from panoptes_network.core.settings import Settings
from panoptes_network.core.topology import Topology, load_topology


@dataclasses.dataclass(frozen=True)
class Context:
    settings: Settings
    storage: Storage
    publisher: Publisher
    metadata: MetadataStore
    stamps: StampStore  # the plate-solver's postage-stamp rows
    catalog: ReferenceCatalog  # reference stars for catalog matching
    topology: Topology = dataclasses.field(default_factory=load_topology)

    def publish(self, topic: str, message: StepMessage | ObservationMessage) -> str:
        """Publish a step message; return the message id. A step's context publishes only to the
        topics the topology lists for the step (the step shell's ``ListedTopics``)."""
        data, attributes = message.encode()
        return self.publisher.publish(topic, data, attributes)
