"""The local cloud stack: the real Google clients against emulators, every service under gunicorn.

Everything comes from the topology: topics, buckets, the raw bucket's notification (fake-gcs-server
publishes OBJECT_FINALIZE events into the Pub/Sub emulator) and one push subscription per
service. ``panoptes-network stack`` runs it in the foreground; the tests' fixture uses the same
``start_stack``. Push auth is off here (the emulator sends no OIDC token). The topology's
schedules (Cloud Scheduler in the cloud) run on a timer here, every
``Settings.sweep_interval_seconds`` (``PANOPTES_SWEEP_INTERVAL_SECONDS``). The web services (the
data explorer) run beside them on the same emulators, and ``describe`` prints their URLs.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from panoptes_network.core.settings import Settings, patched_env
from panoptes_network.core.topology import (
    MAX_DELIVERY_ATTEMPTS,
    WEB_TIMEOUT_SECONDS,
    Topology,
    WebService,
    dead_letter_topic,
    load_topology,
)
from panoptes_network.local import containers, emulators

GUNICORN_THREADS = 4
RETRY_MIN_BACKOFF_SECONDS = 2
RETRY_MAX_BACKOFF_SECONDS = 10
STACK_LEASE_SECONDS = 3


@dataclasses.dataclass
class LocalStack:
    """Running servers and services, and the environment a client needs to use them."""

    project: str
    pubsub: emulators.Server
    firestore: emulators.Server
    gcs: emulators.Server
    services: dict[str, emulators.Server]
    settings: Settings
    timer: ScheduleTimer | None = None
    engine: containers.Engine | None = None  # the services run from their images (--containers)

    @property
    def client_env(self) -> dict[str, str]:
        """What a Google client (or a service) needs to talk to this stack instead of the cloud."""
        return {
            "GOOGLE_CLOUD_PROJECT": self.project,
            "PUBSUB_EMULATOR_HOST": self.pubsub.host,
            "FIRESTORE_EMULATOR_HOST": self.firestore.host,
            "STORAGE_EMULATOR_HOST": self.gcs.url,
        }

    def web_services(self) -> list[WebService]:
        """The topology's web services this stack runs (the data explorer)."""
        return [web for web in load_topology().web_services if web.name in self.services]

    def servers(self) -> list[emulators.Server]:
        return [*self.services.values(), self.gcs, self.firestore, self.pubsub]

    def stop(self) -> None:
        """Stop the timer and the services first (so nothing pushes into a dead emulator), then the servers."""
        if self.timer is not None:
            self.timer.stop()
        for server in self.servers():
            server.stop()
        if self.engine is not None:  # a container whose engine client did not stop in time
            containers.remove_stack_containers(self.engine, self.project)

    def describe(self) -> str:
        lines = [f"PANOPTES local stack, project {self.project}"]
        lines += [f"  {s.name:<22} {s.url:<24} pid {s.pid}  log {s.log_path}" for s in self.servers()]
        lines += [f"{web.name}: open {self.services[web.name].url}/ in a browser" for web in self.web_services()]
        lines.append("Buckets: " + ", ".join(self.settings.buckets.values()))
        lines.append("Client environment:")
        lines += [f"  export {key}={value}" for key, value in self.client_env.items()]
        return "\n".join(lines)


_env_lock = threading.Lock()  # patched_env changes the whole process's environment


class ScheduleTimer:
    """The local stand-in for Cloud Scheduler: publishes ``{}`` to each scheduled topic every
    ``interval`` seconds, from a daemon thread, until stopped."""

    def __init__(self, pubsub_host: str, project: str, topics: tuple[str, ...], interval: float) -> None:
        from google.cloud.pubsub_v1 import PublisherClient

        with _env_lock, patched_env({"PUBSUB_EMULATOR_HOST": pubsub_host}):
            self.publisher = PublisherClient()
        self.paths = [self.publisher.topic_path(project, topic) for topic in topics]
        self.interval = interval
        self.stopping = threading.Event()
        self.ticks = 0
        self.thread = threading.Thread(target=self._run, name="schedule-timer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            for path in self.paths:
                try:
                    self.publisher.publish(path, b"{}").result(timeout=10)
                except Exception as exc:  # the emulator is stopping or paused: the next tick tries again
                    print(f"schedule timer: publishing to {path} failed: {exc!r}", file=sys.stderr)
            self.ticks += 1

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=15)


