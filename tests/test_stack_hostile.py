"""The decompression bomb on the local cloud stack (issue 18): uploaded as a .fits.fz and as a
.fits, each is a recorded rejection naming the limit, not a crash loop of redeliveries."""

from __future__ import annotations

import uuid

import pytest

from hostile_files import bomb_bytes
from panoptes_network.local.stack import LocalStack, patched_env
from polling import wait_for

pytestmark = pytest.mark.stack

DEADLINE_SECONDS = 60


@pytest.mark.parametrize(("extension", "step"), [("fits.fz", "record-image"), ("fits", "compress-fits")])
def test_the_bomb_is_a_recorded_rejection_on_the_stack(local_stack: LocalStack, extension: str, step: str) -> None:
    from google.cloud import firestore, storage

    camera = "B" + uuid.uuid4().hex[:5]  # the session's stack is shared: an image of our own
    name = f"PAN001/{camera}/20160909T081152/20160909T081314.{extension}"
    with patched_env(local_stack.client_env):
        gcs, db = storage.Client(), firestore.Client(project=local_stack.project)
        gcs.bucket(local_stack.settings.bucket("raw")).blob(name).upload_from_string(bomb_bytes())
        document = db.collection("images").document(f"PAN001_{camera}_20160909T081314")
        image = wait_for(
            lambda: document.get().to_dict() or {},
            f"{step} rejecting the bomb",
            DEADLINE_SECONDS,
            until=lambda doc: doc.get("status") == "rejected",
        )
    record = image["steps"][step]
    assert record["error_class"] == "OverLimit"
    assert "PANOPTES_MAX_IMAGE_PIXELS" in record["error"] and "900,000,000" in record["error"]
