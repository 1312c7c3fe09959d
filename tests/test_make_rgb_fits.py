"""make-rgb-fits science, without storage: pixel truth, Bayer layouts, EXIF mapping, bad input.

Full-size synthetic raws are DNGs from ``synthetic_raw`` (5208x3476 RGGB, Canon MakerNotes);
real files are ``kodak-dc50.kdc`` (GRBG) and ``canon-exif-only.cr2`` (EXIF only, no pixels).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import rawpy
from astropy.io import fits
from PIL import Image

from panoptes_network.core.errors import BadInput
from panoptes_network.core.names import parse_raw_name
from panoptes_network.science.bayer_interpolation import COLORS, Method, bilinear
from panoptes_network.science.exif_header import camera_cards
from panoptes_network.science.rgb_products import Products, RgbSettings, camera_fields, make_products
from panoptes_network.synthetic.camera_raw import dng_bytes, make_raw
from panoptes_network.synthetic.frames import FrameSpec

NAME = parse_raw_name("PAN001/14d3bd/20181011T134202/20181011T134333.cr2")
LAYOUTS = ("RGGB", "GRBG", "GBRG", "BGGR")
CHANNEL_VALUE = {"R": 1000, "G": 2000, "B": 3000}


@pytest.fixture(scope="module")
def full_raw() -> tuple[np.ndarray, bytes]:
    return make_raw()


@pytest.fixture(scope="module")
def full_products(full_raw) -> Products:
    return make_products(full_raw[1], NAME)


def fits_data(data: bytes) -> tuple[np.ndarray, fits.Header]:
    with fits.open(io.BytesIO(data)) as hdus:
        hdu = next(h for h in hdus if h.data is not None)
        return np.asarray(hdu.data), hdu.header.copy()


def test_the_raw_fits_is_the_dng_mosaic_bit_for_bit_with_the_pocs_header(full_raw, full_products: Products) -> None:
    mosaic, _ = full_raw
    data, header = fits_data(full_products.raw_fits)
    assert data.dtype.kind == "u" or header["BZERO"] == 32768
    assert data.shape == (3476, 5208)
    assert np.array_equal(data, mosaic)  # not flipped: FITS row 1 is LibRaw's row 0
    assert header["FILTER"] == "RGGB" and header["WHITELVL"] == 2048 + 11_500
    assert [header[f"BLACK{i}"] for i in range(1, 5)] == [2048] * 4
    expected = {
        "ISO": 100,
        "EXPTIME": 120.0,
        "DATE-OBS": "2026-11-24T08:02:03",
        "CAMTEMP": "12 C",
        "CIRCCONF": "0.019 mm",
        "COLORTMP": 5386,
        "MEASEV": -3.62,
        "MEASEV2": -3.625,
        "MEASRGGB": "471 1024 1024 733",
        "WHTLVLN": 11765,
        "WHTLVLS": 12277,
        "REDBAL": 2.015625,
        "BLUEBAL": 1.490234,
        "WBRGGB": "2064 1024 1024 1526",
        "FILENAME": "20181011T134333.cr2",
        "INTSN": "HA0028608",
        "CAMSN": "2070048413",
        "PANID": "PAN001",
        "INSTRUME": "14d3bd",
        "SEQID": "PAN001_14d3bd_20181011T134202",
        "IMAGEID": "PAN001_14d3bd_20181011T134333",
    }
    assert {key: header[key] for key in expected} == expected


def test_the_raw_fits_header_names_the_ids_that_header_naming_reads_back(full_products: Products) -> None:
    from panoptes_network.core.names import raw_name_from_header

    _, header = fits_data(full_products.raw_fits)
    assert raw_name_from_header(header, "fits.fz").base_path == NAME.base_path


def test_colour_planes_keep_the_mosaic_at_their_sites_and_say_how_they_were_made(full_raw, full_products) -> None:
    mosaic, _ = full_raw
    sites = {"R": [(0, 0)], "G": [(0, 1), (1, 0)], "B": [(1, 1)]}
    for color in COLORS:
        plane, header = fits_data(full_products.color_fits[color])
        assert plane.shape == mosaic.shape
        assert header["COLOR"] == color and header["INTERP"] == "bilinear"
        assert header["FILTER"] == "RGGB" and header["CAMTEMP"] == "12 C"  # the raw header, copied
        for dy, dx in sites[color]:
            assert np.array_equal(plane[dy::2, dx::2], mosaic[dy::2, dx::2])


def test_interpolated_values_lie_between_their_same_colour_neighbours() -> None:
    rng = np.random.default_rng(3)
    mosaic = rng.integers(0, 65535, (40, 60), dtype=np.uint16)
    padded = np.pad(mosaic, 1, mode="reflect").astype(np.int64)
    shifted = np.stack([padded[1 + dy : 41 + dy, 1 + dx : 61 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    for pattern in LAYOUTS:
        planes = bilinear(mosaic, pattern)
        colour_map = np.array(list(pattern)).reshape(2, 2)
        colour_of = np.tile(colour_map, (20, 30))
        colour_padded = np.pad(colour_of, 1, mode="reflect")
        around = np.stack([colour_padded[1 + dy : 41 + dy, 1 + dx : 61 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
        for color in COLORS:
            masked = np.where(around == color, shifted, np.nan)
            low, high = np.nanmin(masked, axis=0), np.nanmax(masked, axis=0)
            plane = planes[color].astype(np.int64)
            assert np.all((plane >= low) & (plane <= high)), (pattern, color)


@pytest.mark.parametrize("pattern", LAYOUTS)
def test_every_bayer_layout_puts_each_colour_in_its_own_plane(pattern: str) -> None:
    """A mosaic with known per-channel values, through DNG, LibRaw and the FITS writer."""
    colour_map = np.array([CHANNEL_VALUE[c] for c in pattern], np.uint16).reshape(2, 2)
    mosaic = np.tile(colour_map, (24, 32))
    products = make_products(dng_bytes(mosaic, FrameSpec(), pattern=pattern), NAME)
    _, header = fits_data(products.raw_fits)
    assert header["FILTER"] == pattern
    for color in COLORS:
        plane, _ = fits_data(products.color_fits[color])
        assert np.all(plane == CHANNEL_VALUE[color]), (pattern, color, np.unique(plane))


def test_half_size_is_one_pixel_per_bayer_cell() -> None:
    mosaic = np.tile(np.array([[100, 200], [202, 300]], np.uint16), (12, 16))  # LibRaw wants >= 22 px
    products = make_products(dng_bytes(mosaic, FrameSpec()), NAME, RgbSettings(Method.HALF_SIZE))
    planes = {color: fits_data(products.color_fits[color]) for color in COLORS}
    assert {c: (p.shape, int(p[0, 0])) for c, (p, _) in planes.items()} == {
        "R": ((12, 16), 100),
        "G": ((12, 16), 201),
        "B": ((12, 16), 300),
    }
    assert planes["R"][1]["INTERP"] == "half-size"


def test_the_preview_is_rendered_when_the_raw_has_none(full_products: Products) -> None:
    assert full_products.preview_source == "rendered"
    image = Image.open(io.BytesIO(full_products.jpeg))
    assert image.format == "JPEG" and image.size == (1302, 869)
    pixels = np.asarray(image)
    assert pixels.std() > 5  # a stretched sky, not a blank frame


def test_outputs_are_deterministic() -> None:
    mosaic, data = make_raw(FrameSpec(shape=(100, 150), stars=10))
    first, second = make_products(data, NAME), make_products(data, NAME)
    assert first.jpeg == second.jpeg
    assert np.array_equal(fits_data(first.raw_fits)[0], fits_data(second.raw_fits)[0])
    assert [fits_data(first.color_fits[c])[0].tobytes() for c in COLORS] == [
        fits_data(second.color_fits[c])[0].tobytes() for c in COLORS
    ]


def test_a_real_kodak_raw_with_a_grbg_layout(test_data: Path) -> None:
    path = test_data / "raw" / "kodak-dc50.kdc"
    data = path.read_bytes()
    products = make_products(data, parse_raw_name("PAN001/14d3bd/20181011T134202/20181011T134333.kdc"))
    with rawpy.imread(str(path)) as raw:
        visible = raw.raw_image_visible.copy()
    mosaic, header = fits_data(products.raw_fits)
    assert np.array_equal(mosaic, visible)
    assert header["FILTER"] == "GRBG" and header["FILENAME"] == "20181011T134333.kdc"
    assert "ISO" not in header and "CAMTEMP" not in header  # no EXIF: omitted, never invented
    red, _ = fits_data(products.color_fits["R"])
    blue, _ = fits_data(products.color_fits["B"])
    assert np.array_equal(red[0::2, 1::2], visible[0::2, 1::2])
    assert np.array_equal(blue[1::2, 0::2], visible[1::2, 0::2])
    assert products.preview_source == "embedded"  # the raw's own (bitmap) thumbnail, as JPEG
    assert Image.open(io.BytesIO(products.jpeg)).format == "JPEG"


def test_canon_makernotes_map_to_the_pocs_keywords_as_exiftool_reads_them(test_data: Path) -> None:
    """Values checked against ``exiftool -j`` on the same file; what it lacks is omitted."""
    cards = camera_cards((test_data / "raw" / "canon-exif-only.cr2").read_bytes(), "x.cr2")
    assert {key: value for key, (value, _) in cards.items()} == {
        "ISO": 400,
        "EXPTIME": pytest.approx(1 / 15),
        "DATE-OBS": "2005-08-03T18:59:18",
        "CIRCCONF": "0.019 mm",
        "MEASEV": 8.0,
        "MEASEV2": 8.125,
        "MEASRGGB": "580 1024 1024 500",
        "REDBAL": 1.688027,
        "BLUEBAL": 1.993255,
        "WBRGGB": "2002 1185 1187 2364",
        "CAMSN": "0123456789",
        "FILENAME": "x.cr2",
    }  # no CAMTEMP (the 350D stored "not available"), COLORTMP, WHTLVLN/S or INTSN in this file


def test_a_raw_libraw_refuses_is_bad_input_that_still_reports_its_exif(test_data: Path) -> None:
    data = (test_data / "raw" / "canon-exif-only.cr2").read_bytes()
    with pytest.raises(BadInput) as caught:
        make_products(data, NAME)
    message = caught.value.message
    assert "LibRaw" in message and "ISO=400" in message and "MEASRGGB='580 1024 1024 500'" in message
    assert "0123456789" not in message  # serial numbers stay out of records


@pytest.mark.parametrize(
    ("data", "why"),
    [(b"", "empty"), (b"just some notes, not a raw\n" * 10, "LibRaw"), ("truncated", "LibRaw")],
)
def test_bad_raws_are_bad_input(full_raw, data, why: str) -> None:
    if data == "truncated":
        data = full_raw[1][: len(full_raw[1]) // 2]
    with pytest.raises(BadInput, match=why):
        make_products(data, NAME)


def test_camera_fields_for_the_image_record_leave_out_serial_numbers(full_products: Products) -> None:
    fields = camera_fields(full_products.header)
    assert fields["bayer_pattern"] == "RGGB" and fields["temperature"] == 12.0
    assert fields["measured_rggb"] == {"r": 471.0, "g1": 1024.0, "g2": 1024.0, "b": 733.0}
    assert "2070048413" not in repr(fields) and "HA0028608" not in repr(fields)