def create_topics(pubsub_host: str, project: str, topology: Topology) -> None:
    """The topology's topics, and each service's dead-letter topic with the pull subscription
    that keeps its messages (as bin/deploy infra makes them)."""
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    with _env_lock, patched_env({"PUBSUB_EMULATOR_HOST": pubsub_host}):
        publisher = PublisherClient()
        subscriber = SubscriberClient()
    for topic in topology.topics:
        publisher.create_topic(name=publisher.topic_path(project, topic))
    with subscriber:
        for service in topology.services:
            dead_letters = dead_letter_topic(service.subscription)
            publisher.create_topic(name=publisher.topic_path(project, dead_letters))
            subscriber.create_subscription(
                name=subscriber.subscription_path(project, dead_letters),
                topic=subscriber.topic_path(project, dead_letters),
            )


def create_buckets(gcs_url: str, project: str, settings: Settings) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.storage import Client

    client = Client(project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": gcs_url})
    for name in settings.buckets.values():
        client.create_bucket(name)


def create_push_subscriptions(pubsub_host: str, project: str, topology: Topology, endpoints: Mapping[str, str]) -> None:
    """One push subscription per service, with the ack deadline of the topology, a retry policy,
    and a dead-letter topic after MAX_DELIVERY_ATTEMPTS failed pushes."""
    from google.cloud.pubsub_v1 import SubscriberClient
    from google.protobuf import duration_pb2

    with _env_lock, patched_env({"PUBSUB_EMULATOR_HOST": pubsub_host}):
        subscriber = SubscriberClient()
    with subscriber:
        for service in topology.services:
            subscriber.create_subscription(
                request={
                    "name": subscriber.subscription_path(project, service.subscription),
                    "topic": subscriber.topic_path(project, service.topic),
                    "push_config": {"push_endpoint": endpoints[service.name] + "/"},
                    "ack_deadline_seconds": service.ack_deadline_seconds,
                    "retry_policy": {
                        "minimum_backoff": duration_pb2.Duration(seconds=RETRY_MIN_BACKOFF_SECONDS),
                        "maximum_backoff": duration_pb2.Duration(seconds=RETRY_MAX_BACKOFF_SECONDS),
                    },
                    "dead_letter_policy": {
                        "dead_letter_topic": subscriber.topic_path(project, dead_letter_topic(service.subscription)),
                        "max_delivery_attempts": MAX_DELIVERY_ATTEMPTS,
                    },
                }
            )


def start_service(name: str, log_dir: Path, env: Mapping[str, str], timeout_seconds: int) -> emulators.Server:
    """One service under gunicorn, exactly as its container runs it, ready when /healthz answers."""
    port = emulators.free_port()
    command = [
        sys.executable, "-m", "gunicorn",
        "--bind", f"{emulators.HOST}:{port}",
        "--workers", "1",
        "--threads", str(GUNICORN_THREADS),
        "--timeout", str(timeout_seconds),
        "--no-control-socket",
        f"panoptes_network.drivers.service:create_service('{name}')",
    ]  # fmt: skip
    return emulators.start_process(name, command, port, log_dir, "/healthz", env=env)


def start_stack(
    project: str,
    log_dir: Path,
    settings: Settings | None = None,
    database_url: str | None = None,
    storage_root: Path | None = None,
    engine: containers.Engine | None = None,
) -> LocalStack:
    """Start everything; on any failure, stop what was started and raise.

    ``database_url`` is the services' ``DATABASE_URL`` (the plate-solver's stamps in PostgreSQL
    instead of SQLite). With ``storage_root`` fake-gcs-server keeps objects in files there, so
    that ``stack.gcs.restart()`` (a storage outage ending) loses nothing. With ``engine`` each
    service runs from its image (bin/containers builds them) on the host network, with ``PORT``
    and the environment bin/deploy gives it, push auth off as everywhere in the stack.
    """
    topology = load_topology()
    settings = settings or Settings(project=project)
    if database_url is not None:
        settings = dataclasses.replace(settings, database_url=database_url)
    started: list[emulators.Server] = []
    try:
        # Started here (their parent-death signal follows this thread), awaited together.
        pubsub = emulators.start_pubsub(log_dir, wait=False)
        started.append(pubsub)
        firestore = emulators.start_firestore(log_dir, wait=False)
        started.append(firestore)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(emulators.await_ready, (pubsub, firestore)))
        create_topics(pubsub.host, project, topology)
        [notification] = topology.notifications  # fake-gcs-server publishes to one topic
        events = emulators.GcsEvents(
            pubsub.host, project, notification.topic, settings.bucket(notification.bucket), ("finalize",)
        )
        gcs = emulators.start_gcs(log_dir, events=events, root=storage_root)
        started.append(gcs)
        create_buckets(gcs.url, project, settings)
        env = {
            "GOOGLE_CLOUD_PROJECT": project,
            "PANOPTES_DATA_DIR": str(log_dir / "data"),  # the plate-solver's SQLite stamps, unless DATABASE_URL
            # A crashed attempt must free its image well before the stack's retries (2-10 s, 5 attempts)
            # run out, as a minute does against the cloud's (10-600 s).
            "PANOPTES_LEASE_SECONDS": str(STACK_LEASE_SECONDS),
            "PUBSUB_EMULATOR_HOST": pubsub.host,
            "FIRESTORE_EMULATOR_HOST": firestore.host,
            "STORAGE_EMULATOR_HOST": gcs.url,
            **{f"PANOPTES_BUCKET_{key.upper()}": name for key, name in settings.buckets.items()},
            **({"DATABASE_URL": settings.database_url} if settings.database_url else {}),
            **({"PANOPTES_DATABASE_SCHEMA": settings.database_schema} if settings.database_schema else {}),
            "PANOPTES_REFERENCE_CATALOG": settings.reference_catalog,
            "PANOPTES_OBSERVATION_QUIET_MINUTES": str(settings.observation_quiet_minutes),
            "PANOPTES_MIN_FRAMES": str(settings.min_frames),
            "PANOPTES_MAX_DRIFT_PX": str(settings.max_drift_px),
            "PANOPTES_STAMP_SIZE": str(settings.stamp_size),
        }
        services: dict[str, emulators.Server] = {}
        timeouts = {s.name: s.ack_deadline_seconds for s in topology.services}
        for name in topology.service_names:  # the push services, then the data explorer
            if engine is None:
                services[name] = start_service(name, log_dir, env, timeouts.get(name, WEB_TIMEOUT_SECONDS))
            else:  # the container's own /tmp: its user cannot write the host's log directory
                container_env = {**env, "PANOPTES_DATA_DIR": containers.CONTAINER_DATA_DIR}
                services[name] = containers.start_service_container(engine, name, log_dir, container_env)
            started.append(services[name])
        create_push_subscriptions(pubsub.host, project, topology, {n: s.url for n, s in services.items()})
        scheduled = tuple(schedule.topic for schedule in topology.schedules)
        timer = ScheduleTimer(pubsub.host, project, scheduled, settings.sweep_interval_seconds) if scheduled else None
    except BaseException:
        for server in reversed(started):
            server.stop()
        if engine is not None:
            containers.remove_stack_containers(engine, project)
        raise
    return LocalStack(project, pubsub, firestore, gcs, services, settings, timer, engine)


