"""Raw object names, ids, and names derived from FITS headers."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from panoptes_network.core.errors import BadInput
from panoptes_network.core.names import FileKind, parse_raw_name, raw_name_from_header


def test_canonical_name_gives_ids_and_kind() -> None:
    name = parse_raw_name("PAN001/14d3bd/20181011T134202/20181011T134333.fits.fz")
    assert name.unit_id == "PAN001"
    assert name.camera_id == "14d3bd"
    assert name.sequence_id == "PAN001_14d3bd_20181011T134202"
    assert name.image_id == "PAN001_14d3bd_20181011T134333"
    assert name.kind is FileKind.FITS_FZ
    assert name.image_time == dt.datetime(2018, 10, 11, 13, 43, 33, tzinfo=dt.UTC)
    assert name.path == "PAN001/14d3bd/20181011T134202/20181011T134333.fits.fz"
    assert name.field_name is None


def test_legacy_field_folder_is_accepted_and_dropped_from_the_canonical_path() -> None:
    name = parse_raw_name("PAN001/Tess_Sec21_Cam02/14d3bd/20200319T111240/20200319T112708.fits.fz")
    assert name.field_name == "Tess_Sec21_Cam02"
    assert name.image_id == "PAN001_14d3bd_20200319T112708"
    assert name.path == "PAN001/14d3bd/20200319T111240/20200319T112708.fits.fz"


@pytest.mark.parametrize(
    ("filename", "kind"),
    [
        ("x.fits", FileKind.FITS),
        ("x.FITS", FileKind.FITS),
        ("x.fits.fz", FileKind.FITS_FZ),
        ("x.CR2", FileKind.RAW),
        ("x.cr2", FileKind.RAW),
        ("x.dng", FileKind.RAW),
        ("x.jpg", FileKind.OTHER),
        ("x", FileKind.OTHER),
    ],
)
def test_extensions_are_matched_case_insensitively(filename: str, kind: FileKind) -> None:
    stem = "20181011T134333"
    name = parse_raw_name(f"PAN001/14d3bd/20181011T134202/{filename.replace('x', stem, 1)}")
    assert name.kind is kind


def test_pointing_images_are_recognised() -> None:
    name = parse_raw_name("PAN001/14d3bd/20181011T134202/pointing00.cr2")
    assert name.is_pointing
    assert name.image_time is None
    assert not parse_raw_name("PAN001/14d3bd/20181011T134202/20181011T134333.cr2").is_pointing


@pytest.mark.parametrize(
    "bad",
    [
        "PAN001/bad",
        "../../etc/passwd",
        "/PAN001/14d3bd/20181011T134202/20181011T134333.fits",
        "PAN001/14d3bd/../20181011T134333.fits",
        "PAN1/14d3bd/20181011T134202/20181011T134333.fits",
        "PAN001/14d3b/20181011T134202/20181011T134333.fits",
        "PAN001/14d3bd/20181311T134202/20181011T134333.fits",
        "PAN001/14d3bd/20181011T134202/notatime.fits",
        "PAN001/14d3bd/20181011T134202/2018 1011T134333.fits",
        "PAN001//14d3bd/20181011T134202/20181011T134333.fits",
        "",
    ],
)
def test_unparseable_names_are_rejected_with_the_expected_form(bad: str) -> None:
    with pytest.raises(BadInput) as raised:
        parse_raw_name(bad)
    assert "expected" in raised.value.message or "valid date" in raised.value.message


@given(st.text(max_size=80))
def test_the_parser_accepts_or_rejects_but_never_crashes(text: str) -> None:
    try:
        name = parse_raw_name(text)
    except BadInput as exc:
        assert exc.message
    else:
        reparsed = parse_raw_name(name.path)
        assert (reparsed.image_id, reparsed.sequence_id) == (name.image_id, name.sequence_id)


@given(
    unit=st.from_regex(r"PAN\d{3}", fullmatch=True),
    camera=st.from_regex(r"[0-9A-Za-z]{6}", fullmatch=True),
    seq=st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31)),
    ext=st.sampled_from(["fits", "fits.fz", "cr2", "CR2"]),
)
def test_built_names_round_trip(unit: str, camera: str, seq: dt.datetime, ext: str) -> None:
    seq_time = seq.strftime("%Y%m%dT%H%M%S")
    name = parse_raw_name(f"{unit}/{camera}/{seq_time}/{seq_time}.{ext}")
    assert name.sequence_id == f"{unit}_{camera}_{seq_time}"
    assert parse_raw_name(name.path) == name.with_extension(ext.lower())


def test_name_from_a_pocs_header_uses_filename_when_imageid_repeats_seqid() -> None:
    header = {
        "OBSERVER": "PAN001",
        "INSTRUME": "XXXXXX",
        "SEQID": "PAN001_XXXXXX_20160909T081152",
        "IMAGEID": "PAN001_XXXXXX_20160909T081152",
        "FILENAME": "20160909T081314.cr2",
        "DATE-OBS": "2016-09-09T08:12:26",
    }
    assert raw_name_from_header(header, "fits").path == "PAN001/XXXXXX/20160909T081152/20160909T081314.fits"
    header["IMAGEID"] = "PAN001_XXXXXX_20160909T081400"
    assert raw_name_from_header(header, "fits").image_name == "20160909T081400"
    del header["IMAGEID"], header["FILENAME"]
    assert raw_name_from_header(header, "fits").image_name == "20160909T081226"


def test_name_from_a_header_without_ids_names_what_is_missing() -> None:
    with pytest.raises(BadInput, match="INSTRUME.*SEQID"):
        raw_name_from_header({"OBSERVER": "PAN001"}, "fits")


def test_name_from_the_real_unsolved_header(test_data) -> None:
    from panoptes_network.drivers.ingest import read_fits_header

    header = read_fits_header(test_data / "panoptes" / "unsolved.fits")
    name = raw_name_from_header(header, "fits")
    assert name.sequence_id == "PAN001_XXXXXX_20160909T081152"
    assert name.path.startswith("PAN001/XXXXXX/20160909T081152/")
    compressed = read_fits_header(test_data / "panoptes" / "solved.fits.fz")
    assert raw_name_from_header(compressed, "fits.fz").image_id == "PAN001_XXXXXX_20160909T081522"
