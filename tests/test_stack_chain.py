"""The chain on the local cloud stack: uploads through google-cloud-storage, notifications,
push to every service under gunicorn, records in the Firestore emulator."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from panoptes_network.local.stack import LocalStack, patched_env
from polling import wait_for

pytestmark = pytest.mark.stack

DEADLINE_SECONDS = 60


@pytest.fixture(scope="module")
def clients(local_stack: LocalStack):
    from google.cloud import firestore, storage

    with patched_env(local_stack.client_env):
        yield storage.Client(), firestore.Client(project=local_stack.project)


def recorded(db, image_id: str) -> dict:
    """The image document once record-image is done on it."""
    return wait_for(
        lambda: db.collection("images").document(image_id).get().to_dict() or {},
        f"record-image finishing {image_id}",
        DEADLINE_SECONDS,
        until=lambda doc: doc.get("steps", {}).get("record-image", {}).get("state") == "done",
    )


def unique_camera() -> str:
    """The stack lives for the whole session: a camera id of its own keeps this test's images apart."""
    return "T" + uuid.uuid4().hex[:5]


def test_a_fits_upload_is_compressed_then_recorded(local_stack: LocalStack, clients, test_data: Path) -> None:
    gcs, db = clients
    raw = gcs.bucket(local_stack.settings.bucket("raw"))
    camera = unique_camera()
    name = f"PAN001/{camera}/20160909T081152/20160909T081314.fits"
    raw.blob(name).upload_from_string((test_data / "panoptes/unsolved.fits").read_bytes())
    image = recorded(db, f"PAN001_{camera}_20160909T081314")
    assert raw.get_blob(name) is None
    fz = raw.get_blob(name + ".fz")
    assert fz is not None and image["generation"] == fz.generation
    assert image["exptime"] == 120.4 and image["camera"]["temperature"] == 11.0
    assert image["steps"]["compress-fits"]["verified"] is True
    unit = db.collection("units").document("PAN001").get().to_dict()
    assert unit["location"].latitude == 19.54 and unit["num_images"] >= 1
    observation = db.collection("observations").document(f"PAN001_{camera}_20160909T081152").get().to_dict()
    assert observation["field_name"] == "KIC 8462852"


def test_a_solved_fz_upload_records_its_wcs_centre(local_stack: LocalStack, clients, test_data: Path) -> None:
    gcs, db = clients
    raw = gcs.bucket(local_stack.settings.bucket("raw"))
    camera = unique_camera()
    raw.blob(f"PAN001/{camera}/20160909T081152/20160909T081522.fits.fz").upload_from_string(
        (test_data / "panoptes/solved.fits.fz").read_bytes()
    )
    image = recorded(db, f"PAN001_{camera}_20160909T081522")
    assert image["ra_image"] == pytest.approx(303.2064, abs=1e-3)
    assert image["dec_image"] == pytest.approx(46.0174, abs=1e-3)
