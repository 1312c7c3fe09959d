"""The embedded runner and the panoptes-network command, on real and synthetic files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from astropy.io import fits

from panoptes_network.adapters.sqlite_metadata import SqliteMetadata
from panoptes_network.drivers.cli import main
from panoptes_network.synthetic import observation
from panoptes_network.synthetic.frames import FrameSpec, write_frame


@pytest.fixture(scope="module")
def small_frame(tmp_path_factory) -> Path:
    return write_frame(FrameSpec(shape=(200, 300), stars=20), tmp_path_factory.mktemp("frames"))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "panoptes_network", *args], capture_output=True, text=True, timeout=120
    )


def test_process_prints_the_record_of_the_real_unsolved_frame(test_data: Path, tmp_path: Path) -> None:
    result = run_cli("process", "--json", "--data-dir", str(tmp_path), str(test_data / "panoptes" / "unsolved.fits"))
    assert result.returncode == 0, result.stderr
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["image_id"] == "PAN001_XXXXXX_20160909T081314"
    assert record["sequence_id"] == "PAN001_XXXXXX_20160909T081152"
    assert record["status"] not in ("rejected", "error")
    assert record["steps"]["image-received"]["state"] == "done"
    assert record["steps"]["compress-fits"]["state"] == "done"
    assert record["steps"]["compress-fits"]["input"].endswith(
        ".fits#" + record["steps"]["compress-fits"]["input"].split("#")[1]
    )
    assert "PAN001_XXXXXX_20160909T081314" in result.stderr  # the summary table


def test_status_reads_the_records_back(test_data: Path, tmp_path: Path) -> None:
    assert main(["process", "-q", "--data-dir", str(tmp_path), str(test_data / "panoptes" / "solved.fits.fz")]) == 0
    result = run_cli("status", "--json", "--data-dir", str(tmp_path), "PAN001_XXXXXX_20160909T081522")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["steps"]["image-received"]["input"].endswith(
        "PAN001/XXXXXX/20160909T081152/20160909T081522.fits.fz#"
        + json.loads(result.stdout)["steps"]["image-received"]["input"].split("#")[1]
    )
    assert run_cli("status", "--data-dir", str(tmp_path), "PAN001_XXXXXX_20990101T000000").returncode == 1


def test_a_folder_in_parallel_with_a_failure_exits_nonzero(test_data: Path, small_frame: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(test_data / "panoptes" / "noheader.fits", inputs)
    shutil.copy(small_frame, inputs)
    (inputs / "notes.txt").write_text("not an image")
    result = run_cli("process", "--json", "-j", "2", "--data-dir", str(tmp_path / "data"), str(inputs))
    assert result.returncode == 1
    records = {Path(r["input"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert records[small_frame.name]["status"] not in ("rejected", "error")
    assert records["noheader.fits"]["status"] == "rejected"
    assert "INSTRUME" in records["noheader.fits"]["error"]
    assert records["notes.txt"]["status"] == "rejected"
    assert "2 failed" in result.stderr
    log = (tmp_path / "data" / "pipeline.log").read_text().splitlines()
    assert any(json.loads(line).get("outcome") == "done" for line in log)


def test_processing_the_same_file_twice_changes_no_output(small_frame: Path, tmp_path: Path, capsys) -> None:
    def bucket_state() -> dict[str, int]:
        root = tmp_path / "buckets"
        return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}

    assert main(["process", "--json", "-q", "--data-dir", str(tmp_path), str(small_frame)]) == 0
    first = json.loads(capsys.readouterr().out)
    outputs = bucket_state()
    assert main(["process", "--json", "-q", "--data-dir", str(tmp_path), str(small_frame)]) == 0
    second = json.loads(capsys.readouterr().out)
    assert bucket_state() == outputs  # the same objects, same generations: nothing rewritten
    assert second["status"] == first["status"]
    assert second["steps"]["compress-fits"]["outputs"]["compressed"]["state"] == "identical"


def test_a_different_file_under_an_existing_name_is_never_overwritten(test_data: Path, tmp_path: Path, capsys) -> None:
    panoptes = test_data / "panoptes"
    raw = tmp_path / "buckets/panoptes-raw-images/PAN001/XXXXXX/20160909T081152"
    # tiny.fits is a crop carrying the same header, so it claims the same image name.
    assert main(["process", "-q", "--data-dir", str(tmp_path), str(panoptes / "tiny.fits")]) == 0
    (raw / "20160909T081314.fits").write_bytes(b"not what was stored")  # someone edits the bucket
    assert main(["process", "--json", "-q", "--data-dir", str(tmp_path), str(panoptes / "unsolved.fits")]) == 1
    record = json.loads(capsys.readouterr().out)
    assert "already holds a different file" in record["error"]
    assert (raw / "20160909T081314.fits").read_bytes() == b"not what was stored"


def test_a_conflicting_compressed_file_keeps_both_and_fails_visibly(test_data: Path, tmp_path: Path, capsys) -> None:
    panoptes = test_data / "panoptes"
    raw = tmp_path / "buckets/panoptes-raw-images/PAN001/XXXXXX/20160909T081152"
    assert main(["process", "-q", "--data-dir", str(tmp_path), str(panoptes / "tiny.fits")]) == 0
    tiny_fz = (raw / "20160909T081314.fits.fz").read_bytes()
    assert main(["process", "--json", "-q", "--data-dir", str(tmp_path), str(panoptes / "unsolved.fits")]) == 1
    record = json.loads(capsys.readouterr().out)
    assert record["steps"]["compress-fits"]["state"] == "conflict"
    assert (raw / "20160909T081314.fits").read_bytes() == (panoptes / "unsolved.fits").read_bytes()
    assert (raw / "20160909T081314.fits.fz").read_bytes() == tiny_fz


def test_missing_paths_and_help_are_clear(tmp_path: Path) -> None:
    result = run_cli("process", "--data-dir", str(tmp_path), str(tmp_path / "nope.fits"))
    assert result.returncode == 2 and "no such file" in result.stderr
    help_text = run_cli("process", "--help").stdout
    assert "--jobs" in help_text and "--data-dir" in help_text and "--json" in help_text


def test_pointing_images_and_darks_of_an_observation_are_recorded_as_such(tmp_path: Path, capsys) -> None:
    spec = observation.ObservationSpec(frames=2, pointing_images=1, darks=1)
    truth = observation.write_observation(spec, tmp_path / "in")
    assert main(["process", "--json", "-q", "-j", "1", "--data-dir", str(tmp_path / "data"), str(tmp_path / "in")]) == 0
    recorded = {r["image_id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    expected = {frame.name.rsplit("/", 1)[1].split(".")[0]: frame.kind.value for frame in truth.frames}
    assert {i.split("_")[-1]: r["frame_type"] for i, r in recorded.items()} == expected
    assert sorted(expected.values()) == ["dark", "pointing", "science", "science"]
    assert all(r["sequence_id"] == truth.sequence_id for r in recorded.values())
    counts = SqliteMetadata(tmp_path / "data" / "metadata.sqlite").get("observations", truth.sequence_id)
    assert counts is not None
    assert (counts["num_images"], counts["num_science_images"], counts["num_pointing_images"]) == (4, 2, 1)
    assert counts["num_dark_images"] == 1


def strip_ids(source: Path, target: Path, date_obs: str) -> Path:
    """A copy of a POCS frame whose header says nothing about unit, camera or sequence."""
    with fits.open(source) as hdus:
        header = hdus[0].header.copy()
        for key in ("SEQID", "IMAGEID", "OBSERVER", "INSTRUME", "FILENAME"):
            del header[key]
        header["DATE-OBS"] = date_obs
        fits.PrimaryHDU(hdus[0].data, header).writeto(target)
    return target


def test_unit_and_camera_options_name_files_whose_headers_carry_no_ids(
    small_frame: Path, test_data: Path, tmp_path: Path, capsys
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    strip_ids(small_frame, inputs / "a.fits", "2020-01-01T08:04:00")
    strip_ids(small_frame, inputs / "b.fits", "2020-01-01T08:01:30")
    shutil.copy(test_data / "panoptes" / "noheader.fits", inputs)
    data = str(tmp_path / "data")

    assert main(["process", "--json", "-q", "-j", "1", "--data-dir", data, str(inputs)]) == 1
    refused = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["status"] for r in refused] == ["rejected"] * 3
    assert all("--unit PAN001 --camera 14d3bd" in r["error"] for r in refused)

    args = ["process", "--json", "-q", "-j", "1", "--data-dir", data, "--unit", "PAN001", "--camera", "14d3bd"]
    assert main([*args, str(inputs)]) == 1  # noheader.fits has no time at all
    records = {Path(r["input"]).name: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert records["a.fits"]["image_id"] == "PAN001_14d3bd_20200101T080400"
    assert records["b.fits"]["image_id"] == "PAN001_14d3bd_20200101T080130"
    # One sequence for the run, starting at its earliest frame.
    assert {records[f]["sequence_id"] for f in ("a.fits", "b.fits")} == {"PAN001_14d3bd_20200101T080130"}
    assert records["a.fits"]["status"] not in ("rejected", "error")
    assert records["noheader.fits"]["status"] == "rejected"
    assert "image time (IMAGEID/FILENAME/DATE-OBS)" in records["noheader.fits"]["error"]
    stored = tmp_path / "data/buckets/panoptes-raw-images/PAN001/14d3bd/20200101T080130"
    assert sorted(p.name for p in stored.iterdir()) == ["20200101T080130.fits.fz", "20200101T080400.fits.fz"]


def test_the_unit_and_camera_options_refuse_what_is_not_an_id(tmp_path: Path) -> None:
    result = run_cli("process", "--data-dir", str(tmp_path), "--unit", "Testing PANOPTES Unit", str(tmp_path))
    assert result.returncode == 2 and "is not PAN + 3 digits" in result.stderr
    assert "--unit" in run_cli("process", "--help").stdout


def test_process_reads_records_and_finishes_observations_in_its_one_runner(
    small_frame: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One job: the files, their records and their observation all go through one runner (one
    metadata connection, one queue), not a second one opened to finish the observations."""
    from panoptes_network.drivers import embedded

    opened: list[Path] = []
    open_runner = embedded.EmbeddedRunner.__init__

    def counting(self: embedded.EmbeddedRunner, data_dir: Path, *args: object) -> None:
        opened.append(data_dir)
        open_runner(self, data_dir, *args)

    monkeypatch.setattr(embedded.EmbeddedRunner, "__init__", counting)
    data = tmp_path / "data"
    assert main(["process", "-q", "-j", "1", "--data-dir", str(data), str(small_frame)]) == 0
    assert opened == [data]
    observations = SqliteMetadata(data / "metadata.sqlite").list("observations")
    assert [o.get("status") for _, o in observations] == ["not_enough_frames"], "finished by that runner"
