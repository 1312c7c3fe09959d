"""``bin/deploy``: the exact gcloud commands for the infrastructure and for each service.

gcloud is the fake of tests/fixtures_deploy.py (no project is reachable here): what these tests
check is our side, which reads we make, what we plan from their answers, the order, that a
second run plans nothing and that a dry run never runs a change. That gcloud accepts every
planned command is tests/test_deploy_gcloud_syntax.py's job.
"""

from __future__ import annotations

import shlex
import subprocess

import pytest

from fixtures_deploy import (
    INVOKER,
    NUMBER,
    OLDER_SCHEMA_HASH,
    PROJECT,
    PUBSUB_AGENT,
    REGION,
    ROOT,
    RUNNER,
    SCHEMA_HASH,
    SQL_ACCOUNT,
    SQL_READ,
    TAG,
    deploy,
    infra_on_a_changed_schema,
    sql_instance,
)
from panoptes_network.core.topology import load_topology
from panoptes_network.deploy.__main__ import main
from panoptes_network.deploy.service_config import service_deployments
from panoptes_network.deploy.sql_schema import SCHEMA_FILE


def schema_import(account: str, digest: str = SCHEMA_HASH) -> list[str]:
    """The commands that import schema ``digest`` into the instance whose account is ``account``."""
    uri = f"gs://{PROJECT}-panoptes-sql-import/schema-{digest}.sql"
    return [
        f"gcloud storage cp resources/cloud-sql-schema.sql {uri}",
        f"gcloud storage buckets add-iam-policy-binding gs://{PROJECT}-panoptes-sql-import "
        f"--member=serviceAccount:{account} --role=roles/storage.objectViewer",
        f"gcloud sql import sql panoptes-sql {uri} --project={PROJECT} --database=panoptes --quiet",
        f"gcloud beta sql instances patch panoptes-sql --project={PROJECT} --update-labels=panoptes-schema={digest} --quiet",
    ]


