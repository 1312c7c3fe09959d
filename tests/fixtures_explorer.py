"""A processed synthetic observation for the explorer's tests, made once per session with the
commands a person would run (``sample --night`` and ``process``), and the same archive copied
into the Firestore emulator and fake-gcs-server, so one test can run on both backends; and
``panoptes-network explore`` serving it, for the browser.

The truths come from the frame files themselves (astropy reads their headers), not from the
records under test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from panoptes_network.adapters.backends import local_context
from panoptes_network.adapters.firestore_metadata import FirestoreMetadata
from panoptes_network.adapters.gcs_storage import GcsStorage
from panoptes_network.core import records
from panoptes_network.core.context import Context
from panoptes_network.core.settings import Settings
from panoptes_network.local import emulators
from polling import wait_for

SCIENCE_FRAMES = 10
EXPLORER_PROJECT = "explorer-test"  # a Firestore project no other test resets


@dataclasses.dataclass(frozen=True)
class ProcessedNight:
    """A processed observation in an embedded data dir, and what its files say."""

    data_dir: Path
    frames_dir: Path
    sequence_id: str
    unit_id: str
    field_name: str
    field_ra: float  # RA-MNT/DEC-MNT of the headers: the observation's field
    field_dec: float
    frame_count: int  # every frame: pointing, science, dark
    exposure_seconds: float
    start: dt.datetime  # the first frame's DATE-OBS

    def context(self) -> Context:
        return local_context(Settings(data_dir=self.data_dir), self.data_dir)[0]

    def processed_file(self, name: str) -> Path:
        """A file of the processed bucket's folder, by object name."""
        return self.data_dir / "buckets" / Settings().bucket("processed") / name


def frame_truths(frames_dir: Path) -> list[fits.Header]:
    return [fits.getheader(path, 1) for path in sorted(frames_dir.rglob("*.fits.fz"))]


@pytest.fixture(scope="session")
def processed_night(tmp_path_factory: pytest.TempPathFactory) -> ProcessedNight:
    from panoptes_network.drivers.cli import main

    root = tmp_path_factory.mktemp("explorer-night")
    frames_dir, data_dir = root / "frames", root / "data"
    assert main(["sample", "--night", str(SCIENCE_FRAMES), "--out", str(frames_dir)]) == 0
    assert main(["process", str(frames_dir), "--data-dir", str(data_dir), "-q"]) == 0
    headers = frame_truths(frames_dir)
    science = [h for h in headers if not h.get("POINTING") and not h.get("DARK")]
    assert len(science) == SCIENCE_FRAMES
    first = min(dt.datetime.fromisoformat(h["DATE-OBS"]).replace(tzinfo=dt.UTC) for h in headers)
    sequence_id = str(headers[0]["SEQID"])
    return ProcessedNight(
        data_dir=data_dir,
        frames_dir=frames_dir,
        sequence_id=sequence_id,
        unit_id=sequence_id.split("_")[0],
        field_name=str(science[0]["FIELD"]),
        field_ra=float(science[0]["RA-MNT"]),
        field_dec=float(science[0]["DEC-MNT"]),
        frame_count=len(headers),
        exposure_seconds=float(sum(h["EXPTIME"] for h in headers)),
        start=first,
    )


def renamed(value: Any, names: Mapping[str, str]) -> Any:
    """``value`` with every ``bucket/`` prefix of a string renamed (records hold ``bucket/name``)."""
    if isinstance(value, Mapping):
        return {key: renamed(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [renamed(item, names) for item in value]
    if isinstance(value, str):
        for old, new in names.items():
            value = value.replace(f"{old}/", f"{new}/")
    return value


def copy_archive(source: Context, target: Context, names: Mapping[str, str]) -> None:
    """Every object and the records the explorer reads, from one backend to the other, bucket
    names renamed as ``names`` says."""
    for bucket, new_bucket in names.items():
        for info in source.storage.list(bucket):
            target.storage.write_new(new_bucket, info.ref.name, source.storage.read(info.ref))
    for collection in (records.UNITS, records.OBSERVATIONS, records.IMAGES):
        for doc_id, document in source.metadata.list(collection):
            target.metadata.merge(collection, doc_id, renamed(document, names))


@dataclasses.dataclass(frozen=True)
class CloudArchive:
    context: Context
    bucket_names: Mapping[str, str]  # embedded bucket name -> its copy's


@pytest.fixture(scope="module")
def cloud_archive(
    processed_night: ProcessedNight, firestore_emulator: emulators.Server, gcs_server: emulators.Server
) -> Iterator[CloudArchive]:
    """The processed night in Firestore (emulator) and Cloud Storage (fake-gcs-server), in
    buckets of its own, for one test module."""
    source = processed_night.context()
    suffix = uuid.uuid4().hex[:8]
    names = {bucket: f"{bucket}-{suffix}" for bucket in source.settings.buckets.values()}
    client = storage.Client(
        project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": gcs_server.url}
    )
    for bucket in names.values():
        client.create_bucket(bucket)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(os.environ, "FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
        emulators.reset_firestore(firestore_emulator.host, EXPLORER_PROJECT)
        settings = Settings(buckets={key: names[bucket] for key, bucket in source.settings.buckets.items()})
        target = dataclasses.replace(
            source,
            settings=settings,
            storage=GcsStorage(client),
            metadata=FirestoreMetadata(EXPLORER_PROJECT),
        )
        copy_archive(source, target, names)
        yield CloudArchive(target, names)


@pytest.fixture(scope="session")
def explorer_url(processed_night: ProcessedNight) -> Iterator[str]:
    """``panoptes-network explore`` on the night, as a user starts it; its URL, from its output."""
    command = [sys.executable, "-m", "panoptes_network", "explore", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--data-dir", str(processed_night.data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "open http://127.0.0.1:" in line, line
        url = line.split("open ", 1)[1].split()[0]
        wait_for(lambda: answers(url), f"the explorer at {url}", 30)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False
