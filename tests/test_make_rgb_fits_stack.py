"""make-rgb-fits on the local cloud stack: a synthetic .cr2 uploaded with the real client comes
back as the raw .fits.fz, three colour FITS and a JPEG, and the .fits.fz's own notification
carries it on to record-image."""

from __future__ import annotations

import uuid

import pytest

from panoptes_network.local.stack import LocalStack, patched_env
from panoptes_network.synthetic.camera_raw import make_raw, raw_path
from panoptes_network.synthetic.frames import FrameSpec
from polling import wait_for
from stack_checks import pull_matching

pytestmark = pytest.mark.stack

DEADLINE_SECONDS = 60
SPEC = FrameSpec(unit_id="PAN013", camera_id="0a1b2c", shape=(600, 900), stars=40)


def wait_for_blob(bucket, name: str):
    return wait_for(lambda: bucket.get_blob(name), f"{bucket.name}/{name}", DEADLINE_SECONDS, every=0.3)


def test_an_uploaded_cr2_becomes_fits_and_a_preview_and_reaches_record_image(local_stack: LocalStack) -> None:
    from google.cloud import pubsub_v1, storage

    with patched_env(local_stack.client_env):
        gcs, subscriber = storage.Client(), pubsub_v1.SubscriberClient()
        subscription = subscriber.subscription_path(local_stack.project, f"test-rgb-{uuid.uuid4().hex[:8]}")
        subscriber.create_subscription(
            request={"name": subscription, "topic": subscriber.topic_path(local_stack.project, "record-image")}
        )
        raw_bucket = gcs.bucket(local_stack.settings.bucket("raw"))
        rgb_bucket = gcs.bucket(local_stack.settings.bucket("rgb"))
        name = raw_path(SPEC, "CR2")
        raw_bucket.blob(name).upload_from_string(make_raw(SPEC)[1])
        base = name.rsplit(".", 1)[0]
        fits_fz = wait_for_blob(raw_bucket, f"{base}.fits.fz")
        assert fits_fz.download_as_bytes()[:9] == b"SIMPLE  ="
        for suffix in ("_r.fits", "_g.fits", "_b.fits"):
            assert wait_for_blob(rgb_bucket, base + suffix).size > 600 * 900 * 2
        assert wait_for_blob(rgb_bucket, f"{base}.jpg").download_as_bytes()[:2] == b"\xff\xd8"
        message = pull_matching(
            subscriber, subscription, lambda data: data.get("name") == f"{base}.fits.fz", DEADLINE_SECONDS
        )
        assert message["generation"] == fits_fz.generation
        assert message["image_id"] == "PAN013_0a1b2c_" + base.rsplit("/", 1)[1]