def test_infra_on_an_empty_project_plans_every_resource(gcloud, capsys) -> None:
    status, planned, out = deploy(capsys, "infra", "--dry-run")
    assert status == 0 and gcloud.changes() == [], "a dry run runs no change"
    topology = load_topology()
    p = f"--project={PROJECT}"
    for topic in topology.topics:
        assert f"gcloud pubsub topics create {topic} {p}" in planned
    for bucket in topology.buckets.values():
        assert (
            f"gcloud storage buckets create gs://{bucket} {p} --location={REGION} "
            "--uniform-bucket-level-access --public-access-prevention"
        ) in planned
        assert (
            f"gcloud storage buckets add-iam-policy-binding gs://{bucket} "
            f"--member=serviceAccount:{RUNNER} --role=roles/storage.objectAdmin"
        ) in planned
    assert (
        f"gcloud storage buckets notifications create gs://panoptes-raw-images {p} --topic=image-received "
        "--event-types=OBJECT_FINALIZE --payload-format=json"
    ) in planned
    for service in load_topology().services:
        url = f"https://{service.name}-{NUMBER}.{REGION}.run.app"
        dlq = f"{service.subscription}-dead-letter"
        assert (
            f"gcloud pubsub subscriptions create {service.subscription} {p} --topic={service.topic} "
            f"--push-endpoint={url}/ --push-auth-service-account={INVOKER} --push-auth-token-audience={url} "
            f"--ack-deadline={service.ack_deadline_seconds} --min-retry-delay=10s --max-retry-delay=600s "
            f"--dead-letter-topic={dlq} --max-delivery-attempts=5 --expiration-period=never"
        ) in planned
        assert f"gcloud pubsub topics create {dlq} {p}" in planned
        assert (
            f"gcloud pubsub subscriptions create {dlq} {p} --topic={dlq} "
            "--message-retention-duration=7d --expiration-period=never"
        ) in planned
        assert (
            f"gcloud pubsub topics add-iam-policy-binding {dlq} {p} "
            f"--member=serviceAccount:{PUBSUB_AGENT} --role=roles/pubsub.publisher"
        ) in planned
        assert (
            f"gcloud pubsub subscriptions add-iam-policy-binding {service.subscription} {p} "
            f"--member=serviceAccount:{PUBSUB_AGENT} --role=roles/pubsub.subscriber"
        ) in planned
    assert (
        f"gcloud iam service-accounts add-iam-policy-binding {INVOKER} {p} "
        f"--member=serviceAccount:{PUBSUB_AGENT} --role=roles/iam.serviceAccountTokenCreator"
    ) in planned
    assert (
        f"gcloud projects add-iam-policy-binding {PROJECT} --member=serviceAccount:{RUNNER} "
        "--role=roles/datastore.user --condition=None"
    ) in planned
    assert f"gcloud firestore databases create {p} --location={REGION} --type=firestore-native" in planned
    sweep = (
        f"gcloud scheduler jobs create pubsub observation-sweep {p} --location={REGION} "
        "'--schedule=*/10 * * * *' --time-zone=Etc/UTC --topic=observation-sweep '--message-body={}'"
    )
    assert sweep in planned, "Cloud Scheduler publishes the observation sweep every 10 minutes"
    scheduler = f"--member=serviceAccount:service-{NUMBER}@gcp-sa-cloudscheduler.iam.gserviceaccount.com"
    assert planned.index(f"gcloud pubsub topics create observation-sweep {p}") < planned.index(sweep)
    assert [i for i, line in enumerate(planned) if scheduler in line][0] < planned.index(sweep)
    assert (
        f"gcloud iam service-accounts create panoptes-invoker {p} --display-name='PANOPTES: signs the push subscriptions' OIDC tokens'"
        not in planned
    )
    assert any(line.startswith("gcloud iam service-accounts create panoptes-invoker ") for line in planned)
    assert "gcloud services enable run.googleapis.com --project=proj" in planned
    # dependencies first: a binding's resource, a subscription's topics exist before it
    for i, line in enumerate(planned):
        if " add-iam-policy-binding " in line:
            group, name = (
                line.split(" add-iam-policy-binding ")[0],
                line.split()[line.split().index("add-iam-policy-binding") + 1],
            )
            created = [j for j, other in enumerate(planned) if other.startswith(f"{group} create {name} ")]
            assert all(j < i for j in created), f"{line} comes before the creation of {name}"
    notification = [i for i, line in enumerate(planned) if "notifications create" in line][0]
    agent = f"--member=serviceAccount:service-{NUMBER}@gs-project-accounts.iam.gserviceaccount.com"
    assert [i for i, line in enumerate(planned) if agent in line][0] < notification
    first_subscription = min(i for i, line in enumerate(planned) if " --push-endpoint=" in line)
    assert max(i for i, line in enumerate(planned) if "pubsub topics create" in line) < first_subscription
    # the schema comes last, once the instance, its database and the import bucket exist; its
    # account is unknown until the instance exists, so a dry run shows a stand-in
    assert planned[-4:] == schema_import("SERVICE-ACCOUNT-OF-panoptes-sql")
    for created in (
        "sql instances create panoptes-sql ",
        "sql databases create panoptes ",
        f"storage buckets create gs://{PROJECT}-panoptes-sql-import ",
    ):
        assert any(line.startswith(f"gcloud {created}") for line in planned[:-4])
    assert "# infra, Cloud SQL schema: 4 change(s) (dry run, nothing is changed)" in out


def test_the_literal_push_subscription_of_image_received(gcloud, capsys) -> None:
    """One subscription written out in full, as a maintainer would type it."""
    _, planned, _ = deploy(capsys, "infra", "--dry-run")
    assert (
        "gcloud pubsub subscriptions create image-received-image-received --project=proj --topic=image-received "
        "--push-endpoint=https://image-received-123456789.europe-west1.run.app/ "
        "--push-auth-service-account=panoptes-invoker@proj.iam.gserviceaccount.com "
        "--push-auth-token-audience=https://image-received-123456789.europe-west1.run.app "
        "--ack-deadline=30 --min-retry-delay=10s --max-retry-delay=600s "
        "--dead-letter-topic=image-received-image-received-dead-letter --max-delivery-attempts=5 "
        "--expiration-period=never"
    ) in planned


def test_a_second_infra_run_plans_no_changes(gcloud, capsys) -> None:
    status, first, _ = deploy(capsys, "infra", "--dry-run")
    assert status == 0 and first
    first_reads = gcloud.reads()
    gcloud.record_everything_exists(first_reads, [shlex.split(line)[1:] for line in first])
    gcloud.save()
    status, second, out = deploy(capsys, "infra", "--dry-run")
    assert status == 0 and second == [] and "# infra: no changes" in out
    assert "# infra, Cloud SQL schema: no changes" in out
    assert gcloud.reads() == first_reads, "the second run checks the same resources"
    assert gcloud.changes() == []


def test_a_changed_schema_plans_its_upload_import_and_label(gcloud, capsys) -> None:
    """The instance's label names the schema it has: another file hash imports the file again."""
    status, planned, out = infra_on_a_changed_schema(gcloud, capsys)
    assert status == 0 and "# infra: no changes" in out
    assert planned == schema_import(SQL_ACCOUNT) and OLDER_SCHEMA_HASH != SCHEMA_HASH
    assert gcloud.changes() == []


