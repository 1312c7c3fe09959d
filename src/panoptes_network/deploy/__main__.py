"""``bin/deploy``: build, deploy and wire the pipeline on Google Cloud from the topology."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from panoptes_network.core.settings import configured_project
from panoptes_network.core.topology import parse_topology
from panoptes_network.deploy.bigquery_tables import plan_archive_tables
from panoptes_network.deploy.build_files import (
    ALL_BUILD_CONFIG,
    DEFAULT_REGION,
    SERVICE_BUILD_CONFIG,
    dockerfile,
    generated_files,
)
from panoptes_network.deploy.cloud_names import CloudNames, suffixed_buckets
from panoptes_network.deploy.gcloud_runner import Change, Gcloud, GcloudError
from panoptes_network.deploy.infra import plan_infra
from panoptes_network.deploy.readme_topology import README, topology_markdown, with_topology_block
from panoptes_network.deploy.service_commands import build_submit_args, invoker_binding_args, run_deploy_args
from panoptes_network.deploy.service_config import service_deployment, service_deployments, topology_text
from panoptes_network.deploy.sql_schema import SCHEMA_FILE, schema_file_text
from panoptes_network.deploy.sql_schema_import import plan_schema_import

DESCRIPTION = """\
Deploy the pipeline to Google Cloud, from resources/topology.toml.

  infra       create what is missing: APIs, service accounts, buckets, topics, the raw bucket's
              notification, push subscriptions (OIDC, retries, dead letters), IAM, Cloud SQL;
              then import the Cloud SQL schema when it differs from the instance's label
  all         build every image and deploy every service in one Cloud Build (cloudbuild.yaml)
  SERVICE     build one image (cloudbuild-service.yaml), deploy it, let the push identity call it
              (data-explorer, the one public service: anyone may call it, nobody pushes)
  files       write the generated files: Dockerfiles, Cloud Build configs, the Cloud SQL schema
              and the README's topology block (--check: only compare)
  dockerfile  print one service's Dockerfile
  sql-schema  print the Cloud SQL schema file (the DDL infra imports)

Reads (describe, list) always run; with --dry-run every change is printed and none is made.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bin/deploy", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("target", metavar="TARGET", help="infra, all, a service name, files, dockerfile, sql-schema")
    parser.add_argument("service", nargs="?", help="the service (for dockerfile)")
    parser.add_argument("--project", default=configured_project(), help="default: $GOOGLE_CLOUD_PROJECT")
    parser.add_argument("--region", default=DEFAULT_REGION, help=f"default: {DEFAULT_REGION}")
    parser.add_argument("--tag", help="image tag (default: the git commit, with -dirty for uncommitted changes)")
    parser.add_argument("--bucket-suffix", default="", help="appended to every bucket name (names are global)")
    parser.add_argument("--dry-run", action="store_true", help="print the changes, make none")
    parser.add_argument("--check", action="store_true", help="files: fail when a generated file is out of date")
    parser.add_argument(
        "--project-number", help="skip reading it from gcloud (Cloud Run URLs and service agents use it)"
    )
    parser.add_argument(
        "--assume-empty", action="store_true", help="with --dry-run: make no reads, plan as for an empty project"
    )
    return parser


def git_tag() -> str:
    """The commit being deployed, marked ``-dirty`` when the tree has uncommitted changes."""
    sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=True).stdout.strip()
    return sha.stdout.strip() + ("-dirty" if dirty else "")


def expected_files(root: Path) -> dict[Path, str]:
    """The generated files as the topology gives them now, by path from the repository root
    (the README as it is under ``root``, with its topology block regenerated)."""
    text = topology_text()
    files = generated_files(service_deployments(text), parse_topology(text).buckets)
    files[SCHEMA_FILE] = schema_file_text()
    files[README] = with_topology_block((root / README).read_text(), topology_markdown(text))
    return files


def stale_files(root: Path, files: dict[Path, str]) -> list[Path]:
    """Generated files that are missing under ``root`` or differ from ``files``."""
    return [path for path, text in files.items() if not (root / path).exists() or (root / path).read_text() != text]


