"""``panoptes-network stack``: the local cloud stack in the foreground, until Ctrl-C."""

from __future__ import annotations

import argparse
from pathlib import Path

from panoptes_network.drivers.cli.shared import Commands, CommonOptions


def add_parser(commands: Commands, options: CommonOptions) -> None:
    stack = commands.add_parser(
        "stack",
        help="run the local cloud stack (emulators, fake GCS, every service) until Ctrl-C",
        description="Start the Pub/Sub and Firestore emulators, fake-gcs-server with notifications, "
        "the topology's topics, buckets and push subscriptions, and every service under gunicorn.",
    )
    stack.add_argument("--project", default="panoptes-local", help="project id (default: %(default)s)")
    stack.add_argument("--log-dir", type=Path, default=Path("stack-logs"), help="server logs (default: %(default)s)")
    stack.add_argument(
        "--containers",
        action="store_true",
        help="run each service from its image (build them first with bin/containers) instead of gunicorn here",
    )
    stack.set_defaults(func=cmd_stack)


def cmd_stack(args: argparse.Namespace) -> int:
    from panoptes_network.local.stack import run_stack_forever

    return run_stack_forever(args.project, args.log_dir, on_containers=args.containers)
