"""Load on the local stack: many small frames uploaded at once, timed from upload to final step.

Shared by ``tests/test_stack_load.py`` (which proves nothing was lost or duplicated) and the
bench case ``stack-load`` (which reports the throughput). The frames are small synthetic Bayer
frames with a POCS header (``synthetic.make_frame``), spread over units, cameras and sequences
so that the counters on units and observations mean something, with a few stars each: too few
to solve, so the plate-solver records them ``unsolved`` without running astrometry.net. Every
``fits_every``-th frame goes up as a plain ``.fits`` (through compress-fits), the rest as
``.fits.fz``.

Completion times are the final step's ``finished`` timestamps on the image records (written by
the step itself), so polling the records only decides when to stop waiting, never the numbers.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import statistics
import time
from collections.abc import Sequence
from typing import Any

from astropy.io import fits

from panoptes_network.core import records
from panoptes_network.core.names import parse_raw_name
from panoptes_network.core.status import StepState
from panoptes_network.science.fits_codec import compressed_file, to_bytes
from panoptes_network.synthetic.frames import FrameSpec, make_frame

CHAIN = ("image-received", "record-image", "subtract-background", "plate-solver")
FINAL_STEP = CHAIN[-1]
FIRST_SEQUENCE = dt.datetime(2026, 11, 24, 4, 0, 0, tzinfo=dt.UTC)
POLL_SECONDS = 1.0
UPLOAD_THREADS = 10  # the storage client's connection pool holds 10


@dataclasses.dataclass(frozen=True)
class LoadFrame:
    """One frame to upload: its object name in the raw bucket, what it should count, its bytes."""

    name: str
    exptime: float
    data: bytes

    @property
    def image_id(self) -> str:
        return parse_raw_name(self.name).image_id

    @property
    def sequence_id(self) -> str:
        return parse_raw_name(self.name).sequence_id

    @property
    def unit_id(self) -> str:
        return parse_raw_name(self.name).unit_id

    @property
    def steps(self) -> tuple[str, ...]:
        """The steps that record on this frame's image."""
        return CHAIN if self.name.endswith(".fz") else ("compress-fits", *CHAIN)

    @property
    def compressed_name(self) -> str:
        """The ``.fits.fz`` the chain goes on with (compress-fits makes it from a ``.fits``)."""
        return self.name if self.name.endswith(".fz") else f"{self.name}.fz"


def frame_spec(index: int, tag: str, units: int, cameras: int, sequences: int) -> FrameSpec:
    """Frame ``index``: round-robin over units, then cameras, then sequences (an hour apart);
    64x64 to 200x200 px, 0 to 5 stars, exposure times of 30 to 75 s (exact in binary)."""
    unit, rest = index % units, index // units
    camera, rest = rest % cameras, rest // cameras
    sequence, exposure = rest % sequences, rest // sequences
    return FrameSpec(
        unit_id=f"PAN{101 + unit:03d}",
        camera_id=f"{tag}{camera:02d}",
        sequence_time=FIRST_SEQUENCE + dt.timedelta(hours=sequence),
        exposure_offset_s=60 + 130 * exposure,
        exptime=30.0 + 15.0 * (index % 4),
        shape=(64 + 8 * (index % 18), 64 + 8 * (7 * index % 18)),
        stars=index % 6,
        seed=index,
    )


def load_frames(
    count: int, tag: str = "LOAD", units: int = 4, cameras: int = 2, sequences: int = 5, fits_every: int = 5
) -> list[LoadFrame]:
    """``count`` frames; ``tag`` (4 letters or digits) starts every camera id, so that runs on
    the same stack do not collide."""
    frames = []
    for index in range(count):
        spec = frame_spec(index, tag, units, cameras, sequences)
        data, header = make_frame(spec)
        if index % fits_every == 0:
            frames.append(LoadFrame(spec.path(), spec.exptime, to_bytes(fits.HDUList([fits.PrimaryHDU(data, header)]))))
        else:
            frames.append(LoadFrame(f"{spec.path()}.fz", spec.exptime, compressed_file(data, header)))
    return frames


@dataclasses.dataclass(frozen=True)
class Uploads:
    """When the uploads began (epoch seconds) and when each one's upload returned, by image id."""

    started: float
    finished: dict[str, float]


def upload_all(bucket: Any, frames: Sequence[LoadFrame], threads: int = UPLOAD_THREADS) -> Uploads:
    """Upload every frame into ``bucket`` (a google-cloud-storage Bucket) at once, ``threads`` at a time."""

    def upload(frame: LoadFrame) -> tuple[str, float]:
        bucket.blob(frame.name).upload_from_string(frame.data, content_type="application/fits")
        return frame.image_id, time.time()

    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        finished = dict(pool.map(upload, frames))
    return Uploads(started, finished)


def final_step_done(image: dict[str, Any] | None) -> bool:
    return records.step_record(image, FINAL_STEP).state == StepState.DONE.value


def settled(frame: LoadFrame, image: dict[str, Any] | None) -> bool:
    """Whether every step of the frame's chain has recorded its outcome on the image (a step
    records after publishing to the next, so the final step may finish before the one ahead)."""
    recorded = records.steps(image).keys()
    return final_step_done(image) and set(frame.steps) <= recorded


def wait_until_final(db: Any, frames: Sequence[LoadFrame], timeout_seconds: float) -> dict[str, dict[str, Any]]:
    """The image documents (from a google-cloud-firestore Client) once every frame's image has
    settled, or as they are when ``timeout_seconds`` run out (missing documents left out)."""
    references = [db.collection(records.IMAGES).document(frame.image_id) for frame in frames]
    deadline = time.monotonic() + timeout_seconds
    while True:
        images = {snapshot.id: snapshot.to_dict() for snapshot in db.get_all(references) if snapshot.exists}
        if all(settled(frame, images.get(frame.image_id)) for frame in frames) or time.monotonic() >= deadline:
            return images
        time.sleep(POLL_SECONDS)


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """Throughput from the first upload to the last final step, and upload-to-final latencies."""

    images: int
    seconds: float
    p50_latency_s: float
    p95_latency_s: float
    max_latency_s: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds

    def fields(self) -> dict[str, float]:
        return dict(  # the names of the bench line, images=... first
            images=self.images,
            seconds=round(self.seconds, 2),
            images_per_s=round(self.images_per_second, 2),
            p50_latency_s=round(self.p50_latency_s, 2),
            p95_latency_s=round(self.p95_latency_s, 2),
            max_latency_s=round(self.max_latency_s, 2),
        )

    def line(self) -> str:
        return " ".join(f"{key}={value}" for key, value in self.fields().items())


def measure(uploads: Uploads, images: dict[str, dict[str, Any]]) -> LoadReport:
    """The report over the images whose final step is done (the caller checks that is all of them)."""
    finished = {
        image_id: records.step_record(image, FINAL_STEP).get("finished").timestamp()
        for image_id, image in images.items()
        if final_step_done(image)
    }
    if len(finished) < 2:
        raise ValueError(f"only {len(finished)} image(s) finished: no latency distribution")
    latencies = sorted(finished[image_id] - uploads.finished[image_id] for image_id in finished)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return LoadReport(len(finished), max(finished.values()) - uploads.started, cuts[49], cuts[94], latencies[-1])