def test_a_real_run_imports_as_the_new_instances_account(gcloud, capsys) -> None:
    """Applied, the schema is planned after the instance is created, with its actual account."""
    gcloud.state["after"] = {"sql instances create panoptes-sql ": {SQL_READ: sql_instance({})}}
    gcloud.save()
    status, planned, out = deploy(capsys, "infra")
    assert status == 0 and "# infra, Cloud SQL schema: 4 change(s) (applying)" in out
    assert planned[-4:] == schema_import(SQL_ACCOUNT)
    assert ["gcloud " + shlex.join(c) for c in gcloud.changes()] == planned


def test_a_real_run_without_the_instance_imports_nothing(gcloud, capsys) -> None:
    status, planned, out = deploy(capsys, "infra")
    assert status == 1 and "panoptes-sql not found" in out
    assert not any(" sql import " in line for line in planned)
    assert not any("sql" in c and "import" in c for c in gcloud.changes())


def test_infra_refuses_a_stale_schema_file(gcloud, capsys, tmp_path, monkeypatch) -> None:
    """infra uploads the committed file under the hash of what sql_tables defines: they must agree."""
    (tmp_path / "resources").mkdir()
    (tmp_path / SCHEMA_FILE).write_text((ROOT / SCHEMA_FILE).read_text().replace("INDEX", "index", 1))
    (tmp_path / "README.md").write_text((ROOT / "README.md").read_text())
    monkeypatch.chdir(tmp_path)
    status, planned, out = deploy(capsys, "infra", "--dry-run")
    assert status == 1 and planned == [] and f"out of date: {SCHEMA_FILE}: run bin/deploy files" in out


def test_infra_creates_only_what_is_missing(gcloud, capsys) -> None:
    _, planned, _ = deploy(capsys, "infra", "--dry-run")
    gcloud.record_everything_exists(gcloud.reads(), [shlex.split(line)[1:] for line in planned])
    missing = "pubsub subscriptions describe record-image-record-image --project=proj --format=value(name)"
    del gcloud.state["exists"][missing]
    gcloud.save()
    _, planned, _ = deploy(capsys, "infra", "--dry-run")
    assert len(planned) == 1 and planned[0].startswith("gcloud pubsub subscriptions create record-image-record-image ")


def test_a_failing_read_stops_infra_before_any_change(gcloud, capsys) -> None:
    read = "services list --project=proj --enabled --filter=config.name=run.googleapis.com --format=value(config.name)"
    gcloud.state["fail"] = {read: "ERROR: (gcloud.services.list) PERMISSION_DENIED: caller lacks permission\n"}
    gcloud.save()
    status, planned, out = deploy(capsys, "infra")
    assert status == 1 and planned == [] and gcloud.changes() == []
    assert "PERMISSION_DENIED" in out


def test_a_service_deploy_builds_deploys_and_grants_the_invoker(gcloud, capsys) -> None:
    status, planned, _ = deploy(capsys, "image-received", f"--tag={TAG}", "--dry-run")
    assert status == 0 and gcloud.changes() == []
    image = f"{REGION}-docker.pkg.dev/{PROJECT}/panoptes/image-received:{TAG}"
    assert planned == [
        f"gcloud builds submit . --project={PROJECT} --config=cloudbuild-service.yaml "
        f"--gcs-source-staging-dir=gs://{PROJECT}-panoptes-builds/source "
        f"--substitutions=_SERVICE=image-received,_REGION={REGION},_TAG={TAG}",
        f"gcloud run deploy image-received --project={PROJECT} --region={REGION} --image={image} "
        f"--service-account={RUNNER} --no-allow-unauthenticated --memory=512Mi --cpu=1 --concurrency=8 "
        "--timeout=30 --max-instances=20 --set-env-vars=GOOGLE_CLOUD_PROJECT=proj,"
        "PANOPTES_BUCKET_RAW=panoptes-raw-images,PANOPTES_BUCKET_RGB=panoptes-rgb-images,"
        "PANOPTES_BUCKET_BACKGROUNDS=panoptes-backgrounds,PANOPTES_BUCKET_PROCESSED=panoptes-processed-images,"
        f"PUSH_AUTH_AUDIENCE=https://image-received-{NUMBER}.{REGION}.run.app,PUSH_AUTH_EMAIL={INVOKER}",
        f"gcloud run services add-iam-policy-binding image-received --project={PROJECT} --region={REGION} "
        f"--member=serviceAccount:{INVOKER} --role=roles/run.invoker",
    ]


