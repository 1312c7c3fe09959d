"""Raw object names, ids, and names derived from FITS headers."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from panoptes_network.core.errors import BadInput
from panoptes_network.core.names import FileKind, HeaderIds, NameHints, header_ids, parse_raw_name, raw_name_from_header


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


POCS_2020 = {
    "OBSERVER": "Testing PANOPTES Unit",
    "INSTRUME": "SC5348",
    "SEQID": "PAN000_SC5348_20200101T080115",
    "IMAGEID": "PAN000_SC5348_20200101T080134",
    "FILENAME": "20200101T080134.cr2",
    "DATE-OBS": "2020-01-01T08:01:34.000",
}


def test_name_from_a_2020_pocs_header_takes_the_ids_not_the_unit_name() -> None:
    name = raw_name_from_header(POCS_2020, "fits.fz")
    assert name.path == "PAN000/SC5348/20200101T080115/20200101T080134.fits.fz"
    assert name.sequence_id == POCS_2020["SEQID"] and name.image_id == POCS_2020["IMAGEID"]
    camera_elsewhere = {**POCS_2020, "INSTRUME": "Canon EOS 100D"}  # INSTRUME as a camera model
    assert raw_name_from_header(camera_elsewhere, "fits.fz").camera_id == "SC5348"
    only_imageid = {k: v for k, v in POCS_2020.items() if k != "SEQID"}
    with pytest.raises(BadInput, match=r"sequence time \(SEQID\)"):
        raw_name_from_header(only_imageid, "fits.fz")


def test_name_of_a_pointing_image_from_its_header() -> None:
    pointing = {**POCS_2020, "IMAGEID": "PAN000_SC5348_pointing01", "FILENAME": "pointing01.cr2"}
    name = raw_name_from_header(pointing, "fits")
    assert name.is_pointing and name.path == "PAN000/SC5348/20200101T080115/pointing01.fits"
    del pointing["IMAGEID"]
    assert raw_name_from_header(pointing, "fits").image_name == "pointing01"  # from FILENAME


def test_header_ids_of_the_real_files(test_data) -> None:
    from panoptes_network.drivers.ingest import read_fits_header

    for file, image_name in (("unsolved.fits", "20160909T081314"), ("solved.fits.fz", "20160909T081522")):
        ids = header_ids(read_fits_header(test_data / "panoptes" / file))
        assert ids == HeaderIds("PAN001", "XXXXXX", "20160909T081152", image_name)
    assert header_ids(read_fits_header(test_data / "panoptes" / "noheader.fits")) == HeaderIds(None, None, None, None)


def test_hints_fill_what_a_header_without_ids_lacks() -> None:
    bare = {"DATE-OBS": "2020-01-01T08:01:34"}
    with pytest.raises(BadInput, match="unit id.*camera id"):
        raw_name_from_header(bare, "fits")
    hinted = raw_name_from_header(bare, "fits", NameHints("PAN001", "14d3bd"))
    assert hinted.path == "PAN001/14d3bd/20200101T080134/20200101T080134.fits"  # its own sequence
    in_run = raw_name_from_header(bare, "fits", NameHints("PAN001", "14d3bd", "20200101T080000"))
    assert in_run.sequence_id == "PAN001_14d3bd_20200101T080000"
    # The header's own ids win over the hints.
    assert raw_name_from_header(POCS_2020, "fits", NameHints("PAN001", "14d3bd")).sequence_id == POCS_2020["SEQID"]
