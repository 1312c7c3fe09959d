"""The explorer is safe by construction: cursors page through everything exactly once, page
sizes are capped, files are served with ranges and ETags and never from outside their bucket,
as their suffix's type; every response carries the CSP; no traceback reaches a user; one JSON
log line per request; and no query parameter or path (hypothesis) gives a 500."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panoptes_network.adapters.backends import local_context
from panoptes_network.core import records
from panoptes_network.core.context import Context
from panoptes_network.core.errors import TransientError
from panoptes_network.core.logs import configure_logging
from panoptes_network.core.settings import Settings
from panoptes_network.core.status import ObservationStatus
from panoptes_network.explorer.app import CONTENT_SECURITY_POLICY, create_explorer
from panoptes_network.explorer.search_filters import MAX_LIMIT, PARAMETERS, SearchFilters

OBSERVATIONS = 130
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
PAYLOAD = bytes(range(256)) * 40  # 10240 bytes, every byte value
RAW = "panoptes-raw-images"
PROCESSED = "panoptes-processed-images"
PRODUCT = "PAN001/abcdef/20240101T000000/stack.png"
SECRET = b"never served"


def sequence(i: int) -> str:
    return f"PAN00{i % 3 + 1}_abcdef_{START + dt.timedelta(hours=i):%Y%m%dT%H%M%S}"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Context:
    """130 observations of three units (two at the same time, to order by id), one product,
    an uploader's HTML file, and secrets beside and above the buckets."""
    data_dir = tmp_path_factory.mktemp("explorer-safety")
    context = local_context(Settings(data_dir=data_dir), data_dir)[0]
    for i in range(OBSERVATIONS):
        when = START + dt.timedelta(hours=min(i, OBSERVATIONS - 2))
        records.merge_observation(
            context.metadata,
            sequence(i),
            {
                "unit_id": f"PAN00{i % 3 + 1}",
                "status": ObservationStatus.PROCESSED.value if i % 2 else ObservationStatus.RECEIVING.value,
                "first_frame_time": when,
                "num_science_images": i,
                "field": {"name": f"Field {i}", "ra": (i * 2.7) % 360, "dec": (i % 170) - 85},
                "products": {"stack_png": f"{PROCESSED}/{PRODUCT}"},
            },
        )
    context.storage.write_new(PROCESSED, PRODUCT, PAYLOAD)
    context.storage.write_new(RAW, "PAN001/abcdef/20240101T000000/evil.html", b"<script>alert(1)</script>")
    (data_dir / "secret.txt").write_bytes(SECRET)
    (data_dir / "buckets" / "secret.txt").write_bytes(SECRET)
    return context


@pytest.fixture
def client(archive: Context) -> FlaskClient:
    return create_explorer(archive).test_client()


def test_cursors_page_through_every_observation_once_newest_first(client: FlaskClient) -> None:
    seen: list[dict[str, Any]] = []
    cursor, pages = "", 0
    while True:
        page = client.get(f"/api/observations?limit=40&cursor={cursor}").get_json()
        seen += page["items"]
        pages += 1
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert pages == 4 and [len(seen)] == [OBSERVATIONS]
    ids = [item["sequence_id"] for item in seen]
    assert sorted(ids) == sorted(sequence(i) for i in range(OBSERVATIONS))
    keys = [(item["start_time"], item["sequence_id"]) for item in seen]
    newest_first = sorted(keys, key=lambda key: (-dt.datetime.fromisoformat(key[0]).timestamp(), key[1]))
    assert keys == newest_first
    assert keys[0][0] == keys[1][0], "two observations at the same time, ordered by id"


def test_a_page_is_capped_and_filters_page_too(client: FlaskClient) -> None:
    assert len(client.get("/api/observations?limit=100000").get_json()["items"]) == MAX_LIMIT
    page = client.get("/api/observations?unit=PAN002&status=processed&limit=5").get_json()
    assert len(page["items"]) == 5 and all(i["unit_id"] == "PAN002" for i in page["items"])
    rest = client.get(f"/api/observations?unit=PAN002&status=processed&limit=100&cursor={page['next_cursor']}")
    expected = sum(1 for i in range(OBSERVATIONS) if i % 3 == 1 and i % 2)
    assert len(rest.get_json()["items"]) == expected - 5


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("since=2024-13-01", "since '2024-13-01' is not an ISO date"),
        ("until=9999-12-31&since=2024-01-01", None),
        ("ra=400&dec=0", "ra 400 is outside 0 to 360"),
        ("ra=10", "ra and dec go together"),
        ("ra=10&dec=95", "dec 95 is outside"),
        ("ra=nan&dec=0", "ra nan is outside"),
        ("radius=2", "radius needs ra and dec"),
        ("ra=1&dec=1&radius=0", "greater than 0"),
        ("status=done", "status 'done' is not one of"),
        ("min_frames=-1", "min_frames '-1' is not a whole number"),
        ("limit=0", "limit 0 is outside"),
        ("unit=PAN1", "not a unit id"),
        ("colour=red", "unknown parameter colour"),
        ("cursor=bm90IGEgY3Vyc29y", "cursor is not one this service gave out"),
        ("since=2024-02-01&until=2024-01-01", "is not before until"),
    ],
)
def test_a_bad_parameter_is_a_400_that_says_why(client: FlaskClient, query: str, says: str | None) -> None:
    response = client.get(f"/api/observations?{query}")
    if says is None:
        assert response.status_code == 200
        return
    assert response.status_code == 400 and says in response.get_json()["error"], response.get_json()


