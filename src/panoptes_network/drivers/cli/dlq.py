"""``panoptes-network dlq``: list, show and replay the dead letters of the cloud or the local stack."""

from __future__ import annotations

import argparse
import json
import sys

from panoptes_network.core.settings import Settings
from panoptes_network.drivers.cli.shared import Commands, CommonOptions, print_error, print_table


def add_parser(commands: Commands, options: CommonOptions) -> None:
    dlq = commands.add_parser(
        "dlq",
        help="list, show and replay dead letters (messages a service failed 5 times)",
        description="Dead letters of the cloud (or, with PUBSUB_EMULATOR_HOST and FIRESTORE_EMULATOR_HOST, "
        "the local stack) in GOOGLE_CLOUD_PROJECT, with the error the image's record holds. Listing leaves "
        "them in place; replay publishes them back to their step's topic, then removes them.",
    )
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    dlq_list = dlq_commands.add_parser("list", parents=[options.as_json], help="every dead letter, left in place")
    dlq_show = dlq_commands.add_parser("show", help="one dead letter in full")
    dlq_show.add_argument("message_id")
    dlq_replay = dlq_commands.add_parser("replay", help="publish dead letters back to their step's topic")
    dlq_replay.add_argument("message_ids", nargs="*", metavar="MESSAGE_ID")
    dlq_replay.add_argument("--all", action="store_true", help="replay every dead letter (of --step)")
    for sub in (dlq_list, dlq_show, dlq_replay):
        sub.add_argument("--step", help="only this service's dead letters (e.g. plate-solver)")
        sub.set_defaults(func=cmd_dlq)


def cmd_dlq(args: argparse.Namespace) -> int:
    from panoptes_network.adapters.firestore_metadata import FirestoreMetadata
    from panoptes_network.core.topology import load_topology
    from panoptes_network.operations.dead_letters import DeadLetterQueue, last_error

    settings = Settings.from_env()
    queue = DeadLetterQueue(settings.project, load_topology())
    metadata = FirestoreMetadata(settings.project)
    if args.dlq_command == "replay":
        if not args.message_ids and not args.all:
            print_error("name the MESSAGE_IDs to replay, or --all")
            return 2
        replayed = queue.replay(args.step, set(args.message_ids) or None)
        for letter in replayed:
            print(f"replayed {letter.message_id} to {letter.service}")
        missing = set(args.message_ids) - {letter.message_id for letter in replayed}
        if missing:
            print_error(f"no dead letter {', '.join(sorted(missing))}")
        return 1 if missing else 0
    letters = queue.list(args.step)
    if args.dlq_command == "show":
        letters = [letter for letter in letters if letter.message_id == args.message_id]
        if not letters:
            print_error(f"no dead letter {args.message_id}")
            return 1
    rows = [
        {
            "message_id": letter.message_id,
            "step": letter.service,
            "deliveries": letter.delivery_count,
            "published": letter.publish_time,
            "error": last_error(metadata, letter),
            "data": letter.payload(),
            "attributes": letter.original_attributes,
        }
        for letter in letters
    ]
    if getattr(args, "json", False) or args.dlq_command == "show":
        for row in rows:
            print(json.dumps(row, default=str, indent=2 if args.dlq_command == "show" else None))
    else:
        print_table(
            [(r["message_id"], r["step"], str(r["deliveries"]), r["error"]) for r in rows],
            ("MESSAGE", "STEP", "DELIVERIES", "ERROR"),
            sys.stdout,
        )
    return 0
