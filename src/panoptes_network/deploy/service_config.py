"""Per-service Cloud Run and gunicorn settings, read from the topology's ``[[services]]`` blocks.

The topology is the one source of truth: the Dockerfile's gunicorn command and the
``gcloud run deploy`` flags are both generated from these values. A service that sets none of
them gets the defaults below, so a step added to the topology deploys without code changes.
"""

from __future__ import annotations

import dataclasses
import tomllib
from importlib import resources

from panoptes_network.core.topology import WEB_TIMEOUT_SECONDS, Service, WebService, parse_topology

DEFAULT_MEMORY = "1Gi"  # Cloud Run memory limit (a full frame in float32 is about 100 MB)
DEFAULT_CPU = 1
DEFAULT_MAX_INSTANCES = 10  # caps cost and the load on Firestore/Cloud SQL during a backlog
DEFAULT_WORKERS = 1  # one gunicorn process per container: Cloud Run scales containers instead
DEFAULT_THREADS = 4  # threads per worker; concurrency defaults to workers x threads
DEPLOY_KEYS = ("memory", "cpu", "concurrency", "timeout_seconds", "max_instances", "workers", "threads", "cloud_sql")


@dataclasses.dataclass(frozen=True)
class ServiceDeployment:
    """One service of the topology with everything its container and Cloud Run need."""

    service: Service | WebService
    memory: str = DEFAULT_MEMORY
    cpu: int = DEFAULT_CPU
    concurrency: int = DEFAULT_WORKERS * DEFAULT_THREADS
    timeout_seconds: int = 60
    max_instances: int = DEFAULT_MAX_INSTANCES
    workers: int = DEFAULT_WORKERS
    threads: int = DEFAULT_THREADS
    cloud_sql: bool = False  # connect the Cloud SQL instance and set DATABASE_URL from its secret

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def push(self) -> Service | None:
        """The push service, or None for a web service (no subscription, nobody pushes to it)."""
        return self.service if isinstance(self.service, Service) else None

    @property
    def public(self) -> bool:
        """Anyone may call it: only a web service the topology marks ``public``."""
        return isinstance(self.service, WebService) and self.service.public


def topology_text() -> str:
    """The project's topology document, as shipped with the package."""
    return resources.files("panoptes_network").joinpath("resources/topology.toml").read_text()


def service_deployments(text: str | None = None) -> tuple[ServiceDeployment, ...]:
    """Every service of the topology with its deployment settings, defaults filled in.

    ``concurrency`` defaults to workers x threads and ``timeout_seconds`` to the push ack
    deadline (a request still running after it is pushed again anyway). Push services first,
    then the web services, each in topology order.
    """
    text = topology_text() if text is None else text
    topology = parse_topology(text)
    blocks = {block["name"]: block for block in tomllib.loads(text).get("services", [])}
    deployments = []
    services: tuple[Service | WebService, ...] = (*topology.services, *topology.web_services)
    for service in services:
        given = {key: blocks[service.name][key] for key in DEPLOY_KEYS if key in blocks[service.name]}
        workers = int(given.get("workers", DEFAULT_WORKERS))
        threads = int(given.get("threads", DEFAULT_THREADS))
        deployment = ServiceDeployment(
            service=service,
            memory=str(given.get("memory", DEFAULT_MEMORY)),
            cpu=int(given.get("cpu", DEFAULT_CPU)),
            concurrency=int(given.get("concurrency", workers * threads)),
            timeout_seconds=int(given.get("timeout_seconds", default_timeout(service))),
            max_instances=int(given.get("max_instances", DEFAULT_MAX_INSTANCES)),
            workers=workers,
            threads=threads,
            cloud_sql=bool(given.get("cloud_sql", False)),
        )
        check(deployment)
        deployments.append(deployment)
    return tuple(deployments)


def default_timeout(service: Service | WebService) -> int:
    return service.ack_deadline_seconds if isinstance(service, Service) else WEB_TIMEOUT_SECONDS


def check(deployment: ServiceDeployment) -> None:
    """Refuse settings that would queue requests inside a container or cut them short."""
    problems = []
    if deployment.concurrency > deployment.workers * deployment.threads:
        problems.append(
            f"concurrency {deployment.concurrency} exceeds workers x threads "
            f"({deployment.workers} x {deployment.threads}): requests would wait inside the container"
        )
    if not 1 <= deployment.timeout_seconds <= 3600:
        problems.append(f"timeout_seconds {deployment.timeout_seconds} is outside Cloud Run's 1-3600 s")
    if problems:
        raise ValueError(f"{deployment.name}: " + "; ".join(problems))


def service_deployment(name: str, text: str | None = None) -> ServiceDeployment:
    """One service's deployment settings."""
    for deployment in service_deployments(text):
        if deployment.name == name:
            return deployment
    known = ", ".join(d.name for d in service_deployments(text))
    raise KeyError(f"no service {name!r} in the topology (known: {known})")
