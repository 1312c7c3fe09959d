"""Names of every cloud resource the deployment creates or refers to, in one place.

The same functions produce literal names for ``bin/deploy`` and Cloud Build substitution
tokens (``${PROJECT_ID}``) for ``cloudbuild.yaml``, so that the two cannot disagree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

REPOSITORY = "panoptes"  # Artifact Registry (docker) repository of the service images
SQL_INSTANCE = "panoptes-sql"
SQL_DATABASE = "panoptes"
DATABASE_URL_SECRET = "panoptes-database-url"  # Secret Manager: the plate-solver's DATABASE_URL
MIN_RETRY_DELAY = "10s"
MAX_RETRY_DELAY = "600s"


@dataclasses.dataclass(frozen=True)
class CloudNames:
    """Resource names in one project and region."""

    project: str
    region: str
    project_number: str
    buckets: Mapping[str, str]  # logical key -> bucket name (topology names + optional suffix)

    def account(self, name: str) -> str:
        return f"{name}@{self.project}.iam.gserviceaccount.com"

    @property
    def runner(self) -> str:
        """Identity of the Cloud Run services (storage, Firestore, publish, Cloud SQL)."""
        return self.account("panoptes-runner")

    @property
    def invoker(self) -> str:
        """Identity of the push subscriptions' OIDC tokens (run.invoker only)."""
        return self.account("panoptes-invoker")

    @property
    def builder(self) -> str:
        """Identity of Cloud Build (push images, deploy Cloud Run as the runner)."""
        return self.account("panoptes-builder")

    @property
    def pubsub_agent(self) -> str:
        return f"service-{self.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"

    @property
    def scheduler_agent(self) -> str:
        return f"service-{self.project_number}@gcp-sa-cloudscheduler.iam.gserviceaccount.com"

    @property
    def storage_agent(self) -> str:
        return f"service-{self.project_number}@gs-project-accounts.iam.gserviceaccount.com"

    @property
    def build_bucket(self) -> str:
        """Where ``gcloud builds submit`` stages the source (readable by the builder only)."""
        return f"{self.project}-panoptes-builds"

    @property
    def registry(self) -> str:
        return f"{self.region}-docker.pkg.dev/{self.project}/{REPOSITORY}"

    def image(self, service: str, tag: str) -> str:
        return f"{self.registry}/{service}:{tag}"

    def service_url(self, service: str) -> str:
        """Cloud Run's deterministic URL: the push endpoint and the OIDC audience."""
        return f"https://{service}-{self.project_number}.{self.region}.run.app"

    @property
    def sql_connection(self) -> str:
        return f"{self.project}:{self.region}:{SQL_INSTANCE}"

    @property
    def sql_import_bucket(self) -> str:
        """Where ``bin/deploy infra`` puts the schema file for Cloud SQL to import (read by the
        instance's own service account, and nothing else of the pipeline)."""
        return f"{self.project}-panoptes-sql-import"


def suffixed_buckets(buckets: Mapping[str, str], suffix: str) -> dict[str, str]:
    """Bucket names are global: a suffix gives a project (or a test instance) its own."""
    return {key: f"{name}{suffix}" for key, name in buckets.items()}
