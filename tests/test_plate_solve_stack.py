"""plate-solver as a Cloud Run-style service on the local stack: the real crop uploaded as a
``.fits.fz`` goes through every service and ends solved, with its outputs in the processed bucket."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits

from panoptes_network.local.stack import LocalStack, patched_env
from panoptes_network.science import fits_codec
from polling import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]

NAME = "PAN001/XXXXXX/20160909T081152/20160909T081314.fits.fz"
IMAGE_ID = "PAN001_XXXXXX_20160909T081314"


def test_an_uploaded_frame_is_solved_by_the_service(local_stack: LocalStack, test_data: Path) -> None:
    from google.cloud import firestore, storage

    with fits.open(test_data / "panoptes" / "unsolved.fits") as hdus:
        data = fits_codec.compressed_file(hdus[0].data, hdus[0].header)
    with patched_env(local_stack.client_env):
        gcs, db = storage.Client(), firestore.Client(project=local_stack.project)
        gcs.bucket(local_stack.settings.bucket("raw")).blob(NAME).upload_from_string(data)
        image = wait_for_final_status(db.collection("images").document(IMAGE_ID))
        assert image["status"] == "solved" and image["solved"] is True
        assert abs(image["ra_image"] - 303.2101) < 0.02 and image["sources"]["matched"] >= 150
        assert image["steps"]["plate-solver"]["solve"]["tier"] == "hinted"
        processed = {blob.name for blob in gcs.bucket(local_stack.settings.bucket("processed")).list_blobs()}
    base = NAME.removesuffix(".fits.fz")
    assert {f"{base}.fits.fz", f"{base}.png", f"{base}-sources.parquet"} <= processed


def wait_for_final_status(document, seconds: float = 90) -> dict:
    """The image once plate-solve has decided (or failed), else fail showing how far it got."""
    return wait_for(
        lambda: document.get().to_dict() or {},
        "the image's final status",
        seconds,
        until=lambda image: image.get("status") in ("solved", "unsolved", "rejected", "error"),
        every=0.5,
    )
