"""Faults on the local stack: a worker killed in the middle of a plate solve. Pub/Sub pushes
the message again, the dead attempt's lease runs out, and the image completes exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import uuid
from pathlib import Path

import pytest

from panoptes_network.local.stack import LocalStack, patched_env
from panoptes_network.science.fits_codec import compressed_file
from panoptes_network.synthetic.star_field import StarFieldSpec, make_star_field
from polling import wait_for
from stack_checks import DEADLINE_SECONDS

pytestmark = pytest.mark.stack


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (gunicorn's workers under its master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_a_worker_killed_mid_solve_is_retried_and_the_image_completes_once(local_stack: LocalStack) -> None:
    from google.cloud import firestore, storage

    with patched_env(local_stack.client_env):
        gcs, db = storage.Client(), firestore.Client(project=local_stack.project)
    camera = "K" + uuid.uuid4().hex[:5]
    data, header, _ = make_star_field(StarFieldSpec())  # a full frame: the solve step runs for seconds
    name = f"PAN001/{camera}/20261124T080000/20261124T080203.fits.fz"
    image_id = f"PAN001_{camera}_20261124T080203"
    gcs.bucket(local_stack.settings.bucket("raw")).blob(name).upload_from_string(compressed_file(data, header))

    lease = db.collection("leases").document(f"plate-solver:{image_id}")
    wait_for(lambda: lease.get().exists, "the plate-solver taking the image", DEADLINE_SECONDS)
    master = local_stack.services["plate-solver"].pid
    [worker] = children(master)
    os.kill(worker, signal.SIGKILL)

    image = wait_for(
        lambda: db.collection("images").document(image_id).get().to_dict() or {},
        "the image completing after the kill",
        DEADLINE_SECONDS,
        until=lambda doc: doc.get("steps", {}).get("plate-solver", {}).get("state") == "done",
    )
    assert image["status"] == "solved"
    assert wait_for(lambda: [p for p in children(master) if p != worker], "gunicorn replacing its worker", 60)
    processed = gcs.bucket(local_stack.settings.bucket("processed")).get_blob(name)
    assert processed is not None
    database = Path(local_stack.services["plate-solver"].log_path).parent / "data" / "stamps.sqlite"
    with sqlite3.connect(database) as sql:
        rows, distinct = sql.execute(
            "SELECT COUNT(*), COUNT(DISTINCT source_id) FROM stamps WHERE image_id = ?", (image_id,)
        ).fetchone()
    assert rows == distinct > 100  # every matched star once, none twice
    assert not lease.get().exists  # released by the attempt that finished
