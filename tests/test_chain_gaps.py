"""`panoptes-network gaps`: raw objects whose chain never finished, found from bucket and records."""

from __future__ import annotations

import json
from pathlib import Path

from panoptes_network.drivers.cli import main


def test_gaps_lists_only_the_unfinished(test_data: Path, tmp_path: Path, capsys) -> None:
    assert main(["process", "-q", "--data-dir", str(tmp_path), str(test_data / "panoptes/solved.fits.fz")]) == 0
    assert main(["gaps", "--data-dir", str(tmp_path)]) == 0  # everything processed finished
    capsys.readouterr()
    raw = tmp_path / "buckets" / "panoptes-raw-images" / "PAN001" / "ab12cd" / "20200101T000000"
    raw.mkdir(parents=True)
    (raw / "20200101T000100.fits.fz").write_bytes((test_data / "panoptes/tiny.fits").read_bytes())  # never notified
    (raw / "20200101T000200.fits").write_bytes(b"SIMPLE  =")  # a stray .fits nobody compressed
    (raw / "notes.txt").write_text("never seen")
    assert main(["gaps", "--json", "--data-dir", str(tmp_path)]) == 1
    gaps = {Path(g["identity"].split("#")[0]).name: g for g in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(gaps) == {"20200101T000100.fits.fz", "20200101T000200.fits", "notes.txt"}
    assert "never routed" in gaps["20200101T000100.fits.fz"]["why"]
    assert gaps["notes.txt"]["why"] == "never seen by image-received"
