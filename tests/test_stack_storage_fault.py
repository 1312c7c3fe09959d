"""Faults on the local stack: storage goes away in the middle of the chain and comes back.

fake-gcs-server is stopped while a full frame is between steps, and started again on the same
port with the same flags a few seconds later. The services answer 503 (the storage adapter's
``TransientError``) meanwhile, Pub/Sub pushes again, and the image completes exactly once:
one set of outputs, exact counters, one message per follow-on step. The stack is this module's
own (its storage on disk, so that objects survive the restart); the session's stack is untouched.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from fixtures_stack import running_stack
from panoptes_network.local.stack import LocalStack
from polling import wait_for
from stack_checks import Watch, assert_completed_once, request_lines

pytestmark = pytest.mark.stack

OUTAGE_SECONDS = 5.0  # at least this long without storage, and until a service has answered 503


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    yield from running_stack(tmp_path_factory, "storage-fault", storage_root=tmp_path_factory.mktemp("gcs"))


def test_storage_down_mid_chain_gives_503s_then_the_image_completes_once(stack: LocalStack) -> None:
    watch = Watch(stack)
    camera = "S" + uuid.uuid4().hex[:5]
    name, image_id, blob = watch.upload_star_field(camera)
    # Once record-image is done, subtract-background and plate-solve still have all their reads
    # and writes ahead of them: take storage away then.
    watch.wait_for_step(image_id, "record-image", 60)
    stopped = time.monotonic()
    stack.gcs.stop()
    wait_for(
        lambda: [
            r for r in request_lines(stack, image_id) if r["status"] == 503 and "storage unavailable" in r["reason"]
        ],
        "a 503 saying storage is unavailable",
        60,
    )
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
    stack.gcs.restart()
    outage = time.monotonic() - stopped
    raw = watch.gcs.bucket(stack.settings.bucket("raw"))
    assert raw.get_blob(name).generation == blob.generation  # kept on disk through the restart
    later = raw.blob(f"PAN001/{camera}/20261124T080000/20261124T080500.jpg")
    later.upload_from_string(b"not a frame")  # notifications flow again: image-received records it
    ignored = watch.db.collection("objects").document(quote(f"{raw.name}/{later.name}#{later.generation}", safe=""))
    assert (
        wait_for(lambda: ignored.get().to_dict(), "the upload after the restart being routed", 60)["status"]
        == "ignored"
    )

    assert_completed_once(watch, name, image_id)
    database = stack.services["plate-solver"].log_path.parent / "data" / "stamps.sqlite"
    with sqlite3.connect(database) as sql:
        rows, distinct = sql.execute(
            "SELECT COUNT(*), COUNT(DISTINCT source_id) FROM stamps WHERE image_id = ?", (image_id,)
        ).fetchone()
    assert rows == distinct > 100
    answered = request_lines(stack, image_id)
    refused = [r for r in answered if r["status"] == 503]
    assert refused and {r["step"] for r in refused} <= {"subtract-background", "plate-solver"}
    print(
        f"storage down {outage:.1f} s; {len(refused)} answers 503 "
        f"({', '.join(sorted({r['step'] for r in refused}))}); outcomes {[(r['step'], r['outcome']) for r in answered]}"
    )