def test_ranges_etags_and_cache_headers(client: FlaskClient) -> None:
    url = f"/files/processed/{PRODUCT}"
    whole = client.get(url)
    assert whole.status_code == 200 and whole.data == PAYLOAD and whole.mimetype == "image/png"
    etag = whole.headers["ETag"]
    assert "max-age" in whole.headers["Cache-Control"] and whole.headers["Accept-Ranges"] == "bytes"
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == PAYLOAD[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(PAYLOAD)}"
    assert client.get(url, headers={"Range": "bytes=-16"}).data == PAYLOAD[-16:]
    beyond = client.get(url, headers={"Range": f"bytes={len(PAYLOAD)}-"})
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{len(PAYLOAD)}"
    assert client.get(url, headers={"Range": "bytes=0-1,5-6"}).data == PAYLOAD  # several ranges: the whole
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    stale = client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.data == PAYLOAD


def test_a_replaced_product_has_a_new_etag(tmp_path: Path) -> None:
    context = local_context(Settings(data_dir=tmp_path), tmp_path)[0]
    ref = context.storage.write_new(PROCESSED, PRODUCT, b"first")
    client = create_explorer(context).test_client()
    before = client.get(f"/files/processed/{PRODUCT}").headers["ETag"]
    context.storage.replace(ref, b"second, longer")
    after = client.get(f"/files/processed/{PRODUCT}", headers={"If-None-Match": before})
    assert after.status_code == 200 and after.data == b"second, longer" and after.headers["ETag"] != before


@pytest.mark.parametrize(
    "path",
    [
        "/files/raw/../secret.txt",
        "/files/raw/%2e%2e/secret.txt",
        "/files/raw/PAN001/..%2f..%2fsecret.txt",
        "/files/raw/.%2e/.%2e/secret.txt",
        "/files/raw//secret.txt",
        "/files/raw/%2fsecret.txt",
        "/files/raw/..%5c..%5csecret.txt",
        "/files/raw/PAN001%00/x",
        "/files/buckets/secret.txt",
        "/files/../secret.txt",
        "/files/%2e%2e/secret.txt",
        f"/files/{RAW}/PAN001/abcdef/20240101T000000/evil.html",  # a bucket by name, not key
    ],
)
def test_no_path_leaves_a_bucket(client: FlaskClient, path: str) -> None:
    response = client.get(path, follow_redirects=True)  # a double slash is merged by a redirect
    assert response.status_code == 404 and SECRET not in response.data


def test_a_file_is_served_as_its_suffix_says_never_as_uploaded(client: FlaskClient) -> None:
    response = client.get("/files/raw/PAN001/abcdef/20240101T000000/evil.html")
    assert response.status_code == 200 and response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/api/stats", "GET", 200),
        ("/api/observations?ra=x", "GET", 400),
        ("/nowhere", "GET", 404),
        (f"/files/processed/{PRODUCT}", "GET", 200),
        ("/api/stats", "POST", 405),
        ("/api/stats", "DELETE", 405),
    ],
)
def test_every_response_carries_the_security_headers(client: FlaskClient, path: str, method: str, status: int) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert response.headers["X-Frame-Options"] == "DENY" and response.headers["Referrer-Policy"] == "no-referrer"


