"""Every gcloud command the deployment runs, parsed by the installed Google Cloud SDK, offline.

The commands come from ``bin/deploy`` itself, run against the fake gcloud of
tests/fixtures_deploy.py exactly as tests/test_deploy_gcloud.py runs it: the reads and the
changes of ``infra`` on an empty project (also with ``--assume-empty``) and on a changed
schema, of every ``SERVICE`` and of ``all``, and every gcloud step of the generated Cloud Build
configs. Each then goes to the real gcloud (tests/gcloud_offline.py: endpoints on a closed
loopback port, no credentials), which must parse it and try to connect. Needs the Cloud SDK:
skipped without it, a failure in CI.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
import yaml

from fixtures_deploy import NUMBER, PROJECT, ROOT, TAG, FakeGcloud, deploy, infra_on_a_changed_schema
from gcloud_offline import check_all, cloud_build_gcloud_commands, installed_gcloud, offline_environment
from panoptes_network.deploy.build_files import ALL_BUILD_CONFIG, SERVICE_BUILD_CONFIG
from panoptes_network.deploy.service_config import service_deployments

CLOUD_BUILD_BUILTINS = {"PROJECT_ID": PROJECT, "PROJECT_NUMBER": NUMBER}
# Refused by gcloud's parser: proves, on every run, that a refusal is seen as one.
UNKNOWN_FLAG = ("pubsub", "topics", "create", "some-topic", f"--project={PROJECT}", "--no-such-flag")


@pytest.fixture(scope="module")
def real_gcloud() -> Path:
    gcloud = installed_gcloud()
    if gcloud is None:
        reason = "the Google Cloud SDK is not installed (no /usr/lib/google-cloud-sdk/bin/gcloud, no gcloud on PATH)"
        if os.environ.get("CI"):
            pytest.fail(reason + ": CI must have it")
        pytest.skip(reason)
    return gcloud


def planned_commands(fake: FakeGcloud, capsys) -> dict[tuple[str, ...], str]:
    """Every gcloud command (arguments) that ``bin/deploy`` runs or plans, and where it comes
    from; the first source is kept for a command planned more than once."""
    commands: dict[tuple[str, ...], str] = {}

    def add(source: str, deployed: tuple[int, list[str], str], reads: list[list[str]]) -> None:
        status, planned, out = deployed
        assert status == 0 and planned, f"{source}: bin/deploy failed or planned nothing\n{out}"
        for args in [shlex.split(line)[1:] for line in planned] + reads:
            commands.setdefault(tuple(args), source)

    add("infra on an empty project", deploy(capsys, "infra", "--dry-run"), fake.calls())
    assume_empty = ("infra", "--dry-run", "--assume-empty", f"--project-number={NUMBER}")
    add("infra --assume-empty", deploy(capsys, *assume_empty), [])
    add("infra on a changed schema", infra_on_a_changed_schema(fake, capsys), fake.calls())
    for deployment in service_deployments():
        add(deployment.name, deploy(capsys, deployment.name, f"--tag={TAG}", "--dry-run"), fake.calls())
    add("all", deploy(capsys, "all", f"--tag={TAG}", "--dry-run"), fake.calls())
    for config in (ALL_BUILD_CONFIG, SERVICE_BUILD_CONFIG):
        document = yaml.safe_load((ROOT / config).read_text())
        for args in cloud_build_gcloud_commands(document, CLOUD_BUILD_BUILTINS):
            commands.setdefault(tuple(args), config)
    return commands


def test_every_planned_gcloud_command_parses(gcloud, capsys, real_gcloud, tmp_path) -> None:
    commands = planned_commands(gcloud, capsys)
    sources = set(commands.values())
    assert {"infra on a changed schema", ALL_BUILD_CONFIG} <= sources, "every source contributes a command"
    assert any(args[:4] == ("beta", "sql", "instances", "patch") for args in commands), "the schema label"
    env = offline_environment(real_gcloud, tmp_path / "gcloud-config")
    verdicts = check_all(real_gcloud, [UNKNOWN_FLAG, *commands], env, ROOT)
    control, verdicts = verdicts[0], verdicts[1:]
    assert not control.parsed and "unrecognized arguments" in control.message, control
    refused = [f"{v.line}\n  from: {commands[v.args]}\n  {v.message}" for v in verdicts if not v.parsed]
    assert not refused, f"gcloud refused {len(refused)} of {len(verdicts)} commands:\n" + "\n".join(refused)


def test_gcloud_commands_are_found_in_shell_steps() -> None:
    """A Cloud Build step may run gcloud inside a script: pipes, lists, redirections, $(...)."""
    script = (
        "set -e\n"
        'url=$(gcloud run services describe svc --region=${_REGION} --format="value(status.url)")\n'
        "gcloud scheduler jobs create http gaps --project=$PROJECT_ID \\\n"
        '  --schedule="*/5 * * * *" --uri="$$url/gaps" 2>&1 | tee log.txt && echo done > out\n'
        "echo $$url; gcloud pubsub topics list >> topics.txt\n"
    )
    config = {
        "substitutions": {"_REGION": "europe-west1"},
        "steps": [
            {"name": "gcr.io/cloud-builders/docker", "args": ["build", "."]},
            {"name": "gcr.io/google.com/cloudsdktool/cloud-sdk:slim", "entrypoint": "bash", "args": ["-c", script]},
            {"name": "gcr.io/cloud-builders/gcloud", "args": ["run", "deploy", "svc", "--region=${_REGION}"]},
        ],
    }
    assert cloud_build_gcloud_commands(config, CLOUD_BUILD_BUILTINS) == [
        ["run", "services", "describe", "svc", "--region=europe-west1", "--format=value(status.url)"],
        [
            "scheduler",
            "jobs",
            "create",
            "http",
            "gaps",
            f"--project={PROJECT}",
            "--schedule=*/5 * * * *",
            "--uri=$url/gaps",
        ],
        ["pubsub", "topics", "list"],
        ["run", "deploy", "svc", "--region=europe-west1"],
    ]
