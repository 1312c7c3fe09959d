"""`panoptes-network gaps`: raw objects whose chain never finished, found from bucket and records.

The classification is pure (``kind_of``, ``gap_of``) and tested on hand-built records, one case
per kind of gap; one end-to-end test runs the command on a processed frame and some strays.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from panoptes_network.core.names import FileKind
from panoptes_network.drivers.cli import main
from panoptes_network.operations.chain_gaps import gap_of, kind_of

SEQUENCE = "PAN001/14d3bd/20181011T134202"
IMAGE_ID = "PAN001_14d3bd_20181011T134333"
IDENTITY = f"panoptes-raw-images/{SEQUENCE}/20181011T134333.cr2#7"


def step(state: str, minute: int, **fields: object) -> dict:
    """A step record as the shell writes it, finished at ``minute`` past the hour."""
    return {"state": state, "finished": dt.datetime(2026, 11, 24, 8, minute, tzinfo=dt.UTC), **fields}


@pytest.mark.parametrize(
    ("name", "kind", "image_id"),
    [
        (f"{SEQUENCE}/20181011T134333.fits.fz", FileKind.FITS_FZ, IMAGE_ID),
        (f"{SEQUENCE}/20181011T134333.fits", FileKind.FITS, IMAGE_ID),
        (f"{SEQUENCE}/20181011T134333.cr2", FileKind.RAW, IMAGE_ID),
        (f"{SEQUENCE}/20181011T134333.jpg", FileKind.OTHER, IMAGE_ID),
        (f"{SEQUENCE}/pointing00.cr2", FileKind.RAW, "PAN001_14d3bd_pointing00"),
        ("notes.txt", FileKind.OTHER, None),
        ("PAN001/bad", FileKind.OTHER, None),
    ],
)
def test_kind_of_takes_unparseable_names_for_other_objects_and_pointings_for_frames(
    name: str, kind: FileKind, image_id: str | None
) -> None:
    assert kind_of(name) == (kind, image_id)


GAPS = {
    # (kind, image record, seen by image-received) -> why, or None when finished
    "other, recorded": (FileKind.OTHER, None, True, None),
    "other, never seen": (FileKind.OTHER, None, False, "never seen by image-received"),
    "no image record": (FileKind.FITS_FZ, None, True, "no image record: never routed or never recorded"),
    "fits, kept as a conflict": (
        FileKind.FITS,
        {"steps": {"compress-fits": step("conflict", 1, conflict="X.fits.fz already held different content")}},
        True,
        "conflict in compress-fits: X.fits.fz already held different content",
    ),
    "fits, never compressed": (FileKind.FITS, {"steps": {}}, True, "still uncompressed; no step recorded"),
    "fits, compression failed": (
        FileKind.FITS,
        {"steps": {"image-received": step("done", 1), "compress-fits": step("error", 2, error="disk full")}},
        True,
        "still uncompressed; last step compress-fits: error (disk full)",
    ),
    "raw, converted": (FileKind.RAW, {"steps": {"make-rgb-fits": step("done", 2, input=IDENTITY)}}, True, None),
    "raw, rejected": (FileKind.RAW, {"steps": {"make-rgb-fits": step("rejected", 2, input=IDENTITY)}}, True, None),
    "raw, another generation converted": (
        FileKind.RAW,
        {"steps": {"make-rgb-fits": step("done", 2, input=IDENTITY.replace("#7", "#6"))}},
        True,
        "not converted; last step make-rgb-fits: done",
    ),
    "fits.fz, solved": (FileKind.FITS_FZ, {"status": "solved"}, True, None),
    "fits.fz, unsolved": (FileKind.FITS_FZ, {"status": "unsolved"}, True, None),
    "fits.fz, rejected": (FileKind.FITS_FZ, {"status": "rejected"}, True, None),
    "fits.fz, stopped on the way": (
        FileKind.FITS_FZ,
        {
            "status": "background_subtracted",
            "steps": {"subtract-background": step("done", 3), "plate-solver": step("transient", 4)},
        },
        True,
        "stopped at background_subtracted; last step plate-solver: transient",
    ),
}


@pytest.mark.parametrize("case", GAPS)
def test_gap_of_says_why_a_chain_is_unfinished(case: str) -> None:
    kind, image, seen, why = GAPS[case]
    assert gap_of(kind, IDENTITY, image, seen) == why


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