class Failing:
    """A store (metadata or storage) whose every call fails the way a bug or an outage does."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise self.error

        return fail


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Every log line of the process, as the services write them (JSON), into a buffer."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    stream = io.StringIO()
    configure_logging(stream)
    yield stream


def explorer_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == "panoptes_network.explorer"]


@pytest.mark.parametrize(
    ("path", "broken", "mimetype"),
    [("/api/stats", "metadata", "application/json"), (f"/files/processed/{PRODUCT}", "storage", "text/html")],
)
def test_a_bug_is_a_500_without_a_traceback_and_one_log_line_with_it(
    archive: Context, log_lines: io.StringIO, path: str, broken: str, mimetype: str
) -> None:
    context = dataclasses.replace(archive, **{broken: Failing(RuntimeError("db secret"))})
    response = create_explorer(context).test_client().get(path)
    body = response.get_data(as_text=True)
    assert response.status_code == 500 and response.mimetype == mimetype
    assert "Traceback" not in body and "db secret" not in body and "internal error" in body
    [line] = explorer_lines(log_lines)
    assert line["severity"] == "ERROR" and line["error_class"] == "RuntimeError" and "db secret" in line["stack_trace"]


def test_an_outage_is_a_503_to_retry(archive: Context) -> None:
    context = dataclasses.replace(archive, metadata=Failing(TransientError("Firestore down")))
    response = create_explorer(context).test_client().get("/api/observations")
    assert response.status_code == 503 and response.headers["Retry-After"] == "10"


def test_one_json_log_line_per_request(client: FlaskClient, log_lines: io.StringIO) -> None:
    paths = ["/api/stats", "/api/observations?limit=x", "/nowhere", f"/files/processed/{PRODUCT}"]
    statuses = [client.get(path).status_code for path in paths]
    lines = explorer_lines(log_lines)
    assert [line["httpRequest"]["status"] for line in lines] == statuses == [200, 400, 404, 200]
    assert [line["httpRequest"]["requestUrl"] for line in lines] == paths
    assert all(line["duration_ms"] >= 0 for line in lines)
    assert lines[1]["severity"] == "WARNING" and "limit" in lines[1]["reason"]


FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True
)
texts = st.text(max_size=40)
values = st.one_of(
    texts,
    st.floats().map(repr),
    st.integers(-(10**12), 10**12).map(str),
    st.dates().map(dt.date.isoformat),
    st.datetimes(timezones=st.none() | st.just(dt.UTC)).map(dt.datetime.isoformat),
    st.sampled_from([s.value for s in ObservationStatus] + ["PAN001", "", " ", "9999-12-31", "0001-01-01"]),
)


@FUZZ
@given(params=st.dictionaries(st.sampled_from([*PARAMETERS, "other"]), values, max_size=6))
def test_no_search_parameter_gives_a_500(client: FlaskClient, params: dict[str, str]) -> None:
    response = client.get("/api/observations", query_string=params)
    assert response.status_code in (200, 400), (params, response.get_data(as_text=True))
    assert response.is_json


@FUZZ
@given(
    route=st.sampled_from(
        ["/api/observations/", "/api/images/", "/api/units/", "/files/raw/", "/files/processed/", "/api/header?path="]
    ),
    tail=st.one_of(texts, st.sampled_from(["PAN001_abcdef_20240101T000000", PRODUCT, f"gs://{PROCESSED}/{PRODUCT}"])),
    files=st.sampled_from(["", "/files", "/files?what=raw", "/files?what=nope"]),
)
def test_no_path_gives_a_500(client: FlaskClient, route: str, tail: str, files: str) -> None:
    from urllib.parse import quote

    suffix = files if route == "/api/observations/" else ""
    response = client.get(route + quote(tail, safe="/" if route.startswith("/files") else "") + suffix)
    assert response.status_code in (200, 206, 308, 400, 404), (route, tail, response.get_data(as_text=True)[:300])


def test_the_openapi_document_describes_every_api_route_and_search_parameter(client: FlaskClient) -> None:
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    documented = {path.replace("{", "<").replace("}", ">") for path in document["paths"]}
    app = client.application
    routes = {rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/")}
    assert documented == routes - {"/api/openapi.json"}
    search = document["paths"]["/api/observations"]["get"]["parameters"]
    assert [p["name"] for p in search] == list(PARAMETERS)
    assert {p["name"]: p["schema"]["type"] for p in search if p["schema"]["type"] != "string"} == {
        "ra": "number",
        "dec": "number",
        "radius": "number",
        "min_frames": "integer",
        "limit": "integer",
    }


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"unit": "PAN012", "status": "processed", "min_frames": "0", "limit": "7"},
        {"since": "2024-01-01", "until": "2024-01-31", "target": "Wasp 12"},
        {"ra": "359.99", "dec": "-89.5", "radius": "0.25", "cursor": "WzEuMCwgIngiXQ=="},
        {"since": "2024-01-01T03:00:00+05:00", "until": "9999-12-31"},
    ],
)
def test_filters_as_parameters_ask_for_the_same_filters_again(query: dict[str, str]) -> None:
    """What the pages' next-page links are made of."""
    filters = SearchFilters.parse(query)
    assert SearchFilters.parse(filters.as_params()) == filters
