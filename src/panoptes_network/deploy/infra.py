"""``bin/deploy infra``: the project's shared resources, planned from the topology.

Every resource is described first (a read) and created only when missing, so a second run
plans no changes. What is planned, in order: APIs, service accounts, the image repository,
Firestore, buckets, topics and dead-letter topics, push subscriptions (OIDC, ack deadline,
retry policy, dead letters), the IAM bindings on all of these, the raw bucket's notification,
the Cloud Scheduler jobs of the topology's schedules (the observation sweep) and, when a
service uses it, Cloud SQL (its schema is imported afterwards, by
``sql_schema_import``, once the instance exists).

Firestore indexes: the only query the code makes is ``MetadataStore.list(collection,
where=...)``, equality filters ordered by document id; Firestore serves those from its
automatic single-field indexes, so no composite index is planned (add one here when a query
gains a range filter or another order).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

from panoptes_network.core.topology import MAX_DELIVERY_ATTEMPTS, Schedule, Service, Topology, dead_letter_topic
from panoptes_network.deploy.cloud_names import (
    DATABASE_URL_SECRET,
    MAX_RETRY_DELAY,
    MIN_RETRY_DELAY,
    REPOSITORY,
    SQL_DATABASE,
    SQL_INSTANCE,
    CloudNames,
)
from panoptes_network.deploy.gcloud_runner import Change, Gcloud
from panoptes_network.deploy.service_config import ServiceDeployment
from panoptes_network.deploy.sql_schema_import import instance_read

APIS = (
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "pubsub.googleapis.com",
    "storage.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "sqladmin.googleapis.com",
    "secretmanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "bigquery.googleapis.com",  # external tables over the Parquet products (bigquery_tables.py)
)
PAYLOAD_FORMATS = {"JSON_API_V1": "json", "NONE": "none"}
DEAD_LETTER_RETENTION = "7d"  # Pub/Sub's maximum: replay within a week
SQL_VERSION = "POSTGRES_16"
SQL_TIER = "db-g1-small"
POLICY_LINES = ("--flatten=bindings[].members", "--format=value(bindings.role,bindings.members)")


@dataclasses.dataclass(frozen=True)
class Resource:
    """A resource: the read that finds it and the commands that create it."""

    what: str
    check: tuple[str, ...]
    create: tuple[str, ...]
    expect: str | None = None  # the check's output must contain this (else: any output)
    expect_line: str | None = None  # ... and have exactly this line


def plan_infra(
    topology: Topology, deployments: Sequence[ServiceDeployment], names: CloudNames, gcloud: Gcloud
) -> list[Change]:
    """The changes that make the project match the topology (reads only; nothing is changed)."""
    changes: list[Change] = []
    for resource in infra_resources(topology, deployments, names):
        if not gcloud.exists(resource.check, resource.expect, resource.expect_line):
            changes.append(Change(resource.what, resource.create))
    return changes


def infra_resources(
    topology: Topology, deployments: Sequence[ServiceDeployment], names: CloudNames
) -> Iterator[Resource]:
    """Every resource, in an order where each one's dependencies come first."""
    p = f"--project={names.project}"
    for api in APIS:
        yield Resource(
            f"API {api}",
            ("services", "list", p, "--enabled", f"--filter=config.name={api}", "--format=value(config.name)"),
            ("services", "enable", api, p),
        )
    for account, purpose in (
        (names.runner, "runs the Cloud Run services"),
        (names.invoker, "signs the push subscriptions' OIDC tokens"),
        (names.builder, "builds images and deploys services"),
    ):
        yield Resource(
            f"service account {account}",
            ("iam", "service-accounts", "describe", account, p, "--format=value(email)"),
            ("iam", "service-accounts", "create", account.split("@")[0], p, f"--display-name=PANOPTES: {purpose}"),
        )
    yield Resource(
        f"image repository {names.registry}",
        ("artifacts", "repositories", "describe", REPOSITORY, p, f"--location={names.region}", "--format=value(name)"),
        (
            "artifacts",
            "repositories",
            "create",
            REPOSITORY,
            p,
            f"--location={names.region}",
            "--repository-format=docker",
        ),
    )
    yield Resource(
        "Firestore database (default), native mode",
        ("firestore", "databases", "describe", p, "--database=(default)", "--format=value(name)"),
        ("firestore", "databases", "create", p, f"--location={names.region}", "--type=firestore-native"),
    )
    for bucket_name in (*names.buckets.values(), names.build_bucket):
        yield private_bucket(bucket_name, names)
    pushed = push_services(deployments)
    subscriptions = [service.subscription for service in pushed]
    for topic in (*topology.topics, *map(dead_letter_topic, subscriptions)):
        yield Resource(
            f"topic {topic}",
            ("pubsub", "topics", "describe", topic, p, "--format=value(name)"),
            ("pubsub", "topics", "create", topic, p),
        )
    for subscription in subscriptions:
        dead_letters = dead_letter_topic(subscription)
        yield Resource(
            f"pull subscription {dead_letters}: keeps dead letters for replay",
            ("pubsub", "subscriptions", "describe", dead_letters, p, "--format=value(name)"),
            (
                "pubsub", "subscriptions", "create", dead_letters, p, f"--topic={dead_letters}",
                f"--message-retention-duration={DEAD_LETTER_RETENTION}", "--expiration-period=never",
            ),
        )  # fmt: skip
    for service in pushed:
        yield push_subscription(service, names)
    yield from iam_bindings(topology, deployments, names)  # on the resources above
    for notification in topology.notifications:  # once Cloud Storage may publish to the topic
        bucket = names.buckets[notification.bucket]
        yield Resource(
            f"notification gs://{bucket} -> {notification.topic}",
            ("storage", "buckets", "notifications", "list", f"gs://{bucket}", p, "--format=json"),
            (
                "storage", "buckets", "notifications", "create", f"gs://{bucket}", p,
                f"--topic={notification.topic}",
                f"--event-types={','.join(notification.event_types)}",
                f"--payload-format={PAYLOAD_FORMATS[notification.payload_format]}",
            ),
            expect=f'projects/{names.project}/topics/{notification.topic}"',
        )  # fmt: skip
    for schedule in topology.schedules:  # once the scheduler may publish to its topic
        yield scheduler_job(schedule, names)
    if any(d.cloud_sql for d in deployments):
        yield from cloud_sql(names)


