"""Which frames belong to an observation: pointing images, darks and flats are recognised by
name and by the keywords POCS writes, and everything else is a science frame."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits

from panoptes_network.core.names import parse_raw_name
from panoptes_network.core.status import FrameType
from panoptes_network.drivers.ingest import read_fits_header
from panoptes_network.science.header_metadata import frame_type, header_id_mismatches

FRAME = parse_raw_name("PAN000/SC5348/20200101T080115/20200101T080134.fits.fz")
POINTING = parse_raw_name("PAN000/SC5348/20200101T080115/Pointing01.fits.fz")


def header(**cards: object) -> fits.Header:
    return fits.Header(
        [("SEQID", "PAN000_SC5348_20200101T080115"), *((key.replace("_", "-"), value) for key, value in cards.items())]
    )


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        ({}, FrameType.SCIENCE),
        ({"IMAGETYP": "Light Frame"}, FrameType.SCIENCE),
        ({"POINTING": False, "DARK": False}, FrameType.SCIENCE),
        ({"POINTING": True}, FrameType.POINTING),
        ({"POINTING": "T"}, FrameType.POINTING),
        ({"IMAGEID": "PAN000_SC5348_pointing00"}, FrameType.POINTING),
        ({"FILENAME": "pointing02.cr2"}, FrameType.POINTING),
        ({"IMAGETYP": "Dark Frame"}, FrameType.DARK),
        ({"IMAGETYP": "DARK"}, FrameType.DARK),
        ({"IMAGETYP": "Bias Frame"}, FrameType.DARK),
        ({"DARK": True}, FrameType.DARK),
        ({"IMAGETYP": "Flat Field"}, FrameType.FLAT),
        ({"IMAGETYP": "flat", "POINTING": True}, FrameType.FLAT),  # no sky in it, whatever else it says
    ],
)
def test_frame_type_from_the_header(cards: dict[str, object], expected: FrameType) -> None:
    assert frame_type(header(**cards), FRAME) is expected


def test_a_pointing_name_is_a_pointing_image_whatever_the_header_says() -> None:
    assert frame_type(header(), POINTING) is FrameType.POINTING
    assert frame_type(header(DARK=True), POINTING) is FrameType.DARK


@pytest.mark.parametrize("file", ["unsolved.fits", "solved.fits.fz", "tiny.fits", "noheader.fits"])
def test_the_real_frames_are_science_frames(test_data: Path, file: str) -> None:
    real = read_fits_header(test_data / "panoptes" / file)
    assert frame_type(real, parse_raw_name("PAN001/XXXXXX/20160909T081152/20160909T081314.fits")) is FrameType.SCIENCE


def test_a_unit_name_in_observer_is_no_mismatch() -> None:
    named = header(OBSERVER="Testing PANOPTES Unit", INSTRUME="SC5348")
    assert header_id_mismatches(named, FRAME) == []
    assert header_id_mismatches(header(OBSERVER="PAN001"), FRAME) == ["OBSERVER='PAN001' but the path says 'PAN000'"]