def run_stack_forever(project: str, log_dir: Path, on_containers: bool = False) -> int:
    """``panoptes-network stack``: start, say where everything is, stop everything on Ctrl-C/SIGTERM."""
    started = time.monotonic()
    print("Starting the local stack ...", file=sys.stderr)
    try:
        engine = containers.stack_engine(load_topology(), log_dir.resolve()) if on_containers else None
        settings = dataclasses.replace(Settings.from_env(), project=project)
        stack = start_stack(project, log_dir.resolve(), settings, engine=engine)
    except (emulators.ServerError, containers.ContainerError) as exc:
        print(f"panoptes-network stack: {exc}", file=sys.stderr)
        return 1
    print(stack.describe())
    print(f"Ready in {time.monotonic() - started:.1f} s. Ctrl-C stops everything.", flush=True)
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        if stopping.is_set():  # a second Ctrl-C: go now; the children die with us (PR_SET_PDEATHSIG)
            os._exit(128 + signal.SIGINT)
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    status = 0
    while not stopping.wait(1.0):
        dead = [s for s in stack.servers() if s.process.poll() is not None]
        if dead:
            for server in dead:
                print(
                    f"{server.name} exited ({server.process.returncode}); log {server.log_path}:\n{server.log_tail()}",
                    file=sys.stderr,
                )
            status = 1
            break
    print("Stopping ... (Ctrl-C again to stop at once)", file=sys.stderr)
    stack.stop()
    return status