def scheduler_job(schedule: Schedule, names: CloudNames) -> Resource:
    """A Cloud Scheduler job that publishes ``{}`` to the schedule's topic (the sweep reads no content)."""
    where = (f"--project={names.project}", f"--location={names.region}")
    return Resource(
        f"scheduler job {schedule.name}: every {schedule.every_minutes} min -> topic {schedule.topic}",
        ("scheduler", "jobs", "describe", schedule.name, *where, "--format=value(name)"),
        (
            "scheduler", "jobs", "create", "pubsub", schedule.name, *where,
            f"--schedule={schedule.cron}", "--time-zone=Etc/UTC",
            f"--topic={schedule.topic}", "--message-body={}",
        ),
    )  # fmt: skip


def private_bucket(name: str, names: CloudNames) -> Resource:
    """A private bucket in the deployment's region."""
    p = f"--project={names.project}"
    return Resource(
        f"bucket gs://{name}",
        ("storage", "buckets", "describe", f"gs://{name}", p, "--format=value(name)"),
        (
            "storage", "buckets", "create", f"gs://{name}", p, f"--location={names.region}",
            "--uniform-bucket-level-access", "--public-access-prevention",
        ),
    )  # fmt: skip


def push_services(deployments: Sequence[ServiceDeployment]) -> list[Service]:
    """The services behind push subscriptions (a web service has none)."""
    return [d.push for d in deployments if d.push is not None]


def push_subscription(service: Service, names: CloudNames) -> Resource:
    """The service's push subscription: OIDC as the invoker, its ack deadline, retries, dead letters."""
    url = names.service_url(service.name)
    return Resource(
        f"push subscription {service.subscription} -> {service.name}",
        ("pubsub", "subscriptions", "describe", service.subscription, f"--project={names.project}", "--format=value(name)"),
        (
            "pubsub", "subscriptions", "create", service.subscription, f"--project={names.project}",
            f"--topic={service.topic}",
            f"--push-endpoint={url}/",
            f"--push-auth-service-account={names.invoker}",
            f"--push-auth-token-audience={url}",
            f"--ack-deadline={service.ack_deadline_seconds}",
            f"--min-retry-delay={MIN_RETRY_DELAY}",
            f"--max-retry-delay={MAX_RETRY_DELAY}",
            f"--dead-letter-topic={dead_letter_topic(service.subscription)}",
            f"--max-delivery-attempts={MAX_DELIVERY_ATTEMPTS}",
            "--expiration-period=never",
        ),
    )  # fmt: skip


def binding(
    group: tuple[str, ...], name: str, member: str, role: str, where: tuple[str, ...] = (), create: tuple[str, ...] = ()
) -> Resource:
    """An IAM binding on resource ``name`` of ``group`` (e.g. ``("pubsub", "topics")``), found as a
    ``role<TAB>member`` line of its policy (not every get-iam-policy has ``--filter``);
    ``where`` flags locate the resource, ``create`` flags go to the add only."""
    return Resource(
        f"IAM {role} for {member} on {group[-1]} {name}",
        (*group, "get-iam-policy", name, *where, *POLICY_LINES),
        (*group, "add-iam-policy-binding", name, *where, f"--member={member}", f"--role={role}", *create),
        expect_line=f"{role}\t{member}",
    )