def write_files(root: Path, check: bool) -> int:
    """Write the stale generated files, or (``check``) only name them and fail."""
    files = expected_files(root)
    stale = stale_files(root, files)
    for path in stale:
        if check:
            print(f"bin/deploy: {path} is out of date: run bin/deploy files", file=sys.stderr)
        else:
            (root / path).write_text(files[path])
            print(f"wrote {path}")
    return 1 if check and stale else 0


def cloud_names(args: argparse.Namespace, gcloud: Gcloud) -> CloudNames:
    """Names in the chosen project; its number (for URLs and service agents) is read from gcloud."""
    if not args.project:
        raise SystemExit("bin/deploy: give --project (or set GOOGLE_CLOUD_PROJECT)")
    number = args.project_number or gcloud.read(["projects", "describe", args.project, "--format=value(projectNumber)"])
    if not number or not number.strip():
        raise SystemExit(f"bin/deploy: project {args.project} not found (or no access)")
    buckets = suffixed_buckets(parse_topology(topology_text()).buckets, args.bucket_suffix)
    return CloudNames(args.project, args.region, number.strip(), buckets)


def deploy_changes(target: str, args: argparse.Namespace, names: CloudNames) -> list[Change]:
    """Build and deploy ``all`` services (one Cloud Build) or one service."""
    tag = args.tag or git_tag()
    if target == "all":
        substitutions = {"_REGION": names.region, "_TAG": tag, "_BUCKET_SUFFIX": args.bucket_suffix}
        return [
            Change(
                "build, push and deploy every service", tuple(build_submit_args(ALL_BUILD_CONFIG, names, substitutions))
            )
        ]
    deployment = service_deployment(target)
    substitutions = {"_SERVICE": target, "_REGION": names.region, "_TAG": tag}
    changes = [
        Change(
            f"build and push {names.image(target, tag)}",
            tuple(build_submit_args(SERVICE_BUILD_CONFIG, names, substitutions)),
        ),
        Change(f"deploy {target}", tuple(run_deploy_args(deployment, names, tag))),
    ]
    if deployment.push is not None:  # a web service has no pusher (a public one lets anyone in)
        changes.append(Change(f"let {names.invoker} push to {target}", tuple(invoker_binding_args(deployment, names))))
    return changes


def run(args: argparse.Namespace, root: Path) -> int:
    if args.target == "files":
        return write_files(root, args.check)
    if args.target == "dockerfile":
        print(dockerfile(service_deployment(args.service or "")), end="")
        return 0
    if args.target == "sql-schema":
        print(schema_file_text(), end="")
        return 0
    if args.assume_empty and not (args.dry_run and args.project_number):
        raise SystemExit("bin/deploy: --assume-empty needs --dry-run and --project-number")
    gcloud = Gcloud(dry_run=args.dry_run, offline=args.assume_empty)
    names = cloud_names(args, gcloud)
    # infra uploads the schema file, services build from the Dockerfiles: both must be current
    files = expected_files(root)
    stale = stale_files(root, {SCHEMA_FILE: files[SCHEMA_FILE]} if args.target == "infra" else files)
    if stale:
        print(f"bin/deploy: out of date: {', '.join(map(str, stale))}: run bin/deploy files", file=sys.stderr)
        return 1
    if args.target == "infra":
        deployments = service_deployments()
        gcloud.apply(plan_infra(parse_topology(topology_text()), deployments, names, gcloud), "infra")
        gcloud.apply(plan_archive_tables(names, gcloud), "infra, BigQuery tables over the Parquet products")
        if any(d.cloud_sql for d in deployments):  # planned now: the instance exists once infra ran
            gcloud.apply(plan_schema_import(names, files[SCHEMA_FILE], gcloud), "infra, Cloud SQL schema")
        return 0
    gcloud.apply(deploy_changes(args.target, args, names), f"deploy {args.target}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args, Path.cwd())
    except (GcloudError, KeyError, ValueError) as exc:
        print(f"bin/deploy: {exc.args[0]}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
