"""``panoptes-network download``: an observation's files, resumable and verified."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from panoptes_network.core.errors import NotFound, PipelineError
from panoptes_network.drivers.cli.shared import (
    Commands,
    CommonOptions,
    add_archive_options,
    open_archive,
    paragraph,
    print_error,
)
from panoptes_network.drivers.downloads import Downloaded, download_file, target_path
from panoptes_network.explorer.archive import FILE_SETS, check_sequence_id, file_set
from panoptes_network.explorer.search_filters import BadQuery


def add_parser(commands: Commands, options: CommonOptions) -> None:
    download = commands.add_parser(
        "download",
        parents=[options.data_dir],
        help="download an observation's raw frames, processed frames or products",
        description=paragraph(
            "Download the files of one observation from the data dir or, with --url, a deployed "
            "data explorer, into DIR/{raw,processed}/... . Resumable: a file already there at its listed "
            "size is skipped, an interrupted one (NAME.VERSION.part) continues where it stopped; every file is "
            "checked against its listed size before it takes its name. Exit status 1 if any file failed "
            "(run again to continue)."
        ),
        epilog="examples:\n"
        "  panoptes-network download PAN001_14d3bd_20181011T134202                 its products\n"
        "  panoptes-network download PAN001_14d3bd_20181011T134202 --what raw --to frames/\n"
        "  panoptes-network download PAN001_14d3bd_20181011T134202 --url https://explorer.example.org\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    download.add_argument("sequence_id", metavar="OBSERVATION", help="the observation's sequence id")
    download.add_argument("--what", choices=FILE_SETS, default="products", help="which files (default: %(default)s)")
    download.add_argument("--to", type=Path, metavar="DIR", help="where (default: ./OBSERVATION)")
    download.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    add_archive_options(download)
    download.set_defaults(func=cmd_download)


def cmd_download(args: argparse.Namespace) -> int:
    to: Path = args.to or Path(args.sequence_id)
    try:
        folder = check_sequence_id(args.sequence_id)
        client = open_archive(args)
        if client is None:
            return 2
        listed = client.files(args.sequence_id, file_set(args.what))
    except (BadQuery, NotFound) as exc:
        print_error(exc.message)
        return 2
    results: list[Downloaded] = []
    total = sum(int(f["size"]) for f in listed)
    with tqdm(
        total=total, unit="B", unit_scale=True, desc="download", file=sys.stderr, disable=args.quiet or None
    ) as bar:
        for entry in listed:
            try:
                path = target_path(to, folder, entry)
                results.append(download_file(client, entry, path, bar.update))
            except PipelineError as exc:
                print_error(exc.message)
                results.append(Downloaded(to / str(entry.get("name")), "failed", int(entry["size"]), exc.message))
    states = Counter(result.state for result in results)
    if not args.quiet:
        counts = ", ".join(f"{count} {state}" for state, count in sorted(states.items())) or "nothing to download"
        print(f"{args.sequence_id} {args.what}: {len(results)} files ({counts}) in {to}/", file=sys.stderr)
    return 1 if states["failed"] else 0
