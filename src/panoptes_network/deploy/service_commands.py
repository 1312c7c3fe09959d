"""The gcloud commands that build and deploy one service, as argument lists.

``run_deploy_args`` is shared by ``bin/deploy SERVICE`` (literal names) and the deploy steps
of ``cloudbuild.yaml`` (substitution tokens), so both deploy with the same flags.
"""

from __future__ import annotations

from panoptes_network.deploy.cloud_names import DATABASE_URL_SECRET, CloudNames
from panoptes_network.deploy.service_config import ServiceDeployment


def env_vars(deployment: ServiceDeployment, names: CloudNames) -> dict[str, str]:
    """The environment of a service: project, buckets and, for a push service, push auth
    (Settings.from_env reads it)."""
    env = {"GOOGLE_CLOUD_PROJECT": names.project}
    env.update({f"PANOPTES_BUCKET_{key.upper()}": bucket for key, bucket in names.buckets.items()})
    if deployment.push is not None:
        env["PUSH_AUTH_AUDIENCE"] = names.service_url(deployment.name)
        env["PUSH_AUTH_EMAIL"] = names.invoker
    return env


def run_deploy_args(deployment: ServiceDeployment, names: CloudNames, tag: str) -> list[str]:
    """``gcloud run deploy``: private (push with OIDC only) unless the topology makes it public
    (the data explorer alone), its own resources and environment."""
    args = [
        "run", "deploy", deployment.name,
        f"--project={names.project}",
        f"--region={names.region}",
        f"--image={names.image(deployment.name, tag)}",
        f"--service-account={names.runner}",
        "--allow-unauthenticated" if deployment.public else "--no-allow-unauthenticated",
        f"--memory={deployment.memory}",
        f"--cpu={deployment.cpu}",
        f"--concurrency={deployment.concurrency}",
        f"--timeout={deployment.timeout_seconds}",
        f"--max-instances={deployment.max_instances}",
        "--set-env-vars=" + ",".join(f"{key}={value}" for key, value in env_vars(deployment, names).items()),
    ]  # fmt: skip
    if deployment.cloud_sql:
        args += [
            f"--add-cloudsql-instances={names.sql_connection}",
            f"--set-secrets=DATABASE_URL={DATABASE_URL_SECRET}:latest",
        ]
    return args


def invoker_binding_args(deployment: ServiceDeployment, names: CloudNames) -> list[str]:
    """Let the push subscriptions' identity (and only it) call the service."""
    return [
        "run", "services", "add-iam-policy-binding", deployment.name,
        f"--project={names.project}",
        f"--region={names.region}",
        f"--member=serviceAccount:{names.invoker}",
        "--role=roles/run.invoker",
    ]  # fmt: skip


def build_submit_args(config: str, names: CloudNames, substitutions: dict[str, str]) -> list[str]:
    """``gcloud builds submit`` of the repository with one of the generated build configs."""
    return [
        "builds", "submit", ".",
        f"--project={names.project}",
        f"--config={config}",
        f"--gcs-source-staging-dir=gs://{names.build_bucket}/source",
        "--substitutions=" + ",".join(f"{key}={value}" for key, value in substitutions.items()),
    ]  # fmt: skip
