"""``panoptes-network process``: ingest local files and run each through every step, embedded."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from panoptes_network.adapters.backends import local_context
from panoptes_network.core.logs import configure_logging
from panoptes_network.core.names import CAMERA_RE, UNIT_RE, NameHints
from panoptes_network.drivers.cli.shared import (
    Commands,
    CommonOptions,
    local_settings,
    print_error,
    print_table,
    record_json,
    summary_row,
)
from panoptes_network.drivers.embedded import process, record_failed, record_of


def add_parser(commands: Commands, options: CommonOptions) -> None:
    run = commands.add_parser(
        "process",
        parents=[options.data_dir, options.as_json],
        help="process local files through every step",
        description="Ingest files (or every file under folders) into the raw bucket folder and run "
        "each through the pipeline's steps. Exit status 1 when any image failed.",
    )
    run.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="FITS or camera raw files, or folders")
    run.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=os.cpu_count() or 1,
        help="images processed in parallel (default: %(default)s)",
    )
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary table")
    run.add_argument(
        "--unit",
        type=id_matching(UNIT_RE, "PAN + 3 digits"),
        help="unit id (PAN001) for files whose headers carry none (the header's ids win)",
    )
    run.add_argument(
        "--camera",
        type=id_matching(CAMERA_RE, "6 letters or digits"),
        help="camera id (14d3bd) for files whose headers carry none; such files form one sequence "
        "that starts at their earliest image time",
    )
    run.set_defaults(func=cmd_process)


def id_matching(pattern: re.Pattern[str], form: str) -> Callable[[str], str]:
    """An argparse type that accepts an id of the given form."""

    def parse(value: str) -> str:
        if not pattern.fullmatch(value):
            raise argparse.ArgumentTypeError(f"{value!r} is not {form}")
        return value

    return parse


def cmd_process(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "pipeline.log"
    configure_logging(open(log_path, "a", buffering=1))  # noqa: SIM115 (open for the life of the process)
    settings = local_settings(data_dir)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print_error(f"no such file or folder: {', '.join(missing)}")
        return 2
    context, _ = local_context(settings, data_dir)
    records: list[dict[str, Any]] = []
    failed = 0
    hints = NameHints(unit_id=args.unit, camera_id=args.camera)
    reports = process(args.paths, data_dir, settings, args.jobs, log_path, hints)
    with tqdm(reports, desc="process", unit="image", file=sys.stderr, disable=args.quiet or None) as bar:
        for report in bar:
            record = record_of(context, report)
            failed += report.failed or record_failed(record)
            records.append(record)
            if args.json:
                tqdm.write(record_json(record), file=sys.stdout)
    summary_out = sys.stderr if args.json else sys.stdout
    if not args.quiet:
        print_table([summary_row(r) for r in records], ("IMAGE", "STATUS", "STEPS", "NOTE"), summary_out)
        for record in records:
            if quick_look := record.get("outputs", {}).get("quick_look"):
                print(f"quick look of {record['image_id']}: {data_dir / 'buckets' / quick_look}", file=summary_out)
        print(
            f"{len(records)} file(s), {failed} failed; data in {data_dir}/ (log: {log_path})",
            file=summary_out,
        )
    return 1 if failed else 0
