"""Every service image built with a real OCI engine (podman, or docker), the local stack run on
those images, and two uploads through the Google storage client solved with every product:
the real frame ``unsolved.fits`` and a synthetic camera raw of the real sky.

Marked ``containers`` (deselect with ``-m "not containers"``); without an engine the test is
skipped, but in CI (``CI`` set) that is a failure: ``bin/install test`` installs podman.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from panoptes_network.core.names import parse_raw_name
from panoptes_network.core.topology import load_topology
from panoptes_network.local import containers
from panoptes_network.local.stack import LocalStack, patched_env, start_stack
from panoptes_network.synthetic.camera_raw import CameraMetadata, dng_bytes, raw_path
from panoptes_network.synthetic.star_field import StarFieldSpec, frame_spec_for, make_star_field
from polling import wait_for

pytestmark = [pytest.mark.containers, pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]

ROOT = Path(__file__).resolve().parents[1]
FRAME = "PAN001/C0C0C0/20160909T081152/20160909T081314.fits"
# Both solves, one blind (a camera raw carries no pointing), on a busy 2-core machine.
DEADLINE_SECONDS = 300
FINAL = ("solved", "unsolved", "rejected", "error")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> containers.Engine:
    try:
        return containers.find_engine(tmp_path_factory.mktemp("engine"))
    except containers.ContainerError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}: CI must have a container engine (bin/install test installs podman)")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def images(engine: containers.Engine, tmp_path_factory: pytest.TempPathFactory) -> list[containers.Built]:
    """Every image of the topology, built as bin/containers builds them (cached layers reused)."""
    names = load_topology().service_names
    for base in sorted({containers.base_image(ROOT / name / "Dockerfile") for name in names}):
        print(containers.ensure_base_image(engine, base), file=sys.stderr)
    started = time.monotonic()
    built = containers.build_all(engine, ROOT, load_topology(), tmp_path_factory.mktemp("builds"))
    print(f"all images in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return built


@pytest.fixture(scope="module")
def stack(engine: containers.Engine, images: list[containers.Built], tmp_path_factory) -> Iterator[LocalStack]:
    running = start_stack(f"containers-{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp("stack"), engine=engine)
    try:
        yield running
    finally:
        running.stop()


def test_every_image_is_built_and_small_where_it_should_be(images: list[containers.Built]) -> None:
    sizes = {b.service: b.size_bytes for b in images}
    assert set(sizes) == set(load_topology().service_names)
    # The goal for the services that import neither scipy, pyarrow nor LibRaw.
    small = ("image-received", "record-image", "compress-fits")
    assert {name: f"{sizes[name] / 1e6:.0f} MB" for name in small if sizes[name] >= 400e6} == {}


def real_sky_raw() -> tuple[str, bytes]:
    """A synthetic camera raw (DNG bytes under a ``.cr2`` name) whose stars are Tycho-2's."""
    spec = StarFieldSpec()
    mosaic, _, _ = make_star_field(spec)
    frame = frame_spec_for(spec)
    return raw_path(frame, "cr2"), dng_bytes(mosaic, frame, CameraMetadata())


def test_a_real_frame_and_a_camera_raw_are_solved_by_the_containers(stack: LocalStack, test_data: Path) -> None:
    from google.cloud import firestore, storage

    raw_name, raw_bytes = real_sky_raw()
    with patched_env(stack.client_env):
        gcs, db = storage.Client(), firestore.Client(project=stack.project)
        raw_bucket = gcs.bucket(stack.settings.bucket("raw"))
        raw_bucket.blob(FRAME).upload_from_string((test_data / "panoptes" / "unsolved.fits").read_bytes())
        raw_bucket.blob(raw_name).upload_from_string(raw_bytes)
        images = {}
        for name in (FRAME, raw_name):
            image_id = parse_raw_name(name.rsplit(".", 1)[0] + ".fits.fz").image_id
            images[name] = wait_for(
                lambda image_id=image_id: db.collection("images").document(image_id).get().to_dict() or {},
                f"{image_id} solved",
                DEADLINE_SECONDS,
                until=lambda image: image.get("status") in FINAL,
                every=1.0,
            )
        processed = {blob.name for blob in gcs.bucket(stack.settings.bucket("processed")).list_blobs()}
        rgb = {blob.name for blob in gcs.bucket(stack.settings.bucket("rgb")).list_blobs()}
        raw = {blob.name for blob in raw_bucket.list_blobs()}
    assert {name: image["status"] for name, image in images.items()} == {FRAME: "solved", raw_name: "solved"}
    assert abs(images[FRAME]["ra_image"] - 303.2101) < 0.02 and images[FRAME]["sources"]["matched"] >= 150
    assert images[FRAME]["steps"]["compress-fits"]["verified"] is True
    for name in (FRAME, raw_name):
        base = name.rsplit(".", 1)[0]
        assert {f"{base}.fits.fz", f"{base}.png", f"{base}-sources.parquet"} <= processed
        assert f"{base}.fits.fz" in raw
    raw_base = raw_name.rsplit(".", 1)[0]
    assert {f"{raw_base}{suffix}" for suffix in ("_r.fits", "_g.fits", "_b.fits", ".jpg")} <= rgb
    # the data explorer's image serves the same records and files
    image_id = parse_raw_name(FRAME.rsplit(".", 1)[0] + ".fits.fz").image_id
    explorer = stack.services["data-explorer"].url
    with urllib.request.urlopen(f"{explorer}/api/images/{image_id}", timeout=30) as response:
        view = json.load(response)
    assert view["status"] == "solved" and abs(view["wcs"]["ra"] - 303.2101) < 0.02
    with urllib.request.urlopen(explorer + view["quick_look_url"], timeout=30) as response:
        assert response.headers["Content-Type"] == "image/png" and response.read(8) == b"\x89PNG\r\n\x1a\n"


def test_stopping_the_stack_stops_every_container(engine: containers.Engine, stack: LocalStack) -> None:
    """Each service's handle is its engine client's PID: stopping it stops and removes the container."""
    services = list(stack.services.values())
    for server in services:
        server.stop()
    assert [s.name for s in services if s.process.poll() is None] == []
    assert containers.remove_stack_containers(engine, stack.project) == []
