"""A processed synthetic night in an embedded data directory, and ``panoptes-network explore``
serving it: what the explorer's page and browser tests look at.

The night is the demo's (``sample --night``: the real sky, so every frame solves) with six
science frames, processed by ``panoptes-network process`` with ``PANOPTES_MIN_FRAMES=5`` so that
the observation gets every product (stack, difference, timelapse, quality, stamp cube).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from panoptes_network.adapters.sqlite_metadata import SqliteMetadata
from panoptes_network.core import records
from panoptes_network.core.settings import patched_env
from panoptes_network.drivers.cli import main
from polling import wait_for

NIGHT_FRAMES = 6


@dataclasses.dataclass(frozen=True)
class ProcessedNight:
    data_dir: Path
    sequence_id: str
    field_name: str
    ra: float
    dec: float

    def processed_file(self, name: str) -> Path:
        """A file of the processed bucket's folder, by object name."""
        return self.data_dir / "buckets" / "panoptes-processed-images" / name


@pytest.fixture(scope="session")
def processed_night(tmp_path_factory: pytest.TempPathFactory) -> ProcessedNight:
    root = tmp_path_factory.mktemp("explorer-night")
    data_dir = root / "data"
    with patched_env({"PANOPTES_MIN_FRAMES": "5"}):
        assert main(["sample", "--night", str(NIGHT_FRAMES), "--out", str(root / "in")]) == 0
        assert main(["process", "--quiet", "--data-dir", str(data_dir), str(root / "in")]) == 0
    [(sequence_id, record)] = records.observations(SqliteMetadata(data_dir / "metadata.sqlite"))
    assert record["status"] == "processed", record
    field = record["field"]
    return ProcessedNight(data_dir, sequence_id, field["name"], field["ra"], field["dec"])


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
