"""``reprocess --cloud`` on the local stack: Firestore selects, Pub/Sub carries the rerun, the
services run the finished steps again once, and nothing is counted or stored twice."""

from __future__ import annotations

import json
import uuid

import pytest

from panoptes_network.drivers.cli import main
from panoptes_network.local.stack import LocalStack, patched_env
from panoptes_network.science.fits_codec import compressed_file
from panoptes_network.synthetic.star_field import StarFieldSpec, make_star_field
from polling import wait_for
from stack_checks import DEADLINE_SECONDS

pytestmark = pytest.mark.stack


def test_reprocess_through_the_stack_reruns_the_chain_once(local_stack: LocalStack, capsys) -> None:
    from google.cloud import firestore, storage

    with patched_env(local_stack.client_env):
        gcs, db = storage.Client(), firestore.Client(project=local_stack.project)
    unit, camera = "PAN917", "R" + uuid.uuid4().hex[:5]
    data, header, _ = make_star_field(StarFieldSpec(shape=(700, 700)))
    name = f"{unit}/{camera}/20261124T080000/20261124T080203.fits.fz"
    image_id = f"{unit}_{camera}_20261124T080203"
    gcs.bucket(local_stack.settings.bucket("raw")).blob(name).upload_from_string(compressed_file(data, header))
    image_doc = db.collection("images").document(image_id)

    def steps() -> dict:
        return (image_doc.get().to_dict() or {}).get("steps", {})

    first = wait_for(
        steps, "the first solve", DEADLINE_SECONDS, until=lambda now: now.get("plate-solver", {}).get("state") == "done"
    )
    processed = gcs.bucket(local_stack.settings.bucket("processed")).get_blob(name)
    capsys.readouterr()

    argv = ["reprocess", "--cloud", "--json", "--quiet", "--unit", unit, "--step", "record-image", "--rate", "5"]
    with patched_env(local_stack.client_env):
        assert main(argv) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["image_id"], row["step"], row["result"]) == (image_id, "record-image", "published")

    def rerun_finished(now: dict) -> bool:
        token = now.get("record-image", {}).get("rerun")
        return bool(token) and now.get("plate-solver", {}).get("rerun") == token

    after = wait_for(steps, "the rerun reaching the plate-solver", DEADLINE_SECONDS, until=rerun_finished)
    for step in ("record-image", "subtract-background", "plate-solver"):
        assert after[step]["state"] == "done"
        assert after[step]["message_id"] != first[step]["message_id"]
    assert after["record-image"]["counted"] is False  # counted once, on the first run
    assert after["plate-solver"]["outputs"]["processed"]["state"] == "identical"
    assert gcs.bucket(local_stack.settings.bucket("processed")).get_blob(name).generation == processed.generation
    assert image_doc.get().to_dict()["status"] == "solved"
    for collection, doc_id in (("units", unit), ("observations", f"{unit}_{camera}_20261124T080000")):
        assert db.collection(collection).document(doc_id).get().to_dict()["num_images"] == 1
