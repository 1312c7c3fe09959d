"""The data explorer under load on the local stack: the observation page of a 100-frame
observation, 50 clients at once for 30 s (issue 15's goal: p95 < 300 ms, no errors).

The observation is made as a unit makes one: 100 frames of the real sky (``sample --night``'s
frames, ``write_observation``) and a pointing image uploaded to the stack's raw bucket, then the
end marker; the pipeline solves every frame and makes the products; the explorer service of the
stack serves the page from the Firestore emulator and fake-gcs-server. Prints
``bench explorer-load clients=50 seconds=30 requests=... rps=... p50_ms=... p95_ms=... errors=...
first_render_ms=...`` (the first request, which renders the page from the archive; the pages
are then cached 10 s, ``explorer/page_cache.py``).
The timed pair: 200 page requests (ours) against 200 requests of the observation's JSON from the
API (the same archive reads, no HTML), 50 at a time.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import statistics
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from panoptes_network.adapters.firestore_metadata import FirestoreMetadata
from panoptes_network.core import records
from panoptes_network.core.names import END_MARKER
from panoptes_network.core.settings import Settings
from panoptes_network.drivers.cli.sample import NIGHT_SHAPE
from panoptes_network.local.stack import LocalStack, patched_env, start_stack
from panoptes_network.synthetic.observation import ObservationSpec, write_observation
from panoptes_network.synthetic.star_field import StarFieldSpec

FAILED = ("error", "not_enough_frames", "too_much_drift")
Pair = tuple[Callable[[], object], Callable[[], object]]

FRAMES = 100
CLIENTS = 50
LOAD_SECONDS = 30.0
TIMED_REQUESTS = 200
PROCESSING_TIMEOUT_SECONDS = 3600
SWEEP_SECONDS = 15.0
# A well-aligned mount: 100 frames span about four hours, and the default drift (6, -3) px an
# hour would end too_much_drift (28 px), with no stack or timelapse to show.
DRIFT_PX_PER_HOUR = (3.0, -1.5)


@contextmanager
def explorer_load(work: Path) -> Iterator[Pair]:
    project = f"bench-explorer-{uuid.uuid4().hex[:8]}"
    # The end marker lands before the frames are solved: the sweep takes it up once they are.
    settings = Settings(project=project, sweep_interval_seconds=SWEEP_SECONDS)
    stack = start_stack(project, work / "stack", settings)
    try:
        sequence_id = make_observation(stack, work / "night")
        base = stack.services["data-explorer"].url
        page, api = f"{base}/observations/{sequence_id}", f"{base}/api/observations/{sequence_id}"
        started = time.monotonic()
        assert fetch(connect(page), page), f"{page} does not answer"
        first_ms = (time.monotonic() - started) * 1000  # rendered from the archive: nothing cached yet
        latencies, errors, elapsed = load(page, CLIENTS, LOAD_SECONDS)
        p50, p95 = statistics.median(latencies), statistics.quantiles(latencies, n=100)[94]
        print(
            f"bench explorer-load clients={CLIENTS} seconds={elapsed:.0f} requests={len(latencies)} "
            f"rps={len(latencies) / elapsed:.1f} p50_ms={p50 * 1000:.0f} p95_ms={p95 * 1000:.0f} errors={errors} "
            f"first_render_ms={first_ms:.0f}",
            flush=True,
        )
        yield (lambda: burst(page)), (lambda: burst(api))
    finally:
        stack.stop()


def make_observation(stack: LocalStack, folder: Path) -> str:
    """100 frames of the real sky through the stack's whole pipeline; the processed sequence id."""
    from google.cloud import firestore, storage

    spec = ObservationSpec(
        field=StarFieldSpec(shape=NIGHT_SHAPE),
        frames=FRAMES,
        stars=None,
        pointing_images=1,
        darks=0,
        drift_px_per_hour=DRIFT_PX_PER_HOUR,
    )
    truth = write_observation(spec, folder)
    with patched_env(stack.client_env):
        raw = storage.Client().bucket(stack.settings.bucket("raw"))
        metadata = FirestoreMetadata(stack.project, firestore.Client(project=stack.project))  # built here: the env
    started = time.monotonic()
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda path: raw.blob(str(path.relative_to(folder))).upload_from_filename(path), files))
    sequence_folder = Path(truth.frames[0].name).parent
    raw.blob(f"{sequence_folder}/{END_MARKER}").upload_from_string(b"{}")
    while True:
        record = records.observation(metadata, truth.sequence_id) or {}
        if record.get("status") == "processed":
            break
        if record.get("status") in FAILED or time.monotonic() - started > PROCESSING_TIMEOUT_SECONDS:
            raise SystemExit(
                f"bench explorer-load: the observation did not process: {record.get('status')}: {record.get('reason')}"
            )
        time.sleep(5)
    print(
        f"bench explorer-load setup: {len(files)} frames uploaded and processed on the stack "
        f"in {time.monotonic() - started:.0f} s",
        flush=True,
    )
    return truth.sequence_id


def load(url: str, clients: int, seconds: float) -> tuple[list[float], int, float]:
    """``clients`` keep-alive clients asking ``url`` one request after another for ``seconds``:
    the latency of every answered request, the number of errors, the seconds it took."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        nonlocal errors
        connection = connect(url)
        while time.monotonic() < deadline:
            started = time.monotonic()
            ok = fetch(connection, url)
            with lock:
                if ok:
                    latencies.append(time.monotonic() - started)
                else:
                    errors += 1
            if not ok:
                connection.close()
                connection = connect(url)

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda _: client(), range(clients)))
    return latencies, errors, time.monotonic() - started


def burst(url: str, requests: int = TIMED_REQUESTS, clients: int = CLIENTS) -> None:
    """``requests`` requests of ``url``, ``clients`` at a time; every one must succeed."""

    def one(_: int) -> bool:
        return fetch(connect(url), url)

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        failed = [ok for ok in pool.map(one, range(requests)) if not ok]
    if failed:
        raise SystemExit(f"bench explorer-load: {len(failed)} of {requests} requests of {url} failed")


def connect(url: str) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(urllib.parse.urlsplit(url).netloc, timeout=60)


def fetch(connection: http.client.HTTPConnection, url: str) -> bool:
    """One GET; whether it answered 200 with a body."""
    try:
        connection.request("GET", urllib.parse.urlsplit(url).path)
        response = connection.getresponse()
        body = response.read()
        return response.status == 200 and len(body) > 0
    except (OSError, http.client.HTTPException):
        return False


CASES = {"explorer": explorer_load}
