"""``panoptes-network reprocess``: re-run chosen images through a step with a fresh rerun token."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tqdm import tqdm

from panoptes_network.core import records as documents
from panoptes_network.core.logs import configure_logging
from panoptes_network.core.status import ImageStatus
from panoptes_network.core.step_shell import Handled
from panoptes_network.core.topology import load_topology
from panoptes_network.drivers.cli.shared import Commands, CommonOptions, open_records, print_table
from panoptes_network.drivers.embedded import FAILED_OUTCOMES, EmbeddedRunner
from panoptes_network.operations.reprocessing import OBSERVATION_STEP, parse_since


def add_parser(commands: Commands, options: CommonOptions) -> None:
    reprocess = commands.add_parser(
        "reprocess",
        parents=[options.data_dir, options.as_json],
        help="re-run chosen images through a step (backfill: e.g. solve every unsolved image again)",
        description="Select images by status, unit and date, rebuild the message of a step from each "
        "image's record and publish it with a fresh rerun token: the step runs again even though it "
        "finished before, replaces its own derived outputs (never raw uploads) and passes the token down "
        "the chain; counters are not counted twice. Without --step each image re-runs its latest step, "
        "where its chain stopped. Embedded data by default (processed at once); --cloud publishes to "
        "Pub/Sub of GOOGLE_CLOUD_PROJECT (or the local stack through *_EMULATOR_HOST) at --rate.",
        epilog="examples:\n"
        "  panoptes-network reprocess --status unsolved --step plate-solver\n"
        "  panoptes-network reprocess --cloud --status error --unit PAN001 --since 2026-11-01 --rate 5\n"
        "  panoptes-network reprocess --observation PAN001_14d3bd_20181011T134202\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reprocess.add_argument(
        "--status", action="append", choices=[s.value for s in ImageStatus], help="images with this status (repeatable)"
    )
    reprocess.add_argument("--unit", help="images of this unit (e.g. PAN001)")
    reprocess.add_argument(
        "--since", type=parse_since, metavar="DATE", help="images taken at or after DATE (ISO 8601, UTC)"
    )
    reprocess.add_argument(
        "--observation",
        action="append",
        metavar="SEQ",
        help="process this observation again, replacing its products (repeatable; images are then "
        "selected only when --status, --unit or --since is given too)",
    )
    reprocess.add_argument("--step", choices=[s.name for s in load_topology().services], help="the step to re-run")
    reprocess.add_argument(
        "--rate", type=float, default=10.0, help="messages a second with --cloud (default: %(default)s)"
    )
    reprocess.add_argument("--dry-run", action="store_true", help="show what would be published; publish nothing")
    reprocess.add_argument("--cloud", action="store_true", help="Pub/Sub and Firestore of GOOGLE_CLOUD_PROJECT")
    reprocess.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no table")
    reprocess.set_defaults(func=cmd_reprocess)


def cmd_reprocess(args: argparse.Namespace) -> int:
    from panoptes_network.operations.reprocessing import (
        Pace,
        Selection,
        new_token,
        plan_observation_rerun,
        plan_rerun,
        publish,
        select_images,
    )

    opened = open_records(args)
    if opened is None:
        return 2
    context, runner = opened
    if runner is not None:
        configure_logging(open(args.data_dir / "pipeline.log", "a", buffering=1))  # noqa: SIM115 (open for the life of the process)
    selection = Selection(tuple(args.status or ()), args.unit, args.since, args.step)
    token, pace = new_token(), Pace(args.rate if runner is None else None)
    observations = args.observation or []
    images_too = not observations or args.status or args.unit or args.since
    images = list(select_images(context, selection)) if images_too else []
    planned = [
        (plan_observation_rerun(context, seq, token), documents.observation(context.metadata, seq) or {})
        for seq in observations
    ]
    planned += [(plan_rerun(context, image_id, image, selection.step, token), image) for image_id, image in images]
    rows: list[dict[str, Any]] = []
    rerun_sequences: set[str] = set()  # the observations of the frames re-run here
    with tqdm(planned, desc="reprocess", unit="run", file=sys.stderr, disable=args.quiet or None) as bar:
        for rerun, image in bar:
            image_id = rerun.image_id
            row = {"image_id": image_id, "step": rerun.step, "status": image.get("status")}
            if rerun.skipped:
                row |= {"result": "skipped", "note": rerun.skipped}
            elif args.dry_run:
                row |= {"result": "planned", "note": rerun.topic}
            else:
                pace.wait()
                row |= {"result": "published", "note": publish(context, rerun)}
                if rerun.step != OBSERVATION_STEP and image.get("sequence_id"):
                    rerun_sequences.add(image["sequence_id"])
                if runner is not None:  # embedded: run the chain now, as the services would
                    row |= embedded_result(runner, image_id, list(runner.drain()))
            rows.append(row)
            if args.json:
                tqdm.write(json.dumps(row), file=sys.stdout)
    if runner is not None:  # embedded: the observations those frames made pending, once, as the sweep would
        for row in finish_observations(runner, sorted(rerun_sequences)):
            rows.append(row)
            if args.json:
                print(json.dumps(row), file=sys.stdout)
    counts = {
        result: sum(r["result"] == result for r in rows)
        for result in ("published", "done", "failed", "skipped", "planned")
    }
    if rows and not args.json and not args.quiet:
        print_table(
            [(r["image_id"], r["step"] or "-", r["status"] or "-", r["result"], r["note"] or "") for r in rows],
            ("IMAGE", "STEP", "STATUS", "RESULT", "NOTE"),
            sys.stdout,
        )
    summary = ", ".join(f"{n} {result}" for result, n in counts.items() if n) or "nothing"
    print(f"{len(rows)} image(s) or observation(s) matched: {summary} (rerun {token})", file=sys.stderr)
    return 1 if counts["failed"] else 0


FRAMES_RERUN = "frames re-run"  # the reason of an observation processed again after its frames were


def embedded_result(runner: EmbeddedRunner, subject: str, handled: list[Handled]) -> dict[str, Any]:
    """A row's result after the embedded chain ran: done or failed, the image's (or observation's)
    status now, and the failures' reasons."""
    failures = [h for h in handled if h.outcome in FAILED_OUTCOMES]
    final = documents.image(runner.metadata, subject) or documents.observation(runner.metadata, subject) or {}
    note = "; ".join(f"{h.step}: {h.reason}" for h in failures) or f"now {final.get('status')}"
    return {"result": "failed" if failures else "done", "status": final.get("status"), "note": note}


def finish_observations(runner: EmbeddedRunner, sequence_ids: list[str]) -> list[dict[str, Any]]:
    """Process each observation that re-run frames left pending (once: the token is named after
    their latest change, as the sweep's), and its row."""
    rows = []
    for sequence_id in sequence_ids:
        if not (documents.observation(runner.metadata, sequence_id) or {}).get(documents.PENDING):
            continue
        handled = runner.finish_observation(sequence_id, FRAMES_RERUN)
        rows.append(
            {"image_id": sequence_id, "step": OBSERVATION_STEP, **embedded_result(runner, sequence_id, handled)}
        )
    return rows
