"""The declarative topology (``resources/topology.toml``): buckets, topics, services.

Every driver reads the same description, so the embedded runner, the local stack and the
deployment cannot drift apart (BANZAI's "pipeline as data").
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import tomllib
from importlib import resources
from types import ModuleType

MESSAGE_KINDS = ("storage-notification", "step", "observation", "sweep")
# A push that fails this many times goes to the subscription's dead-letter topic, where a pull
# subscription of the same name keeps it for inspection and replay (cloud and local stack alike).
MAX_DELIVERY_ATTEMPTS = 5
# A web service has no ack deadline to take its request timeout from; a page never needs a minute.
WEB_TIMEOUT_SECONDS = 60


def dead_letter_topic(subscription: str) -> str:
    """The dead-letter topic of a push subscription (and the pull subscription that keeps it)."""
    return f"{subscription}-dead-letter"


@dataclasses.dataclass(frozen=True)
class Notification:
    bucket: str  # logical bucket key
    topic: str
    event_types: tuple[str, ...]
    payload_format: str


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A periodic message into a topic: Cloud Scheduler in the cloud, a timer on the local stack."""

    name: str
    topic: str
    every_minutes: int

    @property
    def cron(self) -> str:
        return f"*/{self.every_minutes} * * * *"


@dataclasses.dataclass(frozen=True)
class Service:
    """One deployable step: it listens on ``topic`` and may publish to ``publishes``."""

    name: str
    step: str  # dotted module path of the step
    topic: str
    message: str
    publishes: tuple[str, ...]
    ack_deadline_seconds: int

    @property
    def subscription(self) -> str:
        return f"{self.topic}-{self.name}"

    def step_module(self) -> ModuleType:
        return importlib.import_module(self.step)


@dataclasses.dataclass(frozen=True)
class WebService:
    """A service people call, not a subscription: no topic and no step, an app factory instead.

    ``app`` is ``module:function``, a function taking the ``Context`` and returning the Flask app.
    ``public`` services are the only ones anyone may call (``--allow-unauthenticated``).
    """

    name: str
    app: str
    public: bool

    @property
    def module(self) -> str:
        return self.app.partition(":")[0]

    @property
    def function(self) -> str:
        return self.app.partition(":")[2]


@dataclasses.dataclass(frozen=True)
class Topology:
    buckets: dict[str, str]
    topics: tuple[str, ...]
    notifications: tuple[Notification, ...]
    services: tuple[Service, ...]  # the steps behind push subscriptions
    schedules: tuple[Schedule, ...] = ()
    web_services: tuple[WebService, ...] = ()

    @property
    def service_names(self) -> tuple[str, ...]:
        """Every deployed service, push and web: each has an image, a folder and an extra."""
        return (*(s.name for s in self.services), *(w.name for w in self.web_services))

    def web_service(self, name: str) -> WebService | None:
        return next((w for w in self.web_services if w.name == name), None)

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        known = ", ".join(s.name for s in self.services)
        raise KeyError(f"no service {name!r} in the topology (known: {known})")

    def listeners(self, topic: str) -> list[Service]:
        return [s for s in self.services if s.topic == topic]


def parse_topology(text: str) -> Topology:
    """Parse and cross-check a topology document."""
    doc = tomllib.loads(text)
    buckets = dict(doc["buckets"])
    topics = tuple(t["name"] for t in doc["topics"])
    notifications = tuple(
        Notification(n["bucket"], n["topic"], tuple(n["event_types"]), n["payload_format"])
        for n in doc.get("notifications", [])
    )
    blocks = doc.get("services", [])
    services = tuple(
        Service(
            name=s["name"],
            step=s["step"],
            topic=s["topic"],
            message=s["message"],
            publishes=tuple(s.get("publishes", ())),
            ack_deadline_seconds=int(s["ack_deadline_seconds"]),
        )
        for s in blocks
        if "app" not in s
    )
    web_services = tuple(
        WebService(name=s["name"], app=s["app"], public=bool(s.get("public", False))) for s in blocks if "app" in s
    )
    schedules = tuple(Schedule(s["name"], s["topic"], int(s["every_minutes"])) for s in doc.get("schedules", []))
    problems = [f"schedule to unknown topic {s.topic!r}" for s in schedules if s.topic not in topics]
    problems += [f"notification of unknown bucket {n.bucket!r}" for n in notifications if n.bucket not in buckets]
    for service in services:
        problems += [
            f"{service.name}: unknown topic {t!r}" for t in (service.topic, *service.publishes) if t not in topics
        ]
        if service.message not in MESSAGE_KINDS:
            problems.append(f"{service.name}: message kind {service.message!r} not in {MESSAGE_KINDS}")
    problems += [f"notification to unknown topic {n.topic!r}" for n in notifications if n.topic not in topics]
    problems += [f"{s['name']}: a service has a step or an app, not both" for s in blocks if "app" in s and "step" in s]
    problems += [f"{w.name}: app {w.app!r} is not module:function" for w in web_services if not w.function]
    if problems:
        raise ValueError("invalid topology: " + "; ".join(problems))
    return Topology(buckets, topics, notifications, services, schedules, web_services)


@functools.cache
def load_topology() -> Topology:
    """The project's topology, shipped with the package."""
    text = resources.files("panoptes_network").joinpath("resources/topology.toml").read_text()
    return parse_topology(text)
