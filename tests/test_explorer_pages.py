"""The explorer's HTML pages on a processed synthetic night (embedded store, Flask's test client):
each page shows what the records and buckets hold, a bad search is the form again with why, a
missing record is the 404 page, and the URL lists name files that are there."""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures_explorer import ProcessedNight
from panoptes_network.core import records
from panoptes_network.explorer.app import create_explorer
from panoptes_network.explorer.search_filters import PARAMETERS


@pytest.fixture(scope="module")
def client(processed_night: ProcessedNight) -> Iterator[Any]:
    with create_explorer(processed_night.context()).test_client() as client:
        yield client


def page(client: Any, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    assert "Content-Security-Policy" in response.headers
    text: str = response.get_data(as_text=True)
    assert "<script" not in text, "the pages need no JavaScript"
    return text


def test_home_shows_the_totals_and_the_night_with_its_thumbnail(client: Any, night: ProcessedNight) -> None:
    html = page(client, "/")
    frames = int(re.search(r"<dt>Frames</dt><dd>(\d+)</dd>", html).group(1))  # type: ignore[union-attr]
    assert frames == night.frame_count, "science frames, the pointing image and the dark"
    assert f'href="/observations/{night.sequence_id}"' in html
    thumbnail = re.search(r'<img src="(/files/processed/[^"]+/stack\.png)"', html)
    assert thumbnail and client.get(thumbnail.group(1)).status_code == 200


def test_search_by_name_and_by_cone_finds_the_night_and_misses_elsewhere(client: Any, night: ProcessedNight) -> None:
    link = f'href="/observations/{night.sequence_id}"'
    assert link in page(client, f"/search?target={night.field_name.split()[-1].lower()}")
    assert link in page(client, f"/search?ra={night.field_ra + 0.5}&dec={night.field_dec}&radius=1")
    assert link not in page(client, f"/search?ra={(night.field_ra + 90) % 360}&dec={night.field_dec}&radius=1")
    assert link not in page(client, "/search?target=no-such-field")


def test_a_bad_search_shows_the_form_again_with_why(client: Any) -> None:
    html = page(client, "/search?dec=91&ra=10", status=400)
    assert 'id="search"' in html and "dec 91 is outside -90 to 90 degrees" in html
    assert 'value="91"' in html, "what the user typed is kept"
    forged = page(client, "/search?cursor=0", status=400)  # well formed, but not one it gave out
    assert 'id="search"' in forged and "cursor is not one this service gave out" in forged


def test_the_observation_page_shows_products_frames_and_downloads(client: Any, night: ProcessedNight) -> None:
    html = page(client, f"/observations/{night.sequence_id}")
    assert night.field_name in html and 'class="status status-processed"' in html
    for product in ("timelapse.mp4", "stack.png", "difference.png", "quality.png", "stamps.fits", "stack.fits.fz"):
        assert re.search(rf'"/files/processed/[^"]+/{re.escape(product)}"', html), product
    assert html.count('href="/images/') == night.frame_count
    listed = page(client, f"/observations/{night.sequence_id}/urls/fits.txt").splitlines()
    folder = night.processed_file(night.sequence_id.replace("_", "/"))
    frames = {p.name for p in folder.glob("*.fits.fz")} - {"stack.fits.fz", "difference.fits.fz"}
    assert frames, "each solved frame's processed FITS"
    assert {url.rsplit("/", 1)[1] for url in listed} == frames and len(listed) == len(frames)
    assert all(url.startswith("http://localhost/files/processed/") for url in listed)
    sources = page(client, f"/observations/{night.sequence_id}/urls/sources.txt").splitlines()
    assert sources and all(url.endswith("-sources.parquet") for url in sources)


def test_the_image_page_shows_wcs_header_and_steps(client: Any, night: ProcessedNight) -> None:
    html = page(client, f"/observations/{night.sequence_id}")
    image_id = re.findall(r'href="/images/([^"]+)"', html)[1]
    image = page(client, f"/images/{image_id}")
    assert 'id="quick_look"' in image and "plate-solver" in image and "<th>SEQID</th>" in image
    assert re.search(r"<th>ra</th><td>30[0-9.]+</td>", image), "the solved centre"


def test_the_unit_page_lists_its_observation(client: Any, night: ProcessedNight) -> None:
    unit = night.sequence_id.split("_")[0]
    html = page(client, f"/units/{unit}")
    assert f'href="/observations/{night.sequence_id}"' in html and "<dt>Observations</dt><dd>1</dd>" in html


def test_missing_records_are_the_404_page(client: Any, night: ProcessedNight) -> None:
    assert "no observation PAN999_abc123_20200101T000000" in page(
        client, "/observations/PAN999_abc123_20200101T000000", status=404
    )
    assert "no unit PAN999" in page(client, "/units/PAN999", status=404)
    assert "no list" in page(client, f"/observations/{night.sequence_id}/urls/secrets.txt", status=404)


@pytest.fixture
def night(processed_night: ProcessedNight) -> ProcessedNight:
    return processed_night


# Each search parameter (and an unknown one) with text of any kind, numbers and dates included.
PARAMETER_VALUES = st.dictionaries(
    st.sampled_from([*PARAMETERS, "bogus"]),
    st.one_of(
        st.text(max_size=40),
        st.floats(allow_nan=True, allow_infinity=True).map(str),
        st.dates().map(str),
        st.integers().map(str),
    ),
    max_size=5,
)


@settings(max_examples=150, deadline=None)
@given(params=PARAMETER_VALUES)
def test_the_search_page_never_fails_whatever_the_parameters(client: Any, params: dict[str, str]) -> None:
    response = client.get("/search", query_string=params)
    assert response.status_code in (200, 400), response.get_data(as_text=True)[:2000]
    if response.status_code == 400:
        assert 'class="error message"' in response.get_data(as_text=True), "a 400 says why"


def test_the_lightcurve_and_candidates_show_when_make_lightcurves_recorded_them(
    processed_night: ProcessedNight, tmp_path: Path
) -> None:
    """On a copy of the night whose record holds make-lightcurves' field, as that step writes it."""
    data_dir = tmp_path / "data"
    shutil.copytree(processed_night.data_dir, data_dir)
    context = ProcessedNight(**{**dataclasses.asdict(processed_night), "data_dir": data_dir}).context()
    folder = f"{context.settings.bucket('processed')}/{processed_night.sequence_id.replace('_', '/')}"
    lightcurves = {
        "target": "KIC 8462852",
        "precision_ppm": 812.5,
        "products": {"lightcurve_plot": f"{folder}/lightcurve.png", "lightcurves": f"{folder}/lightcurves.parquet"},
        "candidates": [{"star": "TYC 3162-665-1", "depth": 0.012, "duration_hours": 1.5}, {"star": "S2", "snr": 7.1}],
    }
    records.merge_observation(context.metadata, processed_night.sequence_id, {"lightcurves": lightcurves})
    with create_explorer(context).test_client() as client:
        html = page(client, f"/observations/{processed_night.sequence_id}")
    assert f'id="lightcurve_plot" class="plot" src="/files/processed/{folder.split("/", 1)[1]}/lightcurve.png"' in html
    assert "<dt>precision ppm</dt><dd>812.5</dd>" in html and "lightcurves.parquet" in html
    assert "<th>star</th><th>depth</th><th>duration hours</th><th>snr</th>" in html
    assert "<td>TYC 3162-665-1</td><td>0.012</td><td>1.5</td><td></td>" in html
    assert "<td>S2</td><td></td><td></td><td>7.1</td>" in html
