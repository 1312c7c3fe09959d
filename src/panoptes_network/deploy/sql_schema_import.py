"""``bin/deploy infra``, last part: import the Cloud SQL schema into the instance when it changed.

Cloud SQL imports a SQL file from Cloud Storage as the instance's own service account
(``serviceAccountEmailAddress``), which exists only once the instance does; so this part is
planned after the rest of infra has been applied. The instance carries a label with the hash
of the schema file it imported last: the same hash plans nothing; another one (a changed
schema, or none yet) plans the upload of the file under a name of its hash, read access for
the instance, the import, and the new label (set with ``gcloud beta``: the GA track's
``sql instances patch`` has no label flags). Everything here is gcloud: no database
password, network path or SQL client is needed on the deploying machine.
"""

from __future__ import annotations

import dataclasses
import json

from panoptes_network.deploy.cloud_names import SQL_DATABASE, SQL_INSTANCE, CloudNames
from panoptes_network.deploy.gcloud_runner import Change, Gcloud, GcloudError
from panoptes_network.deploy.sql_schema import SCHEMA_FILE, schema_hash

SCHEMA_LABEL = "panoptes-schema"
# In a dry run before the instance exists its service account is not known yet: this stands in.
UNKNOWN_ACCOUNT = f"SERVICE-ACCOUNT-OF-{SQL_INSTANCE}"


@dataclasses.dataclass(frozen=True)
class SqlInstance:
    """What the schema import needs to know of the instance."""

    account: str  # its service account: reads the file to import
    schema: str | None  # the hash label: the schema it imported last


def instance_read(names: CloudNames) -> tuple[str, ...]:
    """The one read of the instance (infra's existence check uses it too)."""
    return (
        "sql", "instances", "describe", SQL_INSTANCE, f"--project={names.project}",
        "--format=json(name,serviceAccountEmailAddress,settings.userLabels)",
    )  # fmt: skip


def read_instance(names: CloudNames, gcloud: Gcloud) -> SqlInstance | None:
    """The instance's service account and schema label, or None while it does not exist."""
    output = gcloud.read(instance_read(names))
    if output is None or not output.strip():
        return None
    described = json.loads(output)
    account = described.get("serviceAccountEmailAddress")
    if not account:
        return None
    labels = (described.get("settings") or {}).get("userLabels") or {}
    return SqlInstance(account, labels.get(SCHEMA_LABEL))


def schema_uri(names: CloudNames, digest: str) -> str:
    return f"gs://{names.sql_import_bucket}/schema-{digest}.sql"


def plan_schema_import(names: CloudNames, schema_text: str, gcloud: Gcloud) -> list[Change]:
    """The changes that bring the instance to ``schema_text`` (the content of ``SCHEMA_FILE``)."""
    digest = schema_hash(schema_text)
    instance = read_instance(names, gcloud)
    if instance is not None and instance.schema == digest:
        return []
    if instance is None and not gcloud.dry_run:
        raise GcloudError(
            f"Cloud SQL instance {SQL_INSTANCE} not found (or without service account): cannot import the schema"
        )
    account = instance.account if instance else UNKNOWN_ACCOUNT
    uri, p = schema_uri(names, digest), f"--project={names.project}"
    label = f"{SCHEMA_LABEL}={digest}"
    return [
        Change(f"upload the schema {digest} ({SCHEMA_FILE})", ("storage", "cp", str(SCHEMA_FILE), uri)),
        Change(
            f"let {SQL_INSTANCE} read it (adding a binding it has changes nothing)",
            (
                "storage",
                "buckets",
                "add-iam-policy-binding",
                f"gs://{names.sql_import_bucket}",
                f"--member=serviceAccount:{account}",
                "--role=roles/storage.objectViewer",
            ),
        ),  # fmt: skip
        Change(
            f"create the missing tables and indexes in database {SQL_DATABASE}",
            ("sql", "import", "sql", SQL_INSTANCE, uri, p, f"--database={SQL_DATABASE}", "--quiet"),
        ),
        Change(
            f"record schema {digest} on {SQL_INSTANCE}",
            # only the beta (and alpha) track's patch sets labels; the GA describe reads them
            ("beta", "sql", "instances", "patch", SQL_INSTANCE, p, f"--update-labels={label}", "--quiet"),
        ),
    ]
