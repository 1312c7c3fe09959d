"""``search``, ``download`` and ``query`` on a processed synthetic night: against the data dir and
against the explorer served over real HTTP (the same answers), downloads resumed and checked
against their listed sizes, SQL answers against pyarrow's reading of the same files."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from werkzeug.serving import make_server

from fixtures_explorer import SCIENCE_FRAMES, ProcessedNight
from panoptes_network.core.errors import BadInput, PipelineError
from panoptes_network.drivers.archive_client import LocalArchive, RemoteArchive
from panoptes_network.drivers.cli import main
from panoptes_network.drivers.downloads import download_file, part_path, target_path
from panoptes_network.explorer.app import create_explorer
from panoptes_network.explorer.archive import Archive
from panoptes_network.science.lightcurve_products import LIGHTCURVE_FILES
from panoptes_network.science.observation_products import PRODUCT_FILES

PRODUCTS = len(PRODUCT_FILES) + len(LIGHTCURVE_FILES)  # process-observation's and make-lightcurves'


@pytest.fixture(scope="module")
def served_explorer(processed_night: ProcessedNight) -> Iterator[str]:
    """The explorer app on the processed night, served over HTTP on a free port."""
    server = make_server("127.0.0.1", 0, create_explorer(processed_night.context()), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture(params=["data-dir", "url"])
def source(request: pytest.FixtureRequest, processed_night: ProcessedNight) -> list[str]:
    """Where a command reads: ``--data-dir`` or ``--url`` of the explorer serving that data dir."""
    if request.param == "data-dir":
        return ["--data-dir", str(processed_night.data_dir)]
    return ["--url", request.getfixturevalue("served_explorer")]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_search_finds_the_night_by_name_and_cone(
    capsys: pytest.CaptureFixture[str], processed_night: ProcessedNight, source: list[str]
) -> None:
    night = processed_night
    status, out, _ = run(capsys, "search", *source, "--target", night.field_name.upper(), "--json")
    [item] = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and item["sequence_id"] == night.sequence_id and item["usable_frames"] == SCIENCE_FRAMES
    cone = ("--ra", str(night.field_ra), "--dec", str(night.field_dec), "--radius", "0.5")
    status, out, _ = run(capsys, "search", *source, *cone)
    assert status == 0 and night.sequence_id in out and out.startswith("OBSERVATION")
    status, out, _ = run(capsys, "search", *source, "--since", f"{night.start.year + 1}-01-01", "--json")
    assert status == 0 and out == ""


def test_search_says_what_is_wrong_with_a_filter(capsys: pytest.CaptureFixture[str], source: list[str]) -> None:
    status, out, err = run(capsys, "search", *source, "--dec", "91", "--ra", "3")
    assert status == 2 and out == "" and "dec 91 is outside -90 to 90 degrees" in err


def stored_bytes(night: ProcessedNight, key: str, name: str) -> bytes:
    context = night.context()
    return (night.data_dir / "buckets" / context.settings.bucket(key) / name).read_bytes()


def test_download_fetches_every_product_then_finds_them_there(
    capsys: pytest.CaptureFixture[str], processed_night: ProcessedNight, source: list[str], tmp_path: Path
) -> None:
    night = processed_night
    status, _, err = run(capsys, "download", night.sequence_id, *source, "--to", str(tmp_path))
    assert status == 0 and f"{PRODUCTS} files ({PRODUCTS} downloaded)" in err
    files = sorted((tmp_path / "processed").iterdir())
    assert len(files) == PRODUCTS and not list(tmp_path.rglob("*.part"))
    folder = night.sequence_id.replace("_", "/")
    for path in files:
        assert path.read_bytes() == stored_bytes(night, "processed", f"{folder}/{path.name}"), path.name
    status, _, err = run(capsys, "download", night.sequence_id, *source, "--to", str(tmp_path))
    assert status == 0 and f"({PRODUCTS} present)" in err


def test_an_interrupted_download_continues_where_it_stopped(
    capsys: pytest.CaptureFixture[str], processed_night: ProcessedNight, source: list[str], tmp_path: Path
) -> None:
    night = processed_night
    assert run(capsys, "download", night.sequence_id, *source, "--what", "raw", "--to", str(tmp_path), "-q")[0] == 0
    frames = sorted((tmp_path / "raw").iterdir())
    assert len(frames) == night.frame_count
    cut, gone = frames[0], frames[1]
    whole = cut.read_bytes()
    [listed] = [
        f
        for f in LocalArchive(Archive(night.context())).files(night.sequence_id, "raw")
        if f["name"].endswith(cut.name)
    ]
    cut.unlink()
    part_path(cut, listed).write_bytes(whole[:5000])  # what arrived before the interruption
    gone.unlink()
    status, _, err = run(capsys, "download", night.sequence_id, *source, "--what", "raw", "--to", str(tmp_path))
    assert status == 0 and "1 downloaded" in err and "1 resumed" in err and f"{night.frame_count - 2} present" in err
    assert cut.read_bytes() == whole and gone.is_file() and not list(tmp_path.rglob("*.part"))


def test_an_unknown_observation_or_set_is_an_error_that_says_so(
    capsys: pytest.CaptureFixture[str], source: list[str], tmp_path: Path
) -> None:
    status, _, err = run(capsys, "download", "PAN009_abcdef_20200101T000000", *source, "--to", str(tmp_path))
    assert status == 2 and "no observation PAN009_abcdef_20200101T000000" in err
    status, _, err = run(capsys, "download", "not-an-id", *source, "--to", str(tmp_path))
    assert status == 2 and "is not {unit}_{camera}_{sequence_time}" in err
    assert not any(tmp_path.iterdir())


class Truncating:
    """A client that delivers ``keep`` bytes of each file (a connection that drops), counting
    where each read starts."""

    def __init__(self, inner: LocalArchive, keep: int | None = None, extra: bytes = b"") -> None:
        self.inner, self.keep, self.extra = inner, keep, extra
        self.starts: list[int] = []

    def read(self, url: str, start: int) -> Iterator[bytes]:
        self.starts.append(start)
        data = b"".join(self.inner.read(url, start))
        yield data[: self.keep] if self.keep is not None else data + self.extra


def product_listing(night: ProcessedNight) -> tuple[LocalArchive, dict[str, Any]]:
    client = LocalArchive(Archive(night.context()))
    stack = next(f for f in client.files(night.sequence_id, "products") if f["name"].endswith("stack.fits.fz"))
    return client, stack


def test_a_short_file_never_takes_its_name_and_the_next_run_completes_it(
    processed_night: ProcessedNight, tmp_path: Path
) -> None:
    client, listed = product_listing(processed_night)
    path = tmp_path / "stack.fits.fz"
    path.write_bytes(b"the user's own older file")
    dropping = Truncating(client, keep=10_000)
    with pytest.raises(PipelineError, match=f"10000 of {listed['size']} bytes arrived"):
        download_file(dropping, listed, path, lambda n: None)
    assert path.read_bytes() == b"the user's own older file", "not replaced by an unverified file"
    resumed = Truncating(client)
    assert download_file(resumed, listed, path, lambda n: None).state == "replaced"
    assert resumed.starts == [10_000] and path.stat().st_size == listed["size"]


def test_a_part_of_another_version_is_not_continued_and_goes_once_the_file_is_complete(
    processed_night: ProcessedNight, tmp_path: Path
) -> None:
    """A product reprocessed between two runs: the old version's beginning is never kept."""
    client, listed = product_listing(processed_night)
    path = tmp_path / "stack.fits.fz"
    older = part_path(path, {**listed, "version": "1"})
    older.write_bytes(b"x" * 10_000)
    reading = Truncating(client)
    assert download_file(reading, listed, path, lambda n: None).state == "downloaded"
    assert reading.starts == [0] and not older.exists()
    assert path.read_bytes() == stored_bytes(processed_night, "processed", listed["name"])


