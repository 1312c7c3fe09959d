"""What frames cost on Google Cloud at list prices: the arithmetic, and the prices in one place.

Cloud Run bills the CPU and memory it allocates to an instance while it serves a request
(request-based billing), each request rounded up to 100 ms, whatever the code uses of them: a
request's cost is its duration times the service's ``cpu`` and ``memory`` from the topology.
Concurrent requests on one instance would share that allocation; the model bills each request
alone (a frame's chain runs one request at a time per service), which is the upper bound.
Cloud Storage bills GB-months stored and operations (class A: object writes and listings;
class B: object and metadata reads; deletes are free). Pub/Sub bills bytes published and
delivered, at least 1000 bytes per request (every message of the pipeline is smaller).

Not in the model: Firestore document operations, Cloud SQL (an instance billed by the hour,
whatever the frames), network egress (none within a region), free tiers and discounts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from panoptes_network.deploy.service_config import ServiceDeployment

# List prices in USD, us-central1 (a Tier 1 region), as published on cloud.google.com's pricing
# pages for Cloud Run, Cloud Storage and Pub/Sub, read on PRICES_DATE. Check them before use.
PRICES_DATE = "2026-12-01"
CLOUD_RUN_VCPU_SECOND = 0.000024  # CPU allocated only during requests, beyond the free tier
CLOUD_RUN_GIB_SECOND = 0.0000025
CLOUD_RUN_REQUEST = 0.40 / 1_000_000
CLOUD_RUN_BILLING_STEP_S = 0.1  # each request's time is rounded up to this
STORAGE_STANDARD_GB_MONTH = 0.020  # Standard storage in a region
STORAGE_CLASS_A = 0.005 / 1_000  # insert, list, compose...
STORAGE_CLASS_B = 0.0004 / 1_000  # get (object or metadata)
PUBSUB_TIB = 40.0  # publish and delivery throughput
PUBSUB_MIN_BYTES = 1_000  # billed per publish or push request at least

GIB = 1 << 30
TIB = 1 << 40
GB = 1_000_000_000


@dataclasses.dataclass(frozen=True)
class Request:
    """One push request a service served, as measured (the embedded runner's log line)."""

    service: str
    seconds: float


@dataclasses.dataclass(frozen=True)
class Usage:
    """What ``frames`` frames used: requests, bytes left per bucket, storage operations, messages."""

    frames: int
    requests: Sequence[Request]
    stored_bytes: Mapping[str, int]  # bucket key -> bytes left in it
    class_a: int  # object writes and listings
    class_b: int  # object and metadata reads
    messages: int  # Pub/Sub messages published (each also pushed once)


@dataclasses.dataclass(frozen=True)
class Costs:
    """Per 1,000 frames: allocations, storage, operations and dollars (each line of the bill)."""

    vcpu_seconds: Mapping[str, float]  # service -> vCPU-seconds allocated
    gib_seconds: Mapping[str, float]  # service -> GiB-seconds allocated
    requests: int
    gb_months: Mapping[str, float]  # bucket -> GB stored for a month
    class_a: float
    class_b: float
    pubsub_bytes: float
    dollars: Mapping[str, float]  # bill line -> USD

    @property
    def total_dollars(self) -> float:
        return sum(self.dollars.values())


def memory_gib(memory: str) -> float:
    """A Cloud Run memory setting (``512Mi``, ``1Gi``) in GiB."""
    units = {"Mi": 1 / 1024, "Gi": 1.0}
    if memory[-2:] not in units:
        raise ValueError(f"memory {memory!r} is not in Mi or Gi")
    return float(memory[:-2]) * units[memory[-2:]]


def billed_seconds(seconds: float) -> float:
    """A request's time as Cloud Run bills it: rounded up to the next 100 ms."""
    steps = math.ceil(round(seconds / CLOUD_RUN_BILLING_STEP_S, 9))
    return max(1, steps) * CLOUD_RUN_BILLING_STEP_S


def per_thousand_frames(usage: Usage, services: Mapping[str, ServiceDeployment]) -> Costs:
    """The bill of 1,000 frames that use what ``usage`` measured on ``usage.frames``."""
    if usage.frames <= 0:
        raise ValueError("usage must cover at least one frame")
    scale = 1_000 / usage.frames
    vcpu: dict[str, float] = {}
    gib: dict[str, float] = {}
    for request in usage.requests:
        deployment = services[request.service]
        seconds = billed_seconds(request.seconds) * scale
        vcpu[request.service] = vcpu.get(request.service, 0.0) + seconds * deployment.cpu
        gib[request.service] = gib.get(request.service, 0.0) + seconds * memory_gib(deployment.memory)
    gb_months = {bucket: size * scale / GB for bucket, size in usage.stored_bytes.items()}
    requests = round(len(usage.requests) * scale)
    class_a, class_b = usage.class_a * scale, usage.class_b * scale
    pubsub_bytes = 2 * usage.messages * scale * PUBSUB_MIN_BYTES  # publish + push, each at the minimum
    dollars = {
        "cloud run cpu": sum(vcpu.values()) * CLOUD_RUN_VCPU_SECOND,
        "cloud run memory": sum(gib.values()) * CLOUD_RUN_GIB_SECOND,
        "cloud run requests": requests * CLOUD_RUN_REQUEST,
        "storage, a month": sum(gb_months.values()) * STORAGE_STANDARD_GB_MONTH,
        "storage operations": class_a * STORAGE_CLASS_A + class_b * STORAGE_CLASS_B,
        "pub/sub": pubsub_bytes / TIB * PUBSUB_TIB,
    }
    return Costs(vcpu, gib, requests, gb_months, class_a, class_b, pubsub_bytes, dollars)
