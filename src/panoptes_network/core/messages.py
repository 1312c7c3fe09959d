"""The messages that cross service boundaries, validated where they enter.

Three layers arrive in one push request: the Pub/Sub push envelope, and inside it either a
Cloud Storage notification (first hop) or one of our own step messages. Structural problems
(not JSON, wrong shape, missing fields) raise ``MalformedRequest`` (HTTP 400); a well-formed
message about something we cannot process is the step's business (a recorded rejection).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from panoptes_network.core.errors import Ignored, MalformedRequest
from panoptes_network.core.names import SEQUENCE_ID_RE

SCHEMA_VERSION = "1"
FINALIZE = "OBJECT_FINALIZE"


@dataclasses.dataclass(frozen=True)
class ObjectRef:
    """One exact generation of one object: the identity of an input."""

    bucket: str
    name: str
    generation: int

    @property
    def identity(self) -> str:
        return f"{self.bucket}/{self.name}#{self.generation}"

    @property
    def doc_id(self) -> str:
        """The identity made safe as a Firestore document id (no ``/``)."""
        return quote(self.identity, safe="")

    @classmethod
    def from_identity(cls, identity: str) -> ObjectRef:
        """The inverse of ``identity`` (``bucket/name#generation``), as step records store it."""
        location, _, generation = identity.rpartition("#")
        bucket, _, name = location.partition("/")
        if not bucket or not name or not generation.isdigit():
            raise ValueError(f"not an object identity (bucket/name#generation): {identity!r}")
        return cls(bucket, name, int(generation))


@dataclasses.dataclass(frozen=True)
class PushMessage:
    """The Pub/Sub message carried by one push request."""

    message_id: str
    data: bytes
    attributes: Mapping[str, str]
    publish_time: str | None = None
    subscription: str | None = None
    delivery_attempt: int | None = None

    def json(self) -> dict[str, Any]:
        """The data as a JSON object, or ``MalformedRequest``."""
        try:
            value = json.loads(self.data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedRequest(f"message data is not JSON: {exc}", exc) from exc
        if not isinstance(value, dict):
            raise MalformedRequest(f"message data is JSON {type(value).__name__}, expected an object")
        return value


def parse_push_envelope(body: bytes | str) -> PushMessage:
    """Validate a push request body (``{"message": {...}, "subscription": ...}``)."""
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedRequest(f"request body is not JSON: {exc}", exc) from exc
    if not isinstance(envelope, dict) or not isinstance(envelope.get("message"), dict):
        raise MalformedRequest("not a Pub/Sub push envelope: no 'message' object")
    message = envelope["message"]
    message_id = message.get("messageId", message.get("message_id"))
    if not isinstance(message_id, str) or not message_id:
        raise MalformedRequest("push message has no 'messageId'")
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise MalformedRequest("push message 'attributes' is not a map of strings")
    encoded = message.get("data", "")
    if not isinstance(encoded, str):
        raise MalformedRequest("push message 'data' is not a base64 string")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedRequest(f"push message 'data' is not valid base64: {exc}", exc) from exc
    attempt = envelope.get("deliveryAttempt")
    subscription = envelope.get("subscription")
    return PushMessage(
        message_id=message_id,
        data=data,
        attributes=attributes,
        publish_time=message.get("publishTime") if isinstance(message.get("publishTime"), str) else None,
        subscription=subscription if isinstance(subscription, str) else None,
        delivery_attempt=attempt if isinstance(attempt, int) else None,
    )


def _generation(value: Any, what: str) -> int:
    """Generations travel as strings in GCS notifications and as ints in ours."""
    if isinstance(value, bool):
        raise MalformedRequest(f"{what} must be a positive integer, got {value!r}")
    if isinstance(value, int):
        generation = value
    elif isinstance(value, str) and value.isdigit():
        generation = int(value)
    else:
        raise MalformedRequest(f"{what} must be a positive integer, got {value!r}")
    if generation <= 0:
        raise MalformedRequest(f"{what} must be a positive integer, got {value!r}")
    return generation


@dataclasses.dataclass(frozen=True)
class ObjectEvent:
    """A Cloud Storage notification: which object changed, and how."""

    event_type: str
    ref: ObjectRef
    size: int | None = None
    content_type: str | None = None
    rerun: str | None = None  # set by ``reprocess`` (a ``rerun`` attribute): run again even if done


def parse_storage_notification(message: PushMessage) -> ObjectEvent:
    """Validate a GCS Pub/Sub notification (attributes + JSON_API_V1 object resource).

    Only ``OBJECT_FINALIZE`` acts: other event types raise ``Ignored`` (the emulator, unlike
    production, ignores subscription filters, so the check lives here).
    """
    attrs = message.attributes
    missing = [k for k in ("eventType", "bucketId", "objectId", "objectGeneration") if not attrs.get(k)]
    if missing:
        raise MalformedRequest(f"not a Cloud Storage notification: attributes lack {', '.join(missing)}")
    ref = ObjectRef(attrs["bucketId"], attrs["objectId"], _generation(attrs["objectGeneration"], "objectGeneration"))
    if attrs["eventType"] != FINALIZE:
        raise Ignored(f"event type {attrs['eventType']} is not acted on (only {FINALIZE})")
    size = content_type = None
    if attrs.get("payloadFormat", "JSON_API_V1") == "JSON_API_V1" and message.data:
        resource = message.json()
        for key, expected in (("bucket", ref.bucket), ("name", ref.name)):
            if resource.get(key) != expected:
                raise MalformedRequest(
                    f"notification {key} {resource.get(key)!r} disagrees with its attribute {expected!r}"
                )
        if "generation" in resource and _generation(resource["generation"], "generation") != ref.generation:
            raise MalformedRequest("notification generation disagrees with its attribute")
        raw_size = resource.get("size")
        size = int(raw_size) if isinstance(raw_size, (int, str)) and str(raw_size).isdigit() else None
        content_type = resource.get("contentType") if isinstance(resource.get("contentType"), str) else None
    return ObjectEvent(attrs["eventType"], ref, size, content_type, attrs.get("rerun") or None)


def storage_notification(ref: ObjectRef, size: int, content_type: str | None = None) -> tuple[bytes, dict[str, str]]:
    """The data and attributes Cloud Storage publishes when ``ref`` is finalized (JSON_API_V1)."""
    resource = {
        "kind": "storage#object",
        "bucket": ref.bucket,
        "name": ref.name,
        "generation": str(ref.generation),
        "size": str(size),
        "contentType": content_type or "application/octet-stream",
    }
    attributes = {
        "eventType": FINALIZE,
        "bucketId": ref.bucket,
        "objectId": ref.name,
        "objectGeneration": str(ref.generation),
        "payloadFormat": "JSON_API_V1",
        "notificationConfig": f"projects/_/buckets/{ref.bucket}/notificationConfigs/local",
    }
    return json.dumps(resource).encode(), attributes


@dataclasses.dataclass(frozen=True)
class StepMessage:
    """What one step tells the next: the exact input object and the ids it belongs to.

    ``rerun`` marks a requested re-run (``panoptes-network reprocess``): a step that already
    finished this input runs again once per rerun token, and passes the token on (``then``).
    """

    ref: ObjectRef
    image_id: str
    sequence_id: str
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    rerun: str | None = None

    REQUIRED = ("bucket", "name", "generation", "image_id", "sequence_id")

    def then(self, ref: ObjectRef, extra: Mapping[str, Any]) -> StepMessage:
        """The message for the next step about the same image (a rerun stays a rerun)."""
        return StepMessage(ref, self.image_id, self.sequence_id, extra, self.rerun)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.extra,
            "bucket": self.ref.bucket,
            "name": self.ref.name,
            "generation": self.ref.generation,
            "image_id": self.image_id,
            "sequence_id": self.sequence_id,
            **({"rerun": self.rerun} if self.rerun else {}),
        }

    def encode(self) -> tuple[bytes, dict[str, str]]:
        """Data and attributes as published."""
        return json.dumps(self.to_json(), sort_keys=True).encode(), {"schema_version": SCHEMA_VERSION}


def parse_step_message(message: PushMessage) -> StepMessage:
    """Validate one of our own step messages (fields and ``schema_version``)."""
    data = _schema_checked(message)
    missing = [key for key in StepMessage.REQUIRED if key not in data]
    if missing:
        raise MalformedRequest(f"step message lacks {', '.join(missing)}")
    for key in ("bucket", "name", "image_id", "sequence_id"):
        if not isinstance(data[key], str) or not data[key]:
            raise MalformedRequest(f"step message field {key!r} must be a non-empty string")
    rerun = data.get("rerun")
    if rerun is not None and (not isinstance(rerun, str) or not rerun):
        raise MalformedRequest("step message field 'rerun' must be a non-empty string when present")
    ref = ObjectRef(data["bucket"], data["name"], _generation(data["generation"], "generation"))
    extra = {k: v for k, v in data.items() if k not in (*StepMessage.REQUIRED, "rerun")}
    return StepMessage(ref, data["image_id"], data["sequence_id"], extra, rerun)


@dataclasses.dataclass(frozen=True)
class ObservationMessage:
    """``process-observation``: process one observation (``reason``: why now, e.g. its end marker,
    the quiet period, a late frame). ``rerun`` makes a finished observation run again once per
    token and replace its products."""

    sequence_id: str
    reason: str
    rerun: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"sequence_id": self.sequence_id, "reason": self.reason, **({"rerun": self.rerun} if self.rerun else {})}

    def encode(self) -> tuple[bytes, dict[str, str]]:
        """Data and attributes as published."""
        return json.dumps(self.to_json(), sort_keys=True).encode(), {"schema_version": SCHEMA_VERSION}


