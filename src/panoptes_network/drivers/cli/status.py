"""``panoptes-network status``: the records of an embedded run."""

from __future__ import annotations

import argparse
import sys

from panoptes_network.adapters.sqlite_metadata import SqliteMetadata
from panoptes_network.core import records as documents
from panoptes_network.drivers.cli.shared import (
    Commands,
    CommonOptions,
    print_error,
    print_table,
    record_json,
    summary_row,
)


def add_parser(commands: Commands, options: CommonOptions) -> None:
    status = commands.add_parser("status", parents=[options.data_dir, options.as_json], help="show stored records")
    status.add_argument("image_id", nargs="?", help="one image (default: every image and ignored object)")
    status.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    path = args.data_dir / "metadata.sqlite"
    if not path.exists():
        print_error(f"no records in {args.data_dir}/ (run 'process' first)")
        return 2
    metadata = SqliteMetadata(path)
    if args.image_id:
        record = documents.image(metadata, args.image_id)
        if record is None:
            print_error(f"no image {args.image_id} in {args.data_dir}/")
            return 1
        records = [record]
    else:
        records = [doc for _, doc in documents.images(metadata)] + [
            doc for _, doc in documents.object_records(metadata)
        ]
    if args.json:
        for record in records:
            print(record_json(record))
    else:
        print_table([summary_row(r) for r in records], ("IMAGE", "STATUS", "STEPS", "NOTE"), sys.stdout)
    return 0
