"""The embedded runner: every built step, in one process, on local stand-ins.

This is the second driver of the step core (the Flask service is the first): files are
ingested into the raw-bucket folder, a storage notification goes onto the in-process queue,
and each queued message is handled by the services the topology says listen on its topic,
until the queue is empty. Images run in parallel in worker processes.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import multiprocessing
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from panoptes_network.adapters.backends import local_context, notify_finalize
from panoptes_network.adapters.sqlite_metadata import SqliteMetadata
from panoptes_network.core import records
from panoptes_network.core.context import Context
from panoptes_network.core.errors import BadInput
from panoptes_network.core.logs import configure_logging, log
from panoptes_network.core.messages import ObjectRef, ObservationMessage, PushMessage
from panoptes_network.core.names import NO_HINTS, NameHints
from panoptes_network.core.observations import last_arrival, late_token, was_processed
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.settings import Settings
from panoptes_network.core.status import ObjectStatus
from panoptes_network.core.step_shell import Handled, run_step
from panoptes_network.drivers.ingest import canonical_name, ingest, run_hints
from panoptes_network.operations.chain_gaps import last_step

logger = logging.getLogger(__name__)

TRANSIENT_RETRIES = 3
RETRY_BACKOFF_SECONDS = 0.5
FAILED_OUTCOMES = (Outcome.REJECTED, Outcome.ERROR, Outcome.TRANSIENT, Outcome.MALFORMED, Outcome.CONFLICT)


@dataclasses.dataclass
class FileReport:
    """What happened to one input file."""

    path: str
    image_id: str | None = None
    ref: ObjectRef | None = None  # what was stored in the raw bucket
    handled: list[Handled] = dataclasses.field(default_factory=list)
    error: str | None = None  # the file never entered the pipeline

    @property
    def failed(self) -> bool:
        if self.error is not None:
            return True
        return any(h.outcome in FAILED_OUTCOMES for h in self.handled)


class EmbeddedRunner:
    """Runs the topology's services on local files, one file's whole chain at a time."""

    def __init__(self, data_dir: Path, settings: Settings | None = None, hints: NameHints = NO_HINTS) -> None:
        self.data_dir = Path(data_dir)
        self.hints = hints  # ids for files whose headers carry none
        self.settings = settings or Settings(data_dir=self.data_dir)
        self.context, self.queue = local_context(self.settings, self.data_dir)

    @property
    def metadata(self) -> SqliteMetadata:
        return self.context.metadata  # type: ignore[return-value]

    def process_file(self, path: Path) -> FileReport:
        report = FileReport(str(path))
        try:
            report.image_id = canonical_name(path, self.hints).image_id
            report.ref, created = ingest(self.context.storage, self.settings.bucket("raw"), path, self.hints)
        except BadInput as exc:
            report.error = exc.message
            log(logger, "ERROR", f"not ingested: {exc.message}", input=str(path), outcome="rejected")
            return report
        if not created:  # already stored: notify again, as a re-upload would, to resume its chain
            info = self.context.storage.stat(report.ref.bucket, report.ref.name)
            if info is not None:
                notify_finalize(self.queue, self.context.topology, self.settings, info)
        report.handled = list(self.drain())
        return report

    def drain(self) -> Iterator[Handled]:
        """Handle queued messages until none are left (retrying transient failures a few times)."""
        while (queued := self.queue.pop()) is not None:
            message = PushMessage(queued.message_id, queued.data, queued.attributes)
            for service in self.context.topology.listeners(queued.topic):
                step = service.step_module().STEP
                for attempt in range(TRANSIENT_RETRIES + 1):
                    handled = run_step(service, step, self.context, message)
                    log(
                        logger,
                        handled.outcome.severity,
                        f"{service.name}: {handled.outcome.value}",
                        **handled.log_fields(),
                    )
                    if handled.outcome is not Outcome.TRANSIENT or attempt == TRANSIENT_RETRIES:
                        break
                    time.sleep(RETRY_BACKOFF_SECONDS * 2**attempt)
                yield handled

    def finish_observation(self, sequence_id: str, reason: str, rerun: str | None = None) -> list[Handled]:
        """Process one observation now (as the sweep would once it is quiet), and what happened.
        One processed before and given new frames since is re-processed with a rerun token named
        after the latest arrival, so its products are replaced."""
        observation = records.observation(self.metadata, sequence_id) or {}
        if rerun is None and was_processed(observation) and observation.get(records.PENDING):
            arrival = last_arrival(observation, records.sequence_images(self.metadata, sequence_id))
            rerun = late_token(arrival) if arrival else None
        data, attributes = ObservationMessage(sequence_id, reason, rerun).encode()
        self.queue.publish(OBSERVATION_TOPIC, data, attributes)
        return list(self.drain())


OBSERVATION_TOPIC = "process-observation"
FINISHED_RUN = "embedded run finished"

_worker: EmbeddedRunner | None = None


def _start_worker(data_dir: Path, settings: Settings, log_path: Path, hints: NameHints) -> None:
    global _worker
    configure_logging(open(log_path, "a", buffering=1))  # noqa: SIM115 (open for the life of the process)
    _worker = EmbeddedRunner(data_dir, settings, hints)


def _work(path: Path) -> FileReport:
    assert _worker is not None, "worker not started"
    return _worker.process_file(path)


def expand_inputs(paths: Iterable[Path]) -> list[Path]:
    """Files as given, and the files inside given folders (hidden ones skipped), in order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            files.append(path)
    return files


def process(paths: Iterable[Path], runner: EmbeddedRunner, jobs: int, log_path: Path) -> Iterator[FileReport]:
    """Process files, ``jobs`` at a time; yield each report as its file finishes. One job runs
    in ``runner``; more run in worker processes of their own. The runner's hints name the files
    whose headers carry no ids (``ingest.run_hints``)."""
    files = expand_inputs(paths)
    runner.hints = run_hints(files, runner.hints)
    if jobs <= 1 or len(files) <= 1:
        for path in files:
            yield runner.process_file(path)
        return
    spawn = multiprocessing.get_context("spawn")
    initargs = (runner.data_dir, runner.settings, log_path, runner.hints)
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs, mp_context=spawn, initializer=_start_worker, initargs=initargs
    ) as pool:
        futures = [pool.submit(_work, path) for path in files]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()


def record_of(context: Context, report: FileReport) -> dict[str, Any]:
    """The image's record as stored (or the object's, when it never became an image)."""
    record: dict[str, Any] = {"input": report.path}
    if report.error is not None:
        return {**record, "image_id": report.image_id, "status": "rejected", "error": report.error}
    stored = records.image(context.metadata, report.image_id) if report.image_id else None
    if stored is None and report.ref is not None:
        stored = records.object_record(context.metadata, report.ref.doc_id)
    return {**record, **(stored or {})}


def stopped_short(record: dict[str, Any]) -> str | None:
    """Where and why an image stopped before a final status (solved, unsolved, rejected), or
    None when it reached one or never became an image (refused at ingest, an object ignored)."""
    never_an_image = record.get("error") is not None or record.get("status") in {s.value for s in ObjectStatus}
    if (records.STEPS not in record and never_an_image) or records.frame_is_final(record):
        return None
    return f"stopped at {record.get('status') or 'no record'}; {last_step(record)}"


def record_failed(record: dict[str, Any]) -> bool:
    """Whether an image's record shows a failure a person should look at: a rejection, an error,
    or a conflict (an output name held something else) on any step."""
    return record.get("status") in records.FAILED_STATES or any(s.failed for s in records.steps(record).values())
