"""subtract-background on the local cloud stack: a raw .fits.fz in the (fake) raw bucket and a
message on the subtract-background topic reach plate-solve with the background file in place."""

from __future__ import annotations

import uuid

import pytest

from panoptes_network.core.messages import ObjectRef, StepMessage
from panoptes_network.local.stack import LocalStack, patched_env
from panoptes_network.science import fits_codec
from panoptes_network.science.background_model import load_model
from panoptes_network.synthetic.frames import FrameSpec, make_frame
from stack_checks import pull_matching

pytestmark = pytest.mark.stack

DEADLINE_SECONDS = 120


def test_a_raw_frame_reaches_plate_solve_with_its_background(local_stack: LocalStack) -> None:
    from google.cloud import pubsub_v1, storage

    spec = FrameSpec(shape=(300, 420), stars=30, seed=4, unit_id="PAN013")
    data, header = make_frame(spec)
    name = spec.path() + ".fz"
    with patched_env(local_stack.client_env):
        gcs, publisher, subscriber = storage.Client(), pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        subscription = subscriber.subscription_path(local_stack.project, f"test-{uuid.uuid4().hex[:8]}")
        subscriber.create_subscription(
            request={"name": subscription, "topic": subscriber.topic_path(local_stack.project, "plate-solve")}
        )
        blob = gcs.bucket(local_stack.settings.bucket("raw")).blob(name)
        blob.upload_from_string(fits_codec.compressed_file(data, header))
        ids = name.split("/")
        message = StepMessage(
            ObjectRef(blob.bucket.name, name, blob.generation),
            f"{ids[0]}_{ids[1]}_{ids[3].split('.')[0]}",
            f"{ids[0]}_{ids[1]}_{ids[2]}",
            {"file_kind": "fits.fz"},
        )
        payload, attributes = message.encode()
        publisher.publish(
            publisher.topic_path(local_stack.project, "subtract-background"), payload, **attributes
        ).result()
        received = pull_matching(  # other tests' images reach plate-solve too
            subscriber, subscription, lambda data: data["image_id"] == message.image_id, DEADLINE_SECONDS
        )
        assert received["name"] == name and received["generation"] == blob.generation
        background = received["background"]
        assert background["bucket"] == local_stack.settings.bucket("backgrounds")
        assert background["name"] == name.removesuffix(".fits.fz") + "-background.fits.fz"
        stored = gcs.bucket(background["bucket"]).blob(background["name"], generation=background["generation"])
        assert load_model(stored.download_as_bytes()).shape == data.shape
