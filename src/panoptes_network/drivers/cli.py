"""``panoptes-network``: run the pipeline on this machine, read its records, start the local stack."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from tqdm import tqdm

from panoptes_network.adapters.metadata import GeoPoint
from panoptes_network.adapters.sqlite_metadata import SqliteMetadata
from panoptes_network.core import records as documents
from panoptes_network.core.context import Context, local_context
from panoptes_network.core.errors import PipelineError
from panoptes_network.core.logs import configure_logging
from panoptes_network.core.settings import DEFAULT_DATA_DIR, Settings
from panoptes_network.core.status import ImageStatus
from panoptes_network.core.topology import load_topology
from panoptes_network.drivers.embedded import (
    FAILED_OUTCOMES,
    EmbeddedRunner,
    FileReport,
    process,
    record_failed,
    record_of,
)
from panoptes_network.operations.reprocessing import parse_since

DESCRIPTION = """\
Process PANOPTES images on this machine, through the same steps the cloud services run.

Buckets become folders under the data directory, topics an in-process queue, and the
metadata (Firestore in the cloud) one SQLite file, so no cloud account, emulator or network
is needed. Logs go to DATA_DIR/pipeline.log as JSON lines.
"""

EPILOG = """\
examples:
  panoptes-network sample                       write a realistic synthetic frame
  panoptes-network process ./frames             every file under ./frames
  panoptes-network process --json unsolved.fits one JSON record per image on stdout
  panoptes-network status PAN001_XXXXXX_20160909T081314
  panoptes-network header gs://panoptes-raw-images/PAN001/14d3bd/20181011T134202/20181011T134333.fits.fz
  panoptes-network reprocess --status unsolved  solve every unsolved image again
  panoptes-network stack                        the local cloud stack, until Ctrl-C
