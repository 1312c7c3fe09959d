"""Memory bounds per step (issue 18): every step runs in a child process whose address space is
limited (RLIMIT_AS) to its service's Cloud Run memory from the topology, on a full frame and on
the decompression bomb; a step that runs out is a recorded MemoryError, not a crash.

Each run prints the limit it used and the child's peak resident memory (pytest -s shows them)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

from bounded_step import BoundedRun, run_bounded, service_memory
from hostile_files import BOMB_NAME, bomb_bytes
from panoptes_network.adapters.backends import local_context
from panoptes_network.core.settings import Settings
from panoptes_network.core.topology import load_topology
from panoptes_network.science.fits_codec import to_bytes
from panoptes_network.synthetic.camera_raw import make_raw, raw_path
from panoptes_network.synthetic.frames import FrameSpec
from panoptes_network.synthetic.star_field import StarFieldSpec, make_star_field
from step_harness import RAW, message_for

FRAME_NAME = "PAN001/M00001/20261124T080000/20261124T080203.fits"
FRAME_IMAGE_ID = "PAN001_M00001_20261124T080203"
TOO_LITTLE = 300 << 20  # subtract-background: enough to import (~230 MiB of address space), not for a full frame


def as_message(queued: dict[str, Any], message_id: str) -> dict[str, Any]:
    return {"data": queued["data"], "attributes": queued["attributes"], "message_id": message_id}


def follow_chain(data_dir: Path, first: dict[str, Any]) -> list[BoundedRun]:
    """Every message and the ones it causes, each service's step bounded, in publishing order."""
    topology, pending, runs = load_topology(), [first], []
    while pending:
        queued = pending.pop(0)
        for service in topology.listeners(queued["topic"]):
            run = run_bounded(service.name, data_dir, as_message(queued, f"m-{len(runs)}"))
            print(run.describe())
            runs.append(run)
            pending += run.published
    return runs


@pytest.fixture(scope="module")
def full_frame_chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[BoundedRun]]:
    """A full synthetic frame of the real sky (5208 x 3476), uploaded as .fits, through the whole chain."""
    data_dir = tmp_path_factory.mktemp("memory")
    context, queue = local_context(Settings(data_dir=data_dir), data_dir)
    data, header, _ = make_star_field(StarFieldSpec())
    context.storage.write_new(RAW, FRAME_NAME, to_bytes(fits.HDUList([fits.PrimaryHDU(data, header)])))
    notification = queue.pop()
    assert notification is not None
    first = {
        "topic": notification.topic,
        "data": base64.b64encode(notification.data).decode(),
        "attributes": dict(notification.attributes),
    }
    return data_dir, follow_chain(data_dir, first)


def test_every_step_of_the_chain_fits_its_memory_on_a_full_frame(full_frame_chain) -> None:
    _, runs = full_frame_chain
    ran = [run.service for run in runs]
    assert ran == [
        "image-received",
        "compress-fits",
        "image-received",
        "record-image",
        "subtract-background",
        "plate-solver",
    ], ran
    for run in runs:
        assert run.outcome == "done", run.describe()
        assert run.peak_mb * (1 << 20) < run.limit_bytes
    print("limits used:", {run.service: f"{run.limit_bytes >> 20} MiB" for run in runs})


def test_make_rgb_fits_fits_its_memory_on_a_full_raw(tmp_path: Path) -> None:
    spec = FrameSpec(unit_id="PAN001", camera_id="M00002")
    context, _ = local_context(Settings(data_dir=tmp_path), tmp_path)
    ref = context.storage.write_new(RAW, raw_path(spec), make_raw(spec)[1])
    data, attributes = message_for(ref).encode()
    message = {"data": base64.b64encode(data).decode(), "attributes": attributes, "message_id": "m-raw"}
    run = run_bounded("make-rgb-fits", tmp_path, message)
    print(run.describe())
    assert run.outcome == "done", run.describe()


@pytest.mark.parametrize(
    ("service", "name"),
    [
        ("compress-fits", BOMB_NAME.removesuffix(".fz")),
        ("record-image", BOMB_NAME),
        ("subtract-background", BOMB_NAME),
        ("plate-solver", BOMB_NAME),
    ],
)
def test_the_bomb_is_rejected_within_each_steps_memory(tmp_path: Path, service: str, name: str) -> None:
    context, _ = local_context(Settings(data_dir=tmp_path), tmp_path)
    ref = context.storage.write_new(RAW, name, bomb_bytes())
    background = context.storage.write_new("panoptes-backgrounds", "bomb-background.fits.fz", bomb_bytes(320))
    extra = {"background": {"bucket": background.bucket, "name": background.name, "generation": background.generation}}
    step_message = message_for(ref)
    if service == "plate-solver":
        step_message = step_message.then(ref, extra)
    data, attributes = step_message.encode()
    run = run_bounded(
        service, tmp_path, {"data": base64.b64encode(data).decode(), "attributes": attributes, "message_id": "m-bomb"}
    )
    print(run.describe())
    assert run.outcome == "rejected" and run.error_class == "OverLimit", run.describe()
    assert run.peak_mb < 200


def test_running_out_of_memory_is_a_recorded_failure(full_frame_chain) -> None:
    data_dir, runs = full_frame_chain
    [record_run] = [run for run in runs if run.service == "record-image"]
    [queued] = [q for q in record_run.published if q["topic"] == "subtract-background"]
    fields = json.loads(base64.b64decode(queued["data"]))
    fields["rerun"] = "out-of-memory"  # it ran already: a rerun token makes it run again
    data = base64.b64encode(json.dumps(fields).encode()).decode()
    assert service_memory("subtract-background") > TOO_LITTLE
    run = run_bounded("subtract-background", data_dir, as_message({**queued, "data": data}, "m-oom"), TOO_LITTLE)
    print(run.describe())
    assert run.exit_code == 0  # the step failed; the process did not crash
    assert run.outcome == "error" and run.error_class == "MemoryError", run.describe()
    assert "needs more memory" in run.reason
    context, _ = local_context(Settings(data_dir=data_dir), data_dir)
    failed = context.metadata.get("images", FRAME_IMAGE_ID)["steps"]["subtract-background"]
    assert failed["state"] == "error" and failed["error_class"] == "MemoryError"
