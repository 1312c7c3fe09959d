"""A fake gcloud for the deployment tests, and ``bin/deploy`` run in-process against it.

No Google Cloud project is reachable here, so gcloud is replaced by a fake on PATH: a small
script, written by the tests, that answers read commands (describe, list, get-iam-policy) from
a state file, answers NOT_FOUND for anything not in it, and logs every call; a change listed
under ``after`` adds read answers (creating the Cloud SQL instance gives it a service account).
It checks our side (which reads we make, what we plan from their answers, that a dry run
never runs a change); tests/test_deploy_gcloud_syntax.py runs the same plans through the real
Cloud SDK's parser.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
from pathlib import Path

import pytest

from panoptes_network.deploy.__main__ import main
from panoptes_network.deploy.sql_schema import SCHEMA_FILE, schema_hash

ROOT = Path(__file__).resolve().parents[1]
PROJECT, NUMBER, REGION, TAG = "proj", "123456789", "europe-west1", "abc123"
INVOKER = f"panoptes-invoker@{PROJECT}.iam.gserviceaccount.com"
RUNNER = f"panoptes-runner@{PROJECT}.iam.gserviceaccount.com"
PUBSUB_AGENT = f"service-{NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
SQL_ACCOUNT = f"p{NUMBER}-abc123@gcp-sa-cloud-sql.iam.gserviceaccount.com"  # the instance's own
SQL_READ = (
    "sql instances describe panoptes-sql --project=proj "
    "--format=json(name,serviceAccountEmailAddress,settings.userLabels)"
)
SCHEMA_TEXT = (ROOT / SCHEMA_FILE).read_text()
SCHEMA_HASH = schema_hash(SCHEMA_TEXT)
OLDER_SCHEMA_HASH = schema_hash(SCHEMA_TEXT[: SCHEMA_TEXT.rindex("CREATE INDEX")])  # before the last index
READS = ("describe", "list", "get-iam-policy")

FAKE_GCLOUD = """\
#!{python} -S
import json, os, sys
args = sys.argv[1:]
line = " ".join(args)
with open(os.environ["FAKE_GCLOUD_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
state = json.load(open(os.environ["FAKE_GCLOUD_STATE"]))
if line in state.get("fail", {{}}):
    sys.stderr.write(state["fail"][line]); sys.exit(1)
for prefix, answers in state.get("after", {{}}).items():
    if line.startswith(prefix):
        state["exists"].update(answers)
        json.dump(state, open(os.environ["FAKE_GCLOUD_STATE"], "w"))
if any(verb in args for verb in {reads!r}):
    if line in state["exists"]:
        sys.stdout.write(state["exists"][line]); sys.exit(0)
    sys.stderr.write("ERROR: (gcloud) NOT_FOUND: Resource not found\\n"); sys.exit(1)
"""


# bq (BigQuery DDL, where gcloud has no command): every call succeeds and is logged.
FAKE_BQ = """\
#!{python} -S
import json, os, sys
with open(os.environ["FAKE_BQ_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
"""


class FakeGcloud:
    """A gcloud on PATH answering from ``state`` (read command, arguments joined by spaces -> output),
    and a bq beside it that logs its calls."""

    def __init__(self, tmp_path: Path) -> None:
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        script = self.bin / "gcloud"
        script.write_text(FAKE_GCLOUD.format(python=sys.executable, reads=READS))
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        bq = self.bin / "bq"
        bq.write_text(FAKE_BQ.format(python=sys.executable))
        bq.chmod(bq.stat().st_mode | stat.S_IXUSR)
        self.state_path, self.log_path = tmp_path / "state.json", tmp_path / "calls.log"
        self.bq_log_path = tmp_path / "bq-calls.log"
        self.state: dict[str, dict[str, str]] = {
            "exists": {f"projects describe {PROJECT} --format=value(projectNumber)": NUMBER + "\n"}
        }

    def save(self) -> None:
        self.state_path.write_text(json.dumps(self.state))
        self.log_path.write_text("")
        self.bq_log_path.write_text("")

    def bq_calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.bq_log_path.read_text().splitlines()]

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]

    def reads(self) -> list[str]:
        return [" ".join(c) for c in self.calls() if any(verb in c for verb in READS)]

    def changes(self) -> list[list[str]]:
        return [c for c in self.calls() if not any(verb in c for verb in READS)]

    def record_everything_exists(self, reads: list[str], changes: list[list[str]]) -> None:
        """The state a project is in once ``changes`` are made, as gcloud answers ``reads``:
        resources exist, policies list each granted ``role<TAB>member`` line."""
        policies: dict[tuple[str, ...], list[str]] = {}
        for change in changes:
            if "add-iam-policy-binding" in change:
                verb = change.index("add-iam-policy-binding")
                flags = dict(arg.split("=", 1) for arg in change if arg.startswith(("--member=", "--role=")))
                policies.setdefault(tuple(change[: verb + 2]), []).append(f"{flags['--role']}\t{flags['--member']}")
        for read in reads:
            args = read.split(" ")
            if read in self.state["exists"]:  # the project number
                continue
            if "get-iam-policy" in args:
                verb = args.index("get-iam-policy")
                key = (*args[:verb], "add-iam-policy-binding", args[verb + 1])
                self.state["exists"][read] = "".join(f"{line}\n" for line in policies.get(key, []))
            elif "notifications" in args:
                topic = f"//pubsub.googleapis.com/projects/{PROJECT}/topics/image-received"
                self.state["exists"][read] = json.dumps([{"id": "1", "topic": topic, "payload_format": "JSON_API_V1"}])
            elif read == SQL_READ:
                flags = [arg for change in changes for arg in change if arg.startswith("--update-labels=")]
                labels = dict(flag.removeprefix("--update-labels=").split("=", 1) for flag in flags)
                self.state["exists"][read] = sql_instance(labels)
            else:
                self.state["exists"][read] = "exists\n"


def sql_instance(labels: dict[str, str]) -> str:
    """``SQL_READ``'s answer for an instance with ``labels``."""
    described = {"name": "panoptes-sql", "serviceAccountEmailAddress": SQL_ACCOUNT, "settings": {"userLabels": labels}}
    return json.dumps(described)


@pytest.fixture
def gcloud(tmp_path: Path, monkeypatch) -> FakeGcloud:
    fake = FakeGcloud(tmp_path)
    fake.save()
    monkeypatch.setenv("PATH", f"{fake.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GCLOUD_STATE", str(fake.state_path))
    monkeypatch.setenv("FAKE_GCLOUD_LOG", str(fake.log_path))
    monkeypatch.setenv("FAKE_BQ_LOG", str(fake.bq_log_path))
    monkeypatch.chdir(ROOT)
    return fake


def deploy(capsys, *argv: str) -> tuple[int, list[str], str]:
    """Run bin/deploy in-process: exit status, the planned gcloud command lines, all output
    (stdout, then stderr)."""
    status = main([*argv, f"--project={PROJECT}", f"--region={REGION}"])
    captured = capsys.readouterr()
    planned = [line for line in captured.out.splitlines() if line.startswith("gcloud ")]
    return status, planned, captured.out + captured.err


def infra_on_a_changed_schema(fake: FakeGcloud, capsys) -> tuple[int, list[str], str]:
    """infra's dry run on a project where everything exists but the instance's label names an
    older schema (before the last index was added): ``deploy``'s answer."""
    _, planned, _ = deploy(capsys, "infra", "--dry-run")
    fake.record_everything_exists(fake.reads(), [shlex.split(line)[1:] for line in planned])
    fake.state["exists"][SQL_READ] = sql_instance({"panoptes-schema": OLDER_SCHEMA_HASH, "env": "prod"})
    fake.save()
    return deploy(capsys, "infra", "--dry-run")
