"""Hostile input (issue 18): limits checked before allocation in every step that opens pixels,
the decompression bomb as a cheap recorded rejection, and nothing stopping half-way unseen."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from hostile_files import BOMB_IMAGE_ID, BOMB_NAME, bomb_bytes, run_cli_measured, write_bomb
from panoptes_network.adapters.backends import local_context
from panoptes_network.core.errors import OverLimit
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.settings import Limits, Settings
from panoptes_network.drivers.cli import main
from panoptes_network.science.fits_header import check_limits
from panoptes_network.synthetic.camera_raw import make_raw, raw_path
from panoptes_network.synthetic.frames import FrameSpec
from step_harness import RAW, deliver, message_for

BOMB_PEAK_MB = 200  # issue 18: the bomb is rejected in well under the memory of any service


def limited(tmp_path: Path, **limits: int):
    return local_context(Settings(data_dir=tmp_path, limits=Limits(**limits)), tmp_path)


def assert_over(handled, limit: str) -> None:
    assert handled.outcome is Outcome.REJECTED, handled.reason
    assert handled.error_class == "OverLimit"
    assert limit in handled.reason and f"PANOPTES_{limit.upper()}" in handled.reason


def test_limits_come_from_the_environment() -> None:
    settings = Settings.from_env({"PANOPTES_MAX_IMAGE_PIXELS": "1000", "PANOPTES_MAX_HDUS": "3"})
    assert settings.limits == dataclasses.replace(Limits(), max_image_pixels=1000, max_hdus=3)
    assert Limits().max_image_pixels >= 4 * 5208 * 3476  # a few PANOPTES frames


def test_the_bomb_is_small_on_disk_and_over_the_pixel_limit() -> None:
    data = bomb_bytes()
    assert len(data) < 100_000  # 900 Mpx of zeros in a few kB
    with pytest.raises(OverLimit, match="max_image_pixels 900,000,000 .*PANOPTES_MAX_IMAGE_PIXELS"):
        check_limits(data, "bomb", Limits())
    check_limits(bomb_bytes(320), "small bomb", Limits())  # the same file, small: within the limits


def test_too_many_hdus_and_cards_are_refused_from_the_headers() -> None:
    data = bomb_bytes(320)
    with pytest.raises(OverLimit, match="max_hdus 2 exceeds the limit of 1"):
        check_limits(data, "two HDUs", Limits(max_hdus=1))
    with pytest.raises(OverLimit, match="max_header_cards"):
        check_limits(data, "cards", Limits(max_header_cards=10))


@pytest.mark.parametrize("service", ["record-image", "subtract-background"])
def test_the_bomb_is_rejected_by_each_step_that_reads_the_raw_image(tmp_path: Path, service: str) -> None:
    context, _ = limited(tmp_path)
    ref = context.storage.write_new(RAW, BOMB_NAME, bomb_bytes())
    handled = deliver(context, service, message_for(ref))
    assert_over(handled, "max_image_pixels")
    record = context.metadata.get("images", BOMB_IMAGE_ID)
    assert record["status"] == "rejected" and record["steps"][service]["error_class"] == "OverLimit"


def test_plate_solver_rejects_the_bomb_before_decoding(tmp_path: Path) -> None:
    context, _ = limited(tmp_path)
    ref = context.storage.write_new(RAW, BOMB_NAME, bomb_bytes())
    background = context.storage.write_new("panoptes-backgrounds", "x-background.fits.fz", bomb_bytes(320))
    extra = {"background": {"bucket": background.bucket, "name": background.name, "generation": background.generation}}
    message = dataclasses.replace(message_for(ref), extra=extra)
    assert_over(deliver(context, "plate-solver", message), "max_image_pixels")


def test_compress_fits_rejects_a_bomb_named_fits(tmp_path: Path) -> None:
    context, _ = limited(tmp_path)
    ref = context.storage.write_new(RAW, BOMB_NAME.removesuffix(".fz"), bomb_bytes())
    assert_over(deliver(context, "compress-fits", message_for(ref)), "max_image_pixels")
    assert context.storage.stat(RAW, ref.name) is not None  # a rejected input is never deleted


def test_an_object_over_the_size_limit_is_refused_before_it_is_read(test_data: Path, tmp_path: Path) -> None:
    context, _ = limited(tmp_path, max_object_bytes=100_000)
    data = (test_data / "panoptes" / "unsolved.fits").read_bytes()
    ref = context.storage.write_new(RAW, BOMB_NAME.removesuffix(".fz"), data)
    handled = deliver(context, "compress-fits", message_for(ref))
    assert_over(handled, "max_object_bytes")
    assert f"{len(data):,}" in handled.reason


def test_make_rgb_fits_checks_libraw_dimensions_before_decoding(tmp_path: Path) -> None:
    spec = FrameSpec(unit_id="PAN001", camera_id="14d3bd", shape=(200, 300), stars=5)
    context, _ = limited(tmp_path, max_image_pixels=200 * 300 - 1)
    ref = context.storage.write_new(RAW, raw_path(spec), make_raw(spec)[1])
    handled = deliver(context, "make-rgb-fits", message_for(ref))
    assert_over(handled, "max_image_pixels")
    assert "60,000" in handled.reason  # LibRaw's raw size, read from the file's header


def test_the_bomb_through_process_is_a_cheap_recorded_rejection(tmp_path: Path) -> None:
    bomb = write_bomb(tmp_path / "in")
    data_dir = str(tmp_path / "data")
    status, out, err, peak_mb = run_cli_measured(
        "process", "--json", "-q", "-j", "1", "--data-dir", data_dir, str(bomb)
    )
    assert status == 1, err
    record = json.loads(out)
    assert record["status"] == "rejected"
    assert record["steps"]["record-image"]["error_class"] == "OverLimit"
    assert "PANOPTES_MAX_IMAGE_PIXELS" in record["steps"]["record-image"]["error"]
    print(f"bomb through process: peak {peak_mb:.0f} MB (bound {BOMB_PEAK_MB} MB)")
    assert peak_mb < BOMB_PEAK_MB


def test_a_fits_whose_record_was_lost_is_listed_and_fails(test_data: Path, tmp_path: Path, capsys) -> None:
    """Issue 18: re-processed into the same data dir after its metadata was lost, compress-fits
    finds the identical .fits.fz, no new upload follows, and the image stays ``received``."""
    frame = test_data / "panoptes" / "tiny.fits"
    data_dir = tmp_path / "data"
    assert main(["process", "-q", "-j", "1", "--data-dir", str(data_dir), str(frame)]) == 0
    capsys.readouterr()
    (data_dir / "metadata.sqlite").unlink()
    assert main(["process", "-q", "-j", "1", "--data-dir", str(data_dir), str(frame)]) == 1
    err = capsys.readouterr().err
    assert "not finished: PAN001_XXXXXX_20160909T081314: stopped at received" in err
    assert "compress-fits: done" in err
    assert main(["gaps", "--data-dir", str(data_dir)]) == 1
    assert "PAN001_XXXXXX_20160909T081314" in capsys.readouterr().out