def _schema_checked(message: PushMessage) -> dict[str, Any]:
    version = message.attributes.get("schema_version")
    if version != SCHEMA_VERSION:
        raise MalformedRequest(f"schema_version {version!r} is not supported (expected {SCHEMA_VERSION!r})")
    return message.json()


def parse_observation_message(message: PushMessage) -> ObservationMessage:
    """Validate a ``process-observation`` message (``sequence_id``, ``reason``, optional ``rerun``)."""
    data = _schema_checked(message)
    for key in ("sequence_id", "reason"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise MalformedRequest(f"observation message field {key!r} must be a non-empty string")
    if not SEQUENCE_ID_RE.fullmatch(data["sequence_id"]):
        raise MalformedRequest(f"sequence_id {data['sequence_id']!r} is not {{unit}}_{{camera}}_{{sequence_time}}")
    rerun = data.get("rerun")
    if rerun is not None and (not isinstance(rerun, str) or not rerun):
        raise MalformedRequest("observation message field 'rerun' must be a non-empty string when present")
    return ObservationMessage(data["sequence_id"], data["reason"], rerun)


@dataclasses.dataclass(frozen=True)
class SweepTick:
    """A periodic ``observation-sweep`` message (Cloud Scheduler, or the local stack's timer): its
    content does not matter, the time it is handled does."""

    message_id: str
    rerun: None = None


def parse_sweep_tick(message: PushMessage) -> SweepTick:
    return SweepTick(message.message_id)
