"""The metadata documents and their layout, in one place: collection names, the step record,
and typed accessors. Every other module reads and writes documents through these names, so the
layout can change here without a search through the tree.

Collections (documented in resources/status.md):
- ``images/{image_id}``: one per frame; ``status`` and ``steps.{step}``, the latest run of each step;
- ``observations/{sequence_id}``: header fields, counters, and the observation's status, frame
  counts, field and products (``ObservationStatus``);
- ``units/{unit_id}``: header fields and counters;
- ``counted_images/{image_id}``: the marker that an image was counted, written with the counts;
- ``objects/{bucket/name#generation}``: inputs that never became an image (ignored, rejected);
- ``leases/{service:image_id}``: one attempt at a time per step and image.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from panoptes_network.adapters.metadata import AlsoMerge, MetadataStore
from panoptes_network.core.status import FINAL_IMAGE_STATUSES, StepState

IMAGES = "images"
OBSERVATIONS = "observations"
UNITS = "units"
COUNTED_IMAGES = "counted_images"
OBJECTS = "objects"
LEASES = "leases"
STEPS = "steps"  # the field of an image that holds its step records

EPOCH = dt.datetime.min.replace(tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """``images/{image_id}.steps.{step}``: what the latest run of a step on the image did.

    Every step's record has the same shape: ``state`` (a ``StepState``), the ``input`` identity,
    its ``extra`` and ``rerun`` (enough to rebuild the step's message), ``published`` (topic ->
    message id), ``outputs`` (key -> {name, generation, state}), ``conflict`` when an output name
    held something else, ``error``/``error_class`` on a failure, and the step's own fields."""

    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.fields)

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    @property
    def state(self) -> str | None:
        return self.fields.get("state")

    @property
    def input(self) -> str | None:
        return self.fields.get("input")

    @property
    def rerun(self) -> str | None:
        return self.fields.get("rerun")

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.fields.get("extra") or {})

    @property
    def published(self) -> dict[str, str]:
        return dict(self.fields.get("published") or {})

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return dict(self.fields.get("outputs") or {})

    @property
    def error(self) -> str | None:
        return self.fields.get("error")

    @property
    def conflict(self) -> str | None:
        return self.fields.get("conflict")

    @property
    def finished(self) -> dt.datetime | None:
        return self.fields.get("finished")

    @property
    def failed(self) -> bool:
        """Whether the run ended in a state a person should look at."""
        return self.state in FAILED_STATES

    def output_generation(self, key: str) -> int | None:
        """The generation of the object that holds the step's output ``key``."""
        return (self.outputs.get(key) or {}).get("generation")


FAILED_STATES = (StepState.REJECTED.value, StepState.ERROR.value, StepState.CONFLICT.value)


def frame_is_final(image: Mapping[str, Any] | None) -> bool:
    """Whether an image's chain has ended (solved, unsolved or rejected); any other status
    stopped half-way, and ``process`` and ``gaps`` say where."""
    return (image or {}).get("status") in FINAL_IMAGE_STATUSES


def steps(image: Mapping[str, Any] | None) -> dict[str, StepRecord]:
    """Every step record of an image document, by step name."""
    return {name: StepRecord(record or {}) for name, record in ((image or {}).get(STEPS) or {}).items()}


def step_record(image: Mapping[str, Any] | None, step: str) -> StepRecord:
    """The step's record on an image document (empty when the step never ran)."""
    return StepRecord(((image or {}).get(STEPS) or {}).get(step) or {})


def latest_step(image: Mapping[str, Any] | None) -> str | None:
    """The step that ran last on the image: where its chain stopped, failed or finished."""
    records = steps(image)
    if not records:
        return None
    return max(records, key=lambda name: records[name].finished or EPOCH)


def image(metadata: MetadataStore, image_id: str) -> dict[str, Any] | None:
    """The image document, or None."""
    return metadata.get(IMAGES, image_id)


def images(metadata: MetadataStore, where: Mapping[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(image id, document) pairs whose top-level fields equal ``where``, by id."""
    return metadata.list(IMAGES, where)


def object_record(metadata: MetadataStore, doc_id: str) -> dict[str, Any] | None:
    """The record of an input that never became an image (``ObjectRef.doc_id``), or None."""
    return metadata.get(OBJECTS, doc_id)


def object_records(metadata: MetadataStore) -> list[tuple[str, dict[str, Any]]]:
    return metadata.list(OBJECTS)


def create_image(metadata: MetadataStore, image_id: str, fields: Mapping[str, Any]) -> bool:
    return metadata.create(IMAGES, image_id, fields)


def merge_image(metadata: MetadataStore, image_id: str, fields: Mapping[str, Any]) -> None:
    metadata.merge(IMAGES, image_id, fields)


def merge_object(metadata: MetadataStore, doc_id: str, fields: Mapping[str, Any]) -> None:
    metadata.merge(OBJECTS, doc_id, fields)


def frame_count_field(frame_type: str) -> str:
    """The counter of an observation and a unit that counts frames of one ``FrameType``
    (``num_science_images``, ``num_pointing_images``, ...; ``num_images`` counts them all)."""
    return f"num_{frame_type}_images"


def replace_step_record(
    metadata: MetadataStore,
    image_id: str,
    step: str,
    fields: Mapping[str, Any],
    image_fields: AlsoMerge | None = None,
) -> None:
    """Replace the step's record on the image (it describes the latest run, nothing older) and
    merge ``image_fields`` in the same write."""
    metadata.replace_field(IMAGES, image_id, (STEPS, step), dict(fields), image_fields)


def observation(metadata: MetadataStore, sequence_id: str) -> dict[str, Any] | None:
    """The observation document, or None."""
    return metadata.get(OBSERVATIONS, sequence_id)


def observations(metadata: MetadataStore, where: Mapping[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(sequence id, document) pairs whose top-level fields equal ``where``, by id."""
    return metadata.list(OBSERVATIONS, where)


def pending_observations(metadata: MetadataStore) -> list[tuple[str, dict[str, Any]]]:
    """Observations with a frame they have not been processed with (``pending: true``)."""
    return metadata.list(OBSERVATIONS, {PENDING: True})


def sequence_images(metadata: MetadataStore, sequence_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The image documents of one sequence, by id."""
    return metadata.list(IMAGES, {"sequence_id": sequence_id})


def merge_observation(metadata: MetadataStore, sequence_id: str, fields: Mapping[str, Any]) -> None:
    metadata.merge(OBSERVATIONS, sequence_id, fields)


def decide_observation(metadata: MetadataStore, sequence_id: str, field: str, value: Any, fields: AlsoMerge) -> None:
    """Replace ``field`` of the observation as a whole and merge ``fields`` in one write; when
    ``fields`` is a function of the document it decides on the document as written (None: write
    nothing), so a sweep never undoes what the step recorded meanwhile."""
    metadata.replace_field(OBSERVATIONS, sequence_id, (field,), value, fields)


PENDING = "pending"  # an observation's flag: a frame arrived that no processing has seen yet


def frame_arrived(metadata: MetadataStore, sequence_id: str, when: dt.datetime) -> None:
    """A frame of the observation arrived, or was re-run: the observation is pending (the quiet
    period counts from ``when``) until a processing has seen it."""
    metadata.merge(OBSERVATIONS, sequence_id, {"sequence_id": sequence_id, "last_arrival": when, PENDING: True})
