"""``panoptes-network process``: ingest local files and run each through every step, embedded;
then process each observation whose frames it processed."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

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
from panoptes_network.drivers.embedded import (
    FAILED_OUTCOMES,
    FINISHED_RUN,
    EmbeddedRunner,
    process,
    record_failed,
    record_of,
    stopped_short,
)


def add_parser(commands: Commands, options: CommonOptions) -> None:
    run = commands.add_parser(
        "process",
        parents=[options.data_dir, options.as_json],
        help="process local files through every step",
        description="Ingest files (or every file under folders) into the raw bucket folder and run "
        "each through the pipeline's steps, then process each observation (sequence) those frames belong "
        "to. Exit status 1 when any image or observation failed, or an image stopped before a final status "
        "(solved, unsolved, rejected); each such image is listed with where it stopped.",
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
    records: list[dict[str, Any]] = []
    stopped: list[str] = []  # images that never reached a final status: a failure too
    failed = 0
    # one runner: it processes the files (one job), reads their records and finishes their observations
    runner = EmbeddedRunner(data_dir, settings, NameHints(unit_id=args.unit, camera_id=args.camera))
    reports = process(args.paths, runner, args.jobs, log_path)
    with tqdm(reports, desc="process", unit="image", file=sys.stderr, disable=args.quiet or None) as bar:
        for report in bar:
            record = record_of(runner.context, report)
            where = stopped_short(record)
            if where is not None:
                stopped.append(f"{record.get('image_id') or report.path}: {where}")
            failed += report.failed or record_failed(record) or where is not None
            records.append(record)
            if args.json:
                tqdm.write(record_json(record), file=sys.stdout)
    summary_out = sys.stderr if args.json else sys.stdout
    failed += finish_observations(runner, records, summary_out, args.quiet)
    if not args.quiet:
        print_table([summary_row(r) for r in records], ("IMAGE", "STATUS", "STEPS", "NOTE"), summary_out)
        for record in records:
            if quick_look := record.get("outputs", {}).get("quick_look"):
                print(f"quick look of {record['image_id']}: {data_dir / 'buckets' / quick_look}", file=summary_out)
        print(
            f"{len(records)} file(s), {failed} failed; data in {data_dir}/ (log: {log_path})",
            file=summary_out,
        )
    for line in stopped:  # even with --quiet: nothing stops half-way unseen
        print(f"not finished: {line}", file=sys.stderr)
    return 1 if failed else 0


def finish_observations(runner: EmbeddedRunner, records: list[dict[str, Any]], out: Any, quiet: bool) -> int:
    """Process the observations of the frames just processed; how many failed."""
    failed = 0
    for sequence_id in sorted({r["sequence_id"] for r in records if r.get("sequence_id")}):
        handled = runner.finish_observation(sequence_id, FINISHED_RUN)
        failures = [h for h in handled if h.outcome in FAILED_OUTCOMES]
        failed += bool(failures)
        if not quiet:
            note = "; ".join(f"{h.step}: {h.outcome.value} {h.reason}" for h in handled)
            print(f"observation {sequence_id}: {note}", file=out)
    return failed