@pytest.mark.parametrize("deployment", service_deployments(), ids=lambda d: d.name)
def test_every_service_deploys_with_its_resources_private_but_the_explorer(gcloud, capsys, deployment) -> None:
    status, planned, _ = deploy(capsys, deployment.name, f"--tag={TAG}", "--dry-run", "--bucket-suffix=-test")
    assert status == 0
    [run] = [shlex.split(line)[1:] for line in planned if line.startswith("gcloud run deploy ")]
    assert run[:3] == ["run", "deploy", deployment.name]
    public = deployment.name == "data-explorer"  # the one service anyone may call
    assert deployment.public == public
    assert ("--allow-unauthenticated" in run, "--no-allow-unauthenticated" in run) == (public, not public)
    invoker = [line for line in planned if f"--member=serviceAccount:{INVOKER} --role=roles/run.invoker" in line]
    assert len(invoker) == (0 if public else 1), "only push services let the push identity in"
    for flag in (
        f"--service-account={RUNNER}",
        f"--memory={deployment.memory}",
        f"--cpu={deployment.cpu}",
        f"--concurrency={deployment.concurrency}",
        f"--timeout={deployment.timeout_seconds}",
        f"--max-instances={deployment.max_instances}",
    ):
        assert flag in run
    [env_flag] = [arg for arg in run if arg.startswith("--set-env-vars=")]
    env = dict(item.split("=", 1) for item in env_flag.removeprefix("--set-env-vars=").split(","))
    if public:  # nobody pushes to it: no push auth settings
        assert "PUSH_AUTH_AUDIENCE" not in env and "PUSH_AUTH_EMAIL" not in env
    else:
        assert env["PUSH_AUTH_AUDIENCE"] == f"https://{deployment.name}-{NUMBER}.{REGION}.run.app"
        assert env["PUSH_AUTH_EMAIL"] == INVOKER
    assert env["GOOGLE_CLOUD_PROJECT"] == PROJECT
    for key, bucket in load_topology().buckets.items():
        assert env[f"PANOPTES_BUCKET_{key.upper()}"] == f"{bucket}-test"
    sql = [
        f"--add-cloudsql-instances={PROJECT}:{REGION}:panoptes-sql",
        "--set-secrets=DATABASE_URL=panoptes-database-url:latest",
    ]
    assert all(flag in run for flag in sql) == deployment.cloud_sql
    assert any(flag in run for flag in sql) == deployment.cloud_sql


def test_all_is_one_cloud_build_of_every_service(gcloud, capsys) -> None:
    status, planned, _ = deploy(capsys, "all", f"--tag={TAG}", "--dry-run")
    assert status == 0 and planned == [
        f"gcloud builds submit . --project={PROJECT} --config=cloudbuild.yaml "
        f"--gcs-source-staging-dir=gs://{PROJECT}-panoptes-builds/source "
        f"--substitutions=_REGION={REGION},_TAG={TAG},_BUCKET_SUFFIX="
    ]


def test_an_unknown_service_is_refused(gcloud, capsys) -> None:
    status, planned, out = deploy(capsys, "no-such-service", f"--tag={TAG}", "--dry-run")
    assert status == 1 and planned == [] and "no service 'no-such-service'" in out


def test_bin_deploy_launches_the_module(gcloud) -> None:
    """The launcher itself: prints a Dockerfile and the SQL DDL without any cloud."""
    dockerfile = subprocess.run(
        [ROOT / "bin/deploy", "dockerfile", "record-image"], capture_output=True, text=True, check=True
    )
    assert dockerfile.stdout == (ROOT / "record-image/Dockerfile").read_text()
    ddl = subprocess.run([ROOT / "bin/deploy", "sql-schema"], capture_output=True, text=True, check=True).stdout
    assert ddl == (ROOT / SCHEMA_FILE).read_text()
    assert "CREATE TABLE IF NOT EXISTS stamps (" in ddl and "CREATE TABLE IF NOT EXISTS reference_stars (" in ddl
    assert "PRIMARY KEY (image_id, source_id)" in ddl
    check = subprocess.run([ROOT / "bin/deploy", "files", "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_assume_empty_prints_the_plan_without_any_gcloud_call(gcloud, capsys) -> None:
    """For a maintainer without credentials yet: the same plan as for an empty project."""
    _, against_empty_project, _ = deploy(capsys, "infra", "--dry-run")
    gcloud.save()
    status, offline, _ = deploy(capsys, "infra", "--dry-run", "--assume-empty", f"--project-number={NUMBER}")
    assert status == 0 and offline == against_empty_project and gcloud.calls() == []
    with pytest.raises(SystemExit, match="needs --dry-run"):
        main(["infra", f"--project={PROJECT}", "--assume-empty", f"--project-number={NUMBER}"])
