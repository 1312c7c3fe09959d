"""``panoptes-network gaps``: raw objects whose chain never finished."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from panoptes_network.drivers.cli.shared import Commands, CommonOptions, open_records, print_table


def add_parser(commands: Commands, options: CommonOptions) -> None:
    gaps = commands.add_parser(
        "gaps",
        parents=[options.data_dir, options.as_json],
        help="list raw objects whose chain never finished (exit 1 when there are any)",
        description="Compare the raw bucket with the records: stray .fits never compressed, raws never "
        "converted, .fits.fz whose image is neither solved, unsolved nor rejected, objects never seen, "
        "observations ready for an hour beyond their quiet period and never processed. "
        "Embedded data by default; --cloud reads Cloud Storage and Firestore (or the local stack's "
        "emulators through the usual *_EMULATOR_HOST variables).",
    )
    gaps.add_argument("--cloud", action="store_true", help="Cloud Storage and Firestore of GOOGLE_CLOUD_PROJECT")
    gaps.set_defaults(func=cmd_gaps)


def cmd_gaps(args: argparse.Namespace) -> int:
    from panoptes_network.operations.chain_gaps import find_gaps

    opened = open_records(args)
    if opened is None:
        return 2
    context, _ = opened
    settings = context.settings
    gaps = list(find_gaps(context.storage, context.metadata, settings.bucket("raw"), settings.observation_quiet))
    if args.json:
        for gap in gaps:
            print(json.dumps(dataclasses.asdict(gap)))
    else:
        print_table(
            [(g.identity, g.image_id or "-", g.status or "-", g.why) for g in gaps],
            ("OBJECT", "IMAGE", "STATUS", "WHY"),
            sys.stdout,
        )
        print(f"{len(gaps)} unfinished", file=sys.stderr)
    return 1 if gaps else 0