def project_binding(names: CloudNames, member: str, role: str) -> Resource:
    """A project-wide role (for services whose resources have no IAM of their own)."""
    return binding(("projects",), names.project, member, role, create=("--condition=None",))


def iam_bindings(topology: Topology, deployments: Sequence[ServiceDeployment], names: CloudNames) -> Iterator[Resource]:
    """Least privilege: each identity gets the roles its job needs, on the narrowest resource."""
    p = (f"--project={names.project}",)
    runner, builder = f"serviceAccount:{names.runner}", f"serviceAccount:{names.builder}"
    pubsub_agent = f"serviceAccount:{names.pubsub_agent}"
    topics, subscriptions = ("pubsub", "topics"), ("pubsub", "subscriptions")
    # Pub/Sub mints the push OIDC tokens as the invoker (run.invoker on each service is granted
    # by bin/deploy SERVICE, once the service exists).
    yield binding(("iam", "service-accounts"), names.invoker, pubsub_agent, "roles/iam.serviceAccountTokenCreator", p)
    # The services: objects in every bucket (create-only writes; compress-fits deletes), records.
    for bucket in names.buckets.values():
        yield binding(("storage", "buckets"), f"gs://{bucket}", runner, "roles/storage.objectAdmin")
    yield project_binding(names, runner, "roles/datastore.user")
    for topic in sorted({t for service in push_services(deployments) for t in service.publishes}):
        yield binding(topics, topic, runner, "roles/pubsub.publisher", p)
    # Cloud Storage publishes the bucket notifications.
    for notification in topology.notifications:
        yield binding(topics, notification.topic, f"serviceAccount:{names.storage_agent}", "roles/pubsub.publisher", p)
    # Cloud Scheduler publishes the schedules' messages.
    for schedule in topology.schedules:
        yield binding(topics, schedule.topic, f"serviceAccount:{names.scheduler_agent}", "roles/pubsub.publisher", p)
    # Dead letters: Pub/Sub forwards to the dead-letter topic and acks the source subscription.
    for service in push_services(deployments):
        subscription = service.subscription
        yield binding(topics, dead_letter_topic(subscription), pubsub_agent, "roles/pubsub.publisher", p)
        yield binding(subscriptions, subscription, pubsub_agent, "roles/pubsub.subscriber", p)
    # The builder: stage sources, push images, deploy services that run as the runner.
    yield binding(("storage", "buckets"), f"gs://{names.build_bucket}", builder, "roles/storage.objectAdmin")
    location = (*p, f"--location={names.region}")
    yield binding(("artifacts", "repositories"), REPOSITORY, builder, "roles/artifactregistry.writer", location)
    yield project_binding(names, builder, "roles/run.admin")
    yield project_binding(names, builder, "roles/logging.logWriter")
    yield binding(("iam", "service-accounts"), names.runner, builder, "roles/iam.serviceAccountUser", p)


def cloud_sql(names: CloudNames) -> Iterator[Resource]:
    """The PostgreSQL instance, database, the bucket its schema file is imported from, and the
    secret holding ``DATABASE_URL``.

    The tables are imported afterwards (``sql_schema_import``). The secret's value (a
    password) is never generated here: the README's bootstrap adds it.
    """
    p = f"--project={names.project}"
    runner = f"serviceAccount:{names.runner}"
    yield Resource(
        f"Cloud SQL instance {SQL_INSTANCE}",
        instance_read(names),
        (
            "sql", "instances", "create", SQL_INSTANCE, p, f"--region={names.region}",
            f"--database-version={SQL_VERSION}", "--edition=enterprise", f"--tier={SQL_TIER}",
            "--storage-auto-increase",
        ),
    )  # fmt: skip
    yield Resource(
        f"Cloud SQL database {SQL_DATABASE}",
        ("sql", "databases", "describe", SQL_DATABASE, f"--instance={SQL_INSTANCE}", p, "--format=value(name)"),
        ("sql", "databases", "create", SQL_DATABASE, f"--instance={SQL_INSTANCE}", p),
    )
    yield private_bucket(names.sql_import_bucket, names)
    yield Resource(
        f"secret {DATABASE_URL_SECRET}",
        ("secrets", "describe", DATABASE_URL_SECRET, p, "--format=value(name)"),
        ("secrets", "create", DATABASE_URL_SECRET, p, "--replication-policy=automatic"),
    )
    yield binding(("secrets",), DATABASE_URL_SECRET, runner, "roles/secretmanager.secretAccessor", (p,))
    yield project_binding(names, runner, "roles/cloudsql.client")
