"""``panoptes-network observations list|show|process``: the observations, one of them, or force one."""

from __future__ import annotations

import argparse
import sys

from panoptes_network.core import records as documents
from panoptes_network.core.logs import configure_logging
from panoptes_network.core.messages import ObservationMessage
from panoptes_network.core.observations import FORCED
from panoptes_network.drivers.cli.shared import Commands, CommonOptions, open_records, print_table, record_json
from panoptes_network.drivers.embedded import FAILED_OUTCOMES, OBSERVATION_TOPIC
from panoptes_network.operations.reprocessing import new_token


def add_parser(commands: Commands, options: CommonOptions) -> None:
    observations = commands.add_parser(
        documents.OBSERVATIONS,  # the command is named after the records it reads
        parents=[options.data_dir, options.as_json],
        help="list observations, show one, or process one now",
        description="An observation is a unit's sequence of frames (sequence_id). 'list' shows each "
        "with its status and frame count; 'show SEQ' its whole record; 'process SEQ' processes it now "
        "with a fresh rerun token (its products are replaced), whatever its frames' state. Embedded "
        "data by default; --cloud uses Firestore and Pub/Sub of GOOGLE_CLOUD_PROJECT (or the local "
        "stack's emulators).",
        epilog="examples:\n"
        "  panoptes-network observations list\n"
        "  panoptes-network observations show PAN001_14d3bd_20181011T134202\n"
        "  panoptes-network observations process PAN001_14d3bd_20181011T134202\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    observations.add_argument("action", choices=("list", "show", "process"))
    observations.add_argument("sequence_id", nargs="?", metavar="SEQ", help="the observation (show, process)")
    observations.add_argument("--cloud", action="store_true", help="Firestore and Pub/Sub of GOOGLE_CLOUD_PROJECT")
    observations.set_defaults(func=cmd_observations)


def cmd_observations(args: argparse.Namespace) -> int:
    if args.action != "list" and not args.sequence_id:
        print(f"panoptes-network observations {args.action}: give the sequence id (SEQ)", file=sys.stderr)
        return 2
    opened = open_records(args)
    if opened is None:
        return 2
    context, runner = opened
    if args.action == "list":
        found = documents.observations(context.metadata)
        for sequence_id, observation in found:
            if args.json:
                print(record_json({"sequence_id": sequence_id, **observation}))
        if not args.json:
            rows: list[tuple[str, ...]] = [
                (seq, str(o.get("status", "-")), str((o.get("frames") or {}).get("count", o.get("num_images", "-"))),
                 "yes" if o.get(documents.PENDING) else "-", str(o.get("reason", "")))
                for seq, o in found
            ]  # fmt: skip
            print_table(rows, ("OBSERVATION", "STATUS", "FRAMES", "PENDING", "REASON"), sys.stdout)
        return 0
    stored = documents.observation(context.metadata, args.sequence_id)
    if stored is None:
        print(f"panoptes-network: no observation {args.sequence_id}", file=sys.stderr)
        return 1
    if args.action == "show":
        print(record_json({"sequence_id": args.sequence_id, **stored}))
        return 0
    message = ObservationMessage(args.sequence_id, FORCED, new_token())
    data, attributes = message.encode()
    message_id = context.publisher.publish(OBSERVATION_TOPIC, data, attributes)
    if runner is None:
        print(f"published {message_id} to {OBSERVATION_TOPIC} (rerun {message.rerun})", file=sys.stderr)
        return 0
    configure_logging(open(args.data_dir / "pipeline.log", "a", buffering=1))  # noqa: SIM115 (open for the life of the process)
    handled = list(runner.drain())
    for h in handled:
        print(f"{h.step}: {h.outcome.value} {h.reason}", file=sys.stderr)
    final = documents.observation(context.metadata, args.sequence_id) or {}
    print(record_json({"sequence_id": args.sequence_id, **final}))
    return 1 if any(h.outcome in FAILED_OUTCOMES for h in handled) else 0
