"""make-rgb-fits as a step: outputs, records, redelivery, concurrency, the unit's own FITS,
rejections; and the embedded runner carrying the raw FITS on through record-image."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from panoptes_network.core.messages import ObjectRef
from panoptes_network.core.outcomes import Outcome
from panoptes_network.drivers.embedded import EmbeddedRunner
from panoptes_network.synthetic.camera_raw import make_raw, raw_path
from panoptes_network.synthetic.frames import FrameSpec
from step_harness import RAW, deliver, local, message_for

RGB = "panoptes-rgb-images"
SPEC = FrameSpec(unit_id="PAN001", camera_id="14d3bd", shape=(600, 900), stars=40)
BASE = raw_path(SPEC).rsplit(".", 1)[0]
IMAGE_ID = "PAN001_14d3bd_" + BASE.rsplit("/", 1)[1]
OUTPUTS = [(RAW, f"{BASE}.fits.fz"), *[(RGB, f"{BASE}_{c}.fits") for c in "rgb"], (RGB, f"{BASE}.jpg")]


@pytest.fixture(scope="module")
def raw_bytes() -> bytes:
    return make_raw(SPEC)[1]


def stored(context) -> dict[tuple[str, str], int]:
    """Every object of the raw and rgb buckets: (bucket, name) -> generation."""
    return {
        (bucket, info.ref.name): info.ref.generation for bucket in (RAW, RGB) for info in context.storage.list(bucket)
    }


def upload(context, data: bytes, name: str = raw_path(SPEC)) -> ObjectRef:
    return context.storage.write_new(RAW, name, data)


def test_a_raw_becomes_five_outputs_and_a_converted_image(tmp_path: Path, raw_bytes: bytes) -> None:
    context, _ = local(tmp_path)
    ref = upload(context, raw_bytes)
    handled = deliver(context, "make-rgb-fits", message_for(ref))
    assert handled.outcome is Outcome.DONE, handled.reason
    assert set(stored(context)) == {(RAW, ref.name), *OUTPUTS}
    assert context.storage.read(ref) == raw_bytes  # the raw itself is untouched
    image = context.metadata.get("images", IMAGE_ID)
    assert image["status"] == "converted"
    step = image["steps"]["make-rgb-fits"]
    assert step["state"] == "done" and step["raw_fits_source"] == "made here"
    assert {key: output["state"] for key, output in step["outputs"].items()} == dict.fromkeys(
        ["b_fits", "g_fits", "preview", "r_fits", "raw_fits"], "written"
    )
    assert image["raw_fits"] == f"{RAW}/{BASE}.fits.fz"
    assert image["rgb_fits"] == {c: f"{RGB}/{BASE}_{c}.fits" for c in "rgb"}
    assert image["camera"]["bayer_pattern"] == "RGGB" and image["camera"]["iso"] == 100
    assert "2070048413" not in json.dumps(image, default=str)  # the camera serial stays in FITS only
    assert "HA0028608" not in json.dumps(image, default=str)


def test_a_redelivered_message_writes_nothing_new(tmp_path: Path, raw_bytes: bytes) -> None:
    context, _ = local(tmp_path)
    message = message_for(upload(context, raw_bytes))
    assert deliver(context, "make-rgb-fits", message).outcome is Outcome.DONE
    before = stored(context)
    again = deliver(context, "make-rgb-fits", message, message_id="m-2")
    assert again.outcome is Outcome.ALREADY_DONE
    assert stored(context) == before


def test_two_deliveries_at_once_make_one_set_of_outputs(tmp_path: Path, raw_bytes: bytes) -> None:
    context, _ = local(tmp_path)
    message = message_for(upload(context, raw_bytes))
    results = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(deliver(context, "make-rgb-fits", message, f"m-{i}")))
        for i in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # The second is told to come back (lease held), finds it done, or (sequentially) redoes it identically.
    assert sorted(r.outcome.value for r in results) in (
        ["already_done", "done"],
        ["done", "done"],
        ["done", "transient"],
    )
    objects = stored(context)
    assert len(objects) == 1 + len(OUTPUTS)
    step = context.metadata.get("images", IMAGE_ID)["steps"]["make-rgb-fits"]
    assert step["raw_fits_source"].startswith("made here")


def test_the_units_own_fits_is_left_and_recorded(tmp_path: Path, raw_bytes: bytes) -> None:
    context, _ = local(tmp_path)
    own = context.storage.write_new(RAW, f"{BASE}.fits.fz", b"SIMPLE  = the unit's own upload")
    ref = upload(context, raw_bytes)
    handled = deliver(context, "make-rgb-fits", message_for(ref))
    assert handled.outcome is Outcome.DONE and "unit's own" in handled.reason
    assert context.storage.stat(RAW, own.name).ref.generation == own.generation
    assert context.storage.read(own) == b"SIMPLE  = the unit's own upload"
    assert set(OUTPUTS[1:]) <= set(stored(context))
    step = context.metadata.get("images", IMAGE_ID)["steps"]["make-rgb-fits"]
    assert step["state"] == "done" and step["raw_fits_source"] == "the unit's own, left"
    assert step["outputs"]["raw_fits"]["state"] == "kept"  # not a conflict: the name is shared with the unit


@pytest.mark.parametrize(
    ("source", "why"),
    [("canon-exif-only.cr2", "ISO=400"), ("empty", "empty"), ("text", "LibRaw")],
)
def test_unreadable_raws_are_recorded_rejections(tmp_path: Path, test_data: Path, source: str, why: str) -> None:
    data = {
        "canon-exif-only.cr2": lambda: (test_data / "raw" / "canon-exif-only.cr2").read_bytes(),
        "empty": lambda: b"",
        "text": lambda: b"observing notes, not a raw\n",
    }[source]()
    context, _ = local(tmp_path)
    ref = upload(context, data)
    handled = deliver(context, "make-rgb-fits", message_for(ref))
    assert handled.outcome is Outcome.REJECTED and why in handled.reason
    image = context.metadata.get("images", IMAGE_ID)
    assert image["status"] == "rejected"
    assert why in image["steps"]["make-rgb-fits"]["error"]
    if source == "canon-exif-only.cr2":  # the EXIF that could be read is kept as fields, serials excluded
        exif = image["steps"]["make-rgb-fits"]["exif"]
        assert exif["ISO"] == 400 and "CAMSN" not in exif and "INTSN" not in exif
    assert set(stored(context)) == {(RAW, ref.name)}


def test_the_embedded_runner_carries_the_raw_fits_through_record_image(tmp_path: Path, raw_bytes: bytes) -> None:
    source = tmp_path / "in" / raw_path(SPEC)
    source.parent.mkdir(parents=True)
    source.write_bytes(raw_bytes)
    runner = EmbeddedRunner(tmp_path / "data")
    report = runner.process_file(source)
    steps = {(h.step, h.outcome.value) for h in report.handled}
    assert ("make-rgb-fits", "done") in steps and not report.failed, report.handled
    image = runner.metadata.get("images", IMAGE_ID)
    assert image["steps"]["make-rgb-fits"]["state"] == "done"
    assert image["steps"]["record-image"]["input"].split("#")[0] == f"{RAW}/{BASE}.fits.fz"
    assert image["status"] not in ("rejected", "error", "received", "converted")
