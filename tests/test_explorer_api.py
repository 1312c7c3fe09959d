"""The explorer's JSON API and files on a processed synthetic observation, on both backends
(the embedded store and folders; Firestore's emulator and fake-gcs-server holding a copy):
totals against the frame files' headers, search by name, coordinates and every other filter,
the observation with every product fetched back byte for byte, an image with its header, and
the same JSON from both backends."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits
from flask.testing import FlaskClient

from fixtures_explorer import SCIENCE_FRAMES, CloudArchive, ProcessedNight
from panoptes_network.adapters.backends import local_context
from panoptes_network.core import records
from panoptes_network.core.context import Context
from panoptes_network.core.settings import Settings
from panoptes_network.explorer.app import create_explorer

PRODUCT_KEYS = {
    "quality_table",
    "quality_plot",
    "timelapse",
    "stack",
    "stack_png",
    "difference",
    "difference_png",
    "stamp_cube",
    "lightcurves",  # make-lightcurves, which follows process-observation
    "comparisons",
    "lightcurve_plot",
}


@pytest.fixture(params=["embedded", pytest.param("cloud", marks=pytest.mark.stack)])
def backend(request: pytest.FixtureRequest, processed_night: ProcessedNight) -> Context:
    if request.param == "embedded":
        return processed_night.context()
    cloud: CloudArchive = request.getfixturevalue("cloud_archive")
    return cloud.context


@pytest.fixture
def client(backend: Context) -> FlaskClient:
    return create_explorer(backend).test_client()


def get_json(client: FlaskClient, url: str, status: int = 200) -> Any:
    response = client.get(url)
    assert response.status_code == status, (url, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    return response.get_json()


def found_ids(client: FlaskClient, query: str) -> list[str]:
    return [item["sequence_id"] for item in get_json(client, f"/api/observations?{query}")["items"]]


def test_stats_are_the_frames_the_unit_uploaded(client: FlaskClient, processed_night: ProcessedNight) -> None:
    stats = get_json(client, "/api/stats")
    assert stats["units"] == 1 and stats["observations"] == 1
    assert stats["frames"] == processed_night.frame_count == SCIENCE_FRAMES + 2  # a pointing image and a dark
    assert stats["exposure_hours"] == pytest.approx(processed_night.exposure_seconds / 3600, abs=0.001)


def test_search_finds_the_observation_by_name_and_by_coordinates(
    client: FlaskClient, processed_night: ProcessedNight
) -> None:
    night, seq = processed_night, processed_night.sequence_id
    assert found_ids(client, "") == [seq]
    assert found_ids(client, f"target={night.field_name[:6].lower()}") == [seq]
    assert found_ids(client, "target=no such star") == []
    # the cone: the field's centre is inside 0.1 deg; 1 deg east at this declination is 0.67 deg away
    assert found_ids(client, f"ra={night.field_ra + 0.05}&dec={night.field_dec}&radius=0.1") == [seq]
    east = night.field_ra + 1.0
    away = math.degrees(
        math.acos(
            math.sin(math.radians(night.field_dec)) ** 2
            + math.cos(math.radians(night.field_dec)) ** 2 * math.cos(math.radians(1.0))
        )
    )
    assert found_ids(client, f"ra={east}&dec={night.field_dec}&radius={away + 0.01}") == [seq]
    assert found_ids(client, f"ra={east}&dec={night.field_dec}&radius={away - 0.01}") == []


def test_every_other_filter_keeps_or_drops_it(client: FlaskClient, processed_night: ProcessedNight) -> None:
    night, seq = processed_night, processed_night.sequence_id
    day = night.start.date()
    keeps = [
        f"unit={night.unit_id}",
        f"since={day.isoformat()}",
        f"until={day.isoformat()}",
        "status=processed",
        f"min_frames={SCIENCE_FRAMES}",
    ]
    next_day = day + dt.timedelta(days=1)
    drops = ["unit=PAN999", f"since={next_day}", f"until={day - dt.timedelta(days=1)}", "status=error"]
    drops.append(f"min_frames={SCIENCE_FRAMES + 1}")
    assert {query: found_ids(client, query) for query in keeps} == {query: [seq] for query in keeps}
    assert {query: found_ids(client, query) for query in drops} == {query: [] for query in drops}


def test_a_summary_says_what_the_observation_is(client: FlaskClient, processed_night: ProcessedNight) -> None:
    [item] = get_json(client, "/api/observations")["items"]
    assert item["unit_id"] == processed_night.unit_id and item["status"] == "processed"
    assert item["science_frames"] == item["usable_frames"] == SCIENCE_FRAMES
    assert sum(item["frames"].values()) == item["frame_count"] == processed_night.frame_count
    assert item["field"]["name"] == processed_night.field_name
    assert item["field"]["ra"] == pytest.approx(processed_night.field_ra, abs=1e-5)
    assert item["start_time"] == processed_night.start.isoformat()
    png = client.get(item["thumbnail"])
    assert png.status_code == 200 and png.data.startswith(b"\x89PNG") and png.mimetype == "image/png"


def test_the_observation_lists_every_product_and_frame(
    client: FlaskClient, backend: Context, processed_night: ProcessedNight
) -> None:
    view = get_json(client, f"/api/observations/{processed_night.sequence_id}")
    products = {product["key"]: product for product in view["products"]}
    assert set(products) == PRODUCT_KEYS
    for product in products.values():
        served = client.get(product["url"])
        assert served.status_code == 200 and len(served.data) == product["size"] > 0, product
        assert served.mimetype == product["content_type"]
    assert products["timelapse"]["content_type"] == "video/mp4"
    video = client.get(products["timelapse"]["url"]).data
    part = client.get(products["timelapse"]["url"], headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.data == video[100:1100], "a video plays from any position"
    frames = view["frames"]
    assert len(frames) == processed_night.frame_count
    assert [f["time"] for f in frames] == sorted(f["time"] for f in frames)
    assert sum(f["frame_type"] == "science" for f in frames) == SCIENCE_FRAMES
    solved = [f for f in frames if f["status"] == "solved"]
    assert all(client.get(f["quick_look_url"]).status_code == 200 for f in solved)
    assert view["record"]["sequence_id"] == processed_night.sequence_id


def test_an_image_with_its_header_read_by_ranges(client: FlaskClient, processed_night: ProcessedNight) -> None:
    view = get_json(client, f"/api/observations/{processed_night.sequence_id}")
    frame = next(f for f in view["frames"] if f["frame_type"] == "science" and f["status"] == "solved")
    image = get_json(client, f"/api/images/{frame['image_id']}")
    assert image["status"] == "solved" and set(image["steps"]) >= {"record-image", "plate-solver"}
    assert image["wcs"]["scale_arcsec"] > 0 and -90 <= image["wcs"]["dec"] <= 90
    sources = client.get(image["sources_url"])
    assert sources.status_code == 200 and sources.data.startswith(b"PAR1")
    header = get_json(client, f"/api/header?path={image['header_path']}")
    time = frame["image_id"].rsplit("_", 1)[1]
    [truth_path] = processed_night.frames_dir.rglob(f"{time}.fits.fz")
    truth = fits.getheader(truth_path, 1)
    assert header["IMAGEID"] == truth["IMAGEID"] == frame["image_id"]
    assert header["EXPTIME"] == truth["EXPTIME"] and header["DATE-OBS"] == truth["DATE-OBS"]


def test_the_unit_has_its_totals_and_observations(client: FlaskClient, processed_night: ProcessedNight) -> None:
    unit = get_json(client, f"/api/units/{processed_night.unit_id}")
    assert unit["totals"]["frames"] == processed_night.frame_count and unit["totals"]["observations"] == 1
    assert [o["sequence_id"] for o in unit["observations"]["items"]] == [processed_night.sequence_id]


def test_files_of_an_observation_by_set(client: FlaskClient, processed_night: ProcessedNight) -> None:
    base = f"/api/observations/{processed_night.sequence_id}/files"
    raw = get_json(client, f"{base}?what=raw")["files"]
    assert len(raw) == processed_night.frame_count and all(f["bucket"] == "raw" for f in raw)
    products = get_json(client, base)["files"]
    processed = get_json(client, f"{base}?what=processed")["files"]
    assert len(products) == len(PRODUCT_KEYS)
    assert not {f["name"] for f in products} & {f["name"] for f in processed}
    first = raw[0]
    assert len(client.get(first["url"]).data) == first["size"]


def test_missing_things_are_404_and_malformed_ones_400(
    client: FlaskClient, backend: Context, processed_night: ProcessedNight
) -> None:
    assert "no observation" in get_json(client, "/api/observations/PAN001_abcdef_20200101T000000", 404)["error"]
    assert "{unit}_{camera}" in get_json(client, "/api/observations/nonsense", 400)["error"]
    assert get_json(client, "/api/images/PAN001_abcdef_20200101T000000", 404)["status"] == 404
    assert get_json(client, "/api/units/PAN999", 404)["status"] == 404
    assert "one of" in get_json(client, "/api/header?path=gs://someone-elses/x.fits", 400)["error"]
    raw = backend.settings.bucket("raw")
    assert "no object" in get_json(client, f"/api/header?path=gs://{raw}/none.fits", 404)["error"]
    png = f"gs://{backend.settings.bucket('processed')}/{processed_night.sequence_id.replace('_', '/')}/stack.png"
    assert "is not a FITS file" in get_json(client, f"/api/header?path={png}", 400)["error"]


@pytest.mark.stack
def test_both_backends_answer_the_same(processed_night: ProcessedNight, cloud_archive: CloudArchive) -> None:
    """Every view, on the embedded store and on the cloud copy: the same JSON once the copy's
    bucket names are read as the originals' (and object versions, each backend's, left out)."""
    embedded = create_explorer(processed_night.context()).test_client()
    cloud = create_explorer(cloud_archive.context).test_client()
    seq = processed_night.sequence_id
    image_id = get_json(embedded, f"/api/observations/{seq}")["frames"][3]["image_id"]
    urls = [
        "/api/stats",
        "/api/observations",
        f"/api/observations/{seq}",
        f"/api/images/{image_id}",
        f"/api/units/{processed_night.unit_id}",
        f"/api/observations/{seq}/files?what=raw",
    ]
    for url in urls:
        text = json.dumps(get_json(cloud, url), sort_keys=True)
        for original, copy in cloud_archive.bucket_names.items():
            text = text.replace(f"{copy}/", f"{original}/")
        assert without_versions(json.loads(text)) == without_versions(get_json(embedded, url)), url


def without_versions(value: Any) -> Any:
    """A view without the objects' versions: generations are each backend's own."""
    if isinstance(value, dict):
        return {key: without_versions(item) for key, item in value.items() if key != "version"}
    if isinstance(value, list):
        return [without_versions(item) for item in value]
    return value


def test_the_lightcurves_and_candidates_show_once_make_lightcurves_recorded_them(tmp_path: Path) -> None:
    """The record make-lightcurves writes (resources/status.md ``lightcurves``): its summary and
    candidates in the view, its files among the products and their downloads."""
    context = local_context(Settings(data_dir=tmp_path), tmp_path)[0]
    seq, folder, bucket = "PAN001_abcdef_20240101T000000", "PAN001/abcdef/20240101T000000", "panoptes-processed-images"
    context.storage.write_new(bucket, f"{folder}/stack.png", b"png")
    context.storage.write_new(bucket, f"{folder}/lightcurve.png", b"plot")
    context.storage.write_new(bucket, f"{folder}/lightcurves.parquet", b"table!")
    candidate = {"star_id": 7, "depth": 0.02, "snr": 12.5, "mid_time_bjd_tdb": 2460310.61}
    records.merge_observation(
        context.metadata,
        seq,
        {
            "unit_id": "PAN001",
            "status": "processed",
            "products": {"stack_png": f"{bucket}/{folder}/stack.png"},
            "lightcurves": {
                "stars": 120,
                "target": {"star_id": 3, "ppm_hour": 850.0},
                "candidates": [candidate],
                "products": {
                    "lightcurve_plot": f"{bucket}/{folder}/lightcurve.png",
                    "lightcurves": f"{bucket}/{folder}/lightcurves.parquet",
                },
                "rerun": None,
            },
        },
    )
    client = create_explorer(context).test_client()
    view = get_json(client, f"/api/observations/{seq}")
    assert view["candidates"] == [candidate]
    assert view["lightcurve"]["target"] == {"star_id": 3, "ppm_hour": 850.0} and view["lightcurve"]["stars"] == 120
    assert client.get(view["lightcurve"]["plot_url"]).data == b"plot"
    assert "candidates" not in view["lightcurve"] and "rerun" not in view["lightcurve"]
    assert {p["key"]: p["size"] for p in view["products"]} == {"stack_png": 3, "lightcurve_plot": 4, "lightcurves": 6}
    names = [f["name"] for f in get_json(client, f"/api/observations/{seq}/files")["files"]]
    assert names == [f"{folder}/lightcurve.png", f"{folder}/lightcurves.parquet", f"{folder}/stack.png"]


def test_a_failed_observation_says_which_step_failed_and_why(tmp_path: Path) -> None:
    context = local_context(Settings(data_dir=tmp_path), tmp_path)[0]
    failure = {"step": "process-observation", "state": "error", "error_class": "MemoryError", "message_id": "m-1"}
    records.merge_observation(
        context.metadata,
        "PAN001_abcdef_20240101T000000",
        {"unit_id": "PAN001", "status": "error", "reason": "out of memory on frame 41", "error": failure},
    )
    [item] = get_json(create_explorer(context).test_client(), "/api/observations?status=error")["items"]
    assert item["reasons"] == ["out of memory on frame 41", "process-observation failed (MemoryError)"]