def test_more_bytes_than_listed_is_an_error_and_nothing_is_kept(
    processed_night: ProcessedNight, tmp_path: Path
) -> None:
    client, listed = product_listing(processed_night)
    with pytest.raises(PipelineError, match="more bytes than"):
        download_file(Truncating(client, extra=b"x"), listed, tmp_path / "stack.fits.fz", lambda n: None)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["../escape.fits", "/etc/passwd", "a/../../b", "a\\b", ""])
def test_a_name_that_leaves_the_folder_is_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not a plain relative name"):
        target_path(tmp_path, "PAN001/abcdef/20200101T000000", {"bucket": "raw", "name": name})


def test_a_server_that_ignores_ranges_still_gives_the_rest(tmp_path: Path) -> None:
    """http.server answers a Range with the whole file (200): the client skips what it has."""
    payload = bytes(range(256)) * 100
    (tmp_path / "file.bin").write_bytes(payload)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        remote = RemoteArchive(f"http://127.0.0.1:{server.server_port}")
        assert b"".join(remote.read("/file.bin", 1000)) == payload[1000:]
    finally:
        server.shutdown()
        server.server_close()


def parquet_rows(night: ProcessedNight, suffix: str) -> int:
    return sum(pq.read_metadata(path).num_rows for path in (night.data_dir / "buckets").rglob(f"*{suffix}"))


def query(capsys: pytest.CaptureFixture[str], night: ProcessedNight, sql: str) -> list[dict[str, Any]]:
    status, out, err = run(capsys, "query", "--data-dir", str(night.data_dir), "--json", sql)
    assert status == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_query_counts_what_the_parquet_files_hold(
    capsys: pytest.CaptureFixture[str], processed_night: ProcessedNight
) -> None:
    night = processed_night
    [sources] = query(capsys, night, "SELECT count(*) AS n, count(DISTINCT image_id) AS images FROM sources")
    assert sources["n"] == parquet_rows(night, "-sources.parquet") > 0
    rows = query(
        capsys, night, "SELECT sequence_id, count(*) AS frames, bool_and(usable) AS all_usable FROM quality GROUP BY 1"
    )
    assert rows == [{"sequence_id": night.sequence_id, "frames": SCIENCE_FRAMES, "all_usable": True}]
    joined = query(
        capsys,
        night,
        "SELECT count(*) AS n FROM sources s JOIN quality q ON s.image_id = q.image_id AND s.sequence_id = q.sequence_id",
    )
    assert 0 < joined[0]["n"] <= sources["n"]


def test_query_says_which_tables_have_no_files_yet(
    capsys: pytest.CaptureFixture[str], processed_night: ProcessedNight, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = run(capsys, "query", "--data-dir", str(empty), "SELECT * FROM lightcurves")
    assert status == 2 and "lightcurves" in err and "no files yet" in err
    status, out, _ = run(capsys, "query", "--data-dir", str(processed_night.data_dir), "--tables")
    assert status == 0 and "quality: 1 files" in out and "lightcurves: 1 files" in out, "make-lightcurves ran"
    [curves] = query(
        capsys,
        processed_night,
        "SELECT count(DISTINCT star) AS stars, count(DISTINCT channel) AS channels FROM lightcurves",
    )
    assert curves["stars"] > 0 and curves["channels"] == 4
    status, _, err = run(capsys, "query", "--data-dir", str(processed_night.data_dir), "SELEC 1")
    assert status == 2 and "syntax error" in err.lower()