"""


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, GeoPoint):
        return {"latitude": value.latitude, "longitude": value.longitude}
    raise TypeError(f"{type(value).__name__} is not JSON")


def _print_table(rows: list[tuple[str, ...]], headers: tuple[str, ...], out: Any) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    for row in (headers, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip(), file=out)


def _summary_row(record: dict[str, Any]) -> tuple[str, ...]:
    steps = documents.steps(record)
    done = ", ".join(f"{name}:{step.state}" for name, step in steps.items()) or "-"
    errors = [step.error for step in steps.values() if step.error]
    note = record.get("error") or record.get("reason") or (errors[0] if errors else "")
    image = record.get("image_id") or Path(record.get("input", record.get("name", "?"))).name
    return (image, record.get("status", "?"), done, note)


def cmd_process(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "pipeline.log"
    configure_logging(open(log_path, "a", buffering=1))  # noqa: SIM115 (open for the life of the process)
    settings = Settings.from_env({**os.environ, "PANOPTES_DATA_DIR": str(data_dir)})
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"panoptes-network: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    context, _ = local_context(settings, data_dir)
    records: list[dict[str, Any]] = []
    failed = 0
    reports = process(args.paths, data_dir, settings, args.jobs, log_path)
    with tqdm(reports, desc="process", unit="image", file=sys.stderr, disable=args.quiet or None) as bar:
        for report in bar:
            report: FileReport
            record = record_of(context, report)
            failed += report.failed or record_failed(record)
            records.append(record)
            if args.json:
                tqdm.write(json.dumps(record, default=_json_default, sort_keys=True), file=sys.stdout)
    summary_out = sys.stderr if args.json else sys.stdout
    if not args.quiet:
        _print_table([_summary_row(r) for r in records], ("IMAGE", "STATUS", "STEPS", "NOTE"), summary_out)
        for record in records:
            if quick_look := record.get("outputs", {}).get("quick_look"):
                print(f"quick look of {record['image_id']}: {data_dir / 'buckets' / quick_look}", file=summary_out)
        print(
            f"{len(records)} file(s), {failed} failed; data in {data_dir}/ (log: {log_path})",
            file=summary_out,
        )
    return 1 if failed else 0


def cmd_status(args: argparse.Namespace) -> int:
    path = args.data_dir / "metadata.sqlite"
    if not path.exists():
        print(f"panoptes-network: no records in {args.data_dir}/ (run 'process' first)", file=sys.stderr)
        return 2
    metadata = SqliteMetadata(path)
    if args.image_id:
        record = documents.image(metadata, args.image_id)
        if record is None:
            print(f"panoptes-network: no image {args.image_id} in {args.data_dir}/", file=sys.stderr)
            return 1
        records = [record]
    else:
        records = [doc for _, doc in documents.images(metadata)] + [
            doc for _, doc in documents.object_records(metadata)
        ]
    if args.json:
        for record in records:
            print(json.dumps(record, default=_json_default, sort_keys=True))
    else:
        _print_table([_summary_row(r) for r in records], ("IMAGE", "STATUS", "STEPS", "NOTE"), sys.stdout)
    return 0


def cmd_header(args: argparse.Namespace) -> int:
    from panoptes_network.science.fits_header import read_image_header
    from panoptes_network.science.header_metadata import header_as_json

    location: str = args.location
    try:
        if location.startswith("gs://"):
            from panoptes_network.adapters.gcs_storage import GcsStorage

            bucket, _, name = location.removeprefix("gs://").partition("/")
            storage = GcsStorage()
            info = storage.stat(bucket, name)
            if info is None:
                print(f"panoptes-network: no object {location}", file=sys.stderr)
                return 1
            header = read_image_header(partial(storage.read_range, info.ref), location).header
        else:
            path = Path(location)
            if not path.is_file():
                print(f"panoptes-network: no such file: {location}", file=sys.stderr)
                return 1
            with open(path, "rb") as handle:

                def read_range(start: int, end: int) -> bytes:
                    handle.seek(start)
                    return handle.read(end - start)

                header = read_image_header(read_range, location).header
    except PipelineError as exc:
        print(f"panoptes-network: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(header_as_json(header), indent=2, default=str))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from astropy.io import fits

    from panoptes_network.synthetic.frames import FULL_SHAPE
    from panoptes_network.synthetic.star_field import StarFieldSpec, frame_spec_for, make_star_field

    spec = StarFieldSpec(shape=FULL_SHAPE if args.size == "full" else (700, 700), seed=args.seed)
    data, header, _ = make_star_field(spec)  # real Tycho-2 stars, so the plate-solver can solve it
    path = args.out / frame_spec_for(spec).path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data, header).writeto(path, overwrite=True, checksum=True)
    print(path)
    return 0


def cmd_dlq(args: argparse.Namespace) -> int:
    from panoptes_network.adapters.firestore_metadata import FirestoreMetadata
    from panoptes_network.core.topology import load_topology
    from panoptes_network.operations.dead_letters import DeadLetterQueue, last_error

    settings = Settings.from_env()
    queue = DeadLetterQueue(settings.project, load_topology())
    metadata = FirestoreMetadata(settings.project)
    if args.dlq_command == "replay":
        if not args.message_ids and not args.all:
            print("panoptes-network: name the MESSAGE_IDs to replay, or --all", file=sys.stderr)
            return 2
        replayed = queue.replay(args.step, set(args.message_ids) or None)
        for letter in replayed:
            print(f"replayed {letter.message_id} to {letter.service}")
        missing = set(args.message_ids) - {letter.message_id for letter in replayed}
        if missing:
            print(f"panoptes-network: no dead letter {', '.join(sorted(missing))}", file=sys.stderr)
        return 1 if missing else 0
    letters = queue.list(args.step)
    if args.dlq_command == "show":
        letters = [letter for letter in letters if letter.message_id == args.message_id]
        if not letters:
            print(f"panoptes-network: no dead letter {args.message_id}", file=sys.stderr)
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
        _print_table(
            [(r["message_id"], r["step"], str(r["deliveries"]), r["error"]) for r in rows],
            ("MESSAGE", "STEP", "DELIVERIES", "ERROR"),
            sys.stdout,
        )
    return 0


def _open_records(args: argparse.Namespace) -> tuple[Context, EmbeddedRunner | None] | None:
    """With --cloud, Cloud Storage, Pub/Sub and Firestore (or the local stack's emulators); else
    the data directory, with an embedded runner to process what gets published. None: no records."""
    from panoptes_network.core.context import cloud_context

    if args.cloud:
        return cloud_context(Settings.from_env()), None
    if not (args.data_dir / "metadata.sqlite").exists():
        print(f"panoptes-network: no records in {args.data_dir}/ (run 'process' first)", file=sys.stderr)
        return None
    runner = EmbeddedRunner(args.data_dir, Settings.from_env({**os.environ, "PANOPTES_DATA_DIR": str(args.data_dir)}))
    return runner.context, runner


def cmd_gaps(args: argparse.Namespace) -> int:
    from panoptes_network.operations.chain_gaps import find_gaps

    opened = _open_records(args)
    if opened is None:
        return 2
    context, _ = opened
    gaps = list(find_gaps(context.storage, context.metadata, context.settings.bucket("raw")))
    if args.json:
        for gap in gaps:
            print(json.dumps(dataclasses.asdict(gap)))
    else:
        _print_table(
            [(g.identity, g.image_id or "-", g.status or "-", g.why) for g in gaps],
            ("OBJECT", "IMAGE", "STATUS", "WHY"),
            sys.stdout,
        )
        print(f"{len(gaps)} unfinished", file=sys.stderr)
    return 1 if gaps else 0


def cmd_reprocess(args: argparse.Namespace) -> int:
    from panoptes_network.operations.reprocessing import Pace, Selection, new_token, plan_rerun, publish, select_images

    opened = _open_records(args)
    if opened is None:
        return 2
    context, runner = opened
    if runner is not None:
        configure_logging(open(args.data_dir / "pipeline.log", "a", buffering=1))  # noqa: SIM115 (open for the life of the process)
    selection = Selection(tuple(args.status or ()), args.unit, args.since, args.step)
    token, pace = new_token(), Pace(args.rate if runner is None else None)
    images = list(select_images(context, selection))
    rows: list[dict[str, Any]] = []
    with tqdm(images, desc="reprocess", unit="image", file=sys.stderr, disable=args.quiet or None) as bar:
        for image_id, image in bar:
            rerun = plan_rerun(context, image_id, image, selection.step, token)
            row = {"image_id": image_id, "step": rerun.step, "status": image.get("status")}
            if rerun.skipped:
                row |= {"result": "skipped", "note": rerun.skipped}
            elif args.dry_run:
                row |= {"result": "planned", "note": rerun.topic}
            else:
                pace.wait()
                row |= {"result": "published", "note": publish(context, rerun)}
                if runner is not None:  # embedded: run the chain now, as the services would
                    failures = [h for h in runner.drain() if h.outcome in FAILED_OUTCOMES]
                    final = documents.image(context.metadata, image_id) or {}
                    row |= {"result": "failed" if failures else "done", "status": final.get("status")}
                    row["note"] = "; ".join(f"{h.step}: {h.reason}" for h in failures) or f"now {final.get('status')}"
            rows.append(row)
            if args.json:
                tqdm.write(json.dumps(row), file=sys.stdout)
    counts = {
        result: sum(r["result"] == result for r in rows)
        for result in ("published", "done", "failed", "skipped", "planned")
    }
    if rows and not args.json and not args.quiet:
        _print_table(
            [(r["image_id"], r["step"] or "-", r["status"] or "-", r["result"], r["note"] or "") for r in rows],
            ("IMAGE", "STEP", "STATUS", "RESULT", "NOTE"),
            sys.stdout,
        )
    summary = ", ".join(f"{n} {result}" for result, n in counts.items() if n) or "nothing"
    print(f"{len(rows)} image(s) matched: {summary} (rerun {token})", file=sys.stderr)
    return 1 if counts["failed"] else 0


def cmd_stack(args: argparse.Namespace) -> int:
    from panoptes_network.local.stack import run_stack_forever

    return run_stack_forever(args.project, args.log_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="panoptes-network",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("PANOPTES_DATA_DIR", DEFAULT_DATA_DIR)),
        help="where buckets (folders) and records (metadata.sqlite) live (default: %(default)s)",
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="one JSON record per image on stdout")

    run = commands.add_parser(
        "process",
        parents=[data_dir, as_json],
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
    run.set_defaults(func=cmd_process)

    status = commands.add_parser("status", parents=[data_dir, as_json], help="show stored records")
    status.add_argument("image_id", nargs="?", help="one image (default: every image and ignored object)")
    status.set_defaults(func=cmd_status)

    header = commands.add_parser(
        "header",
        help="print a FITS file's image header as JSON (reads only the header blocks)",
        description="Print the image header of a local FITS/.fits.fz file or of gs://BUCKET/NAME (the "
        "usual Google credentials, or STORAGE_EMULATOR_HOST for the local stack) as JSON.",
    )
    header.add_argument("location", metavar="PATH|gs://BUCKET/NAME")
    header.set_defaults(func=cmd_header)

    sample = commands.add_parser(
        "sample",
        help="write a realistic synthetic PANOPTES frame",
        description="Write a synthetic raw Bayer frame of the real sky (Tycho-2 stars around KIC 8462852 "
        "through a known WCS, the mount hint 2 degrees off) with a POCS header, at its canonical path under OUT.",
    )
    sample.add_argument("--out", type=Path, default=Path("samples"), help="folder (default: %(default)s)")
    sample.add_argument("--size", choices=("full", "small"), default="full", help="5208x3476 or 700x700")
    sample.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    sample.set_defaults(func=cmd_sample)

    stack = commands.add_parser(
        "stack",
        help="run the local cloud stack (emulators, fake GCS, every service) until Ctrl-C",
        description="Start the Pub/Sub and Firestore emulators, fake-gcs-server with notifications, "
        "the topology's topics, buckets and push subscriptions, and every service under gunicorn.",
    )
    stack.add_argument("--project", default="panoptes-local", help="project id (default: %(default)s)")
    stack.add_argument("--log-dir", type=Path, default=Path("stack-logs"), help="server logs (default: %(default)s)")
    stack.set_defaults(func=cmd_stack)

    gaps = commands.add_parser(
        "gaps",
        parents=[data_dir, as_json],
        help="list raw objects whose chain never finished (exit 1 when there are any)",
        description="Compare the raw bucket with the records: stray .fits never compressed, raws never "
        "converted, .fits.fz whose image is neither solved, unsolved nor rejected, objects never seen. "
        "Embedded data by default; --cloud reads Cloud Storage and Firestore (or the local stack's "
        "emulators through the usual *_EMULATOR_HOST variables).",
    )
    gaps.add_argument("--cloud", action="store_true", help="Cloud Storage and Firestore of GOOGLE_CLOUD_PROJECT")
    gaps.set_defaults(func=cmd_gaps)

    reprocess = commands.add_parser(
        "reprocess",
        parents=[data_dir, as_json],
        help="re-run chosen images through a step (backfill: e.g. solve every unsolved image again)",
        description="Select images by status, unit and date, rebuild the message of a step from each "
        "image's record and publish it with a fresh rerun token: the step runs again even though it "
        "finished before, replaces its own derived outputs (never raw uploads) and passes the token down "
        "the chain; counters are not counted twice. Without --step each image re-runs its latest step, "
        "where its chain stopped. Embedded data by default (processed at once); --cloud publishes to "
        "Pub/Sub of GOOGLE_CLOUD_PROJECT (or the local stack through *_EMULATOR_HOST) at --rate.",
        epilog="examples:\n"
        "  panoptes-network reprocess --status unsolved --step plate-solver\n"
        "  panoptes-network reprocess --cloud --status error --unit PAN001 --since 2026-11-01 --rate 5\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reprocess.add_argument(
        "--status", action="append", choices=[s.value for s in ImageStatus], help="images with this status (repeatable)"
    )
    reprocess.add_argument("--unit", help="images of this unit (e.g. PAN001)")
    reprocess.add_argument(
        "--since", type=parse_since, metavar="DATE", help="images taken at or after DATE (ISO 8601, UTC)"
    )
    reprocess.add_argument("--step", choices=[s.name for s in load_topology().services], help="the step to re-run")
    reprocess.add_argument(
        "--rate", type=float, default=10.0, help="messages a second with --cloud (default: %(default)s)"
    )
    reprocess.add_argument("--dry-run", action="store_true", help="show what would be published; publish nothing")
    reprocess.add_argument("--cloud", action="store_true", help="Pub/Sub and Firestore of GOOGLE_CLOUD_PROJECT")
    reprocess.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no table")
    reprocess.set_defaults(func=cmd_reprocess)

    dlq = commands.add_parser(
        "dlq",
        help="list, show and replay dead letters (messages a service failed 5 times)",
        description="Dead letters of the cloud (or, with PUBSUB_EMULATOR_HOST and FIRESTORE_EMULATOR_HOST, "
        "the local stack) in GOOGLE_CLOUD_PROJECT, with the error the image's record holds. Listing leaves "
        "them in place; replay publishes them back to their step's topic, then removes them.",
    )
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    dlq_list = dlq_commands.add_parser("list", parents=[as_json], help="every dead letter, left in place")
    dlq_show = dlq_commands.add_parser("show", help="one dead letter in full")
    dlq_show.add_argument("message_id")
    dlq_replay = dlq_commands.add_parser("replay", help="publish dead letters back to their step's topic")
    dlq_replay.add_argument("message_ids", nargs="*", metavar="MESSAGE_ID")
    dlq_replay.add_argument("--all", action="store_true", help="replay every dead letter (of --step)")
    for sub in (dlq_list, dlq_show, dlq_replay):
        sub.add_argument("--step", help="only this service's dead letters (e.g. plate-solver)")
        sub.set_defaults(func=cmd_dlq)

    catalog = commands.add_parser("catalog", parents=[data_dir], help="manage the SQL reference catalog")
    catalog_commands = catalog.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    load = catalog_commands.add_parser(
        "load",
        parents=[data_dir],
        help="load a TESS Input Catalog subset (CSV or FITS) into the reference_stars table",
        description="Columns picid, ra, dec (required), vmag, tmag, gaia_id, twomass_id (common spellings "
        "accepted). Rows whose picid is already loaded are replaced. The database is DATABASE_URL, "
        "else DATA_DIR/stamps.sqlite.",
    )
    load.add_argument("file", type=Path, metavar="FILE", help="a .csv or .fits table")
    load.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="default: $DATABASE_URL")
    load.add_argument("--schema", default=None, help="PostgreSQL schema (default: the database's default)")
    load.set_defaults(func=cmd_catalog_load)
    return parser


def cmd_catalog_load(args: argparse.Namespace) -> int:
    from panoptes_network.adapters.reference_catalog import load_catalog_file
    from panoptes_network.steps.plate_solve import PlateSolveSettings

    url = PlateSolveSettings(database_url=args.database_url).database(args.data_dir)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    count = load_catalog_file(args.file, url, args.schema)
    print(f"{count} star(s) from {args.file} loaded into reference_stars ({url.split(':', 1)[0]})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; what the user can fix (no credentials, a backend down) is one line, not a traceback."""
    from google.auth.exceptions import DefaultCredentialsError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DefaultCredentialsError as exc:
        print(
            f"panoptes-network: no Google credentials ({exc}); run 'gcloud auth application-default login', "
            "or set the *_EMULATOR_HOST variables that 'panoptes-network stack' prints",
            file=sys.stderr,
        )
    except PipelineError as exc:
        print(f"panoptes-network: {exc.message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
