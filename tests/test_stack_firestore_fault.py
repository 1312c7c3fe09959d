"""Faults on the local stack: Firestore stops answering in the middle of the chain, then resumes.

The emulator keeps its data only in memory, so the outage is a pause (SIGSTOP of its process
group), not a restart: calls hang until the adapters' deadlines, the services answer 503
(``TransientError``), Pub/Sub pushes again, and the image completes exactly once. A step that
had published before it could record its outcome publishes the same message again on the
retry (publish, then record: at least once), and the next step answers that copy at once.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import pytest

from fixtures_stack import running_stack
from panoptes_network.local.stack import LocalStack
from polling import wait_for
from stack_checks import Watch, assert_completed_once, request_lines

pytestmark = pytest.mark.stack

OUTAGE_SECONDS = 6.0  # longer than a Firestore call's deadline (adapters: 5 s of retries)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    yield from running_stack(tmp_path_factory, "firestore-fault")


def test_firestore_paused_mid_chain_gives_503s_then_the_image_completes_once(stack: LocalStack) -> None:
    watch = Watch(stack)
    name, image_id, _ = watch.upload_star_field("F" + uuid.uuid4().hex[:5])
    watch.wait_for_step(image_id, "record-image", 60)
    group = os.getpgid(stack.firestore.pid)
    os.killpg(group, signal.SIGSTOP)
    try:
        wait_for(
            lambda: [
                r
                for r in request_lines(stack, image_id)
                if r["status"] == 503 and "Firestore unavailable" in r["reason"]
            ],
            "a 503 saying Firestore is unavailable",
            60,
        )
        time.sleep(OUTAGE_SECONDS)
    finally:
        os.killpg(group, signal.SIGCONT)

    assert_completed_once(watch, name, image_id, republished_ok=True)
    answered = request_lines(stack, image_id)
    refused = [r for r in answered if r["status"] == 503]
    assert refused and all(r["outcome"] == "transient" for r in refused)
    assert not [r for r in answered if r["status"] >= 500 and r["status"] != 503]  # no step recorded an error
    print(
        f"{len(refused)} answers 503 ({', '.join(sorted({r['step'] for r in refused}))}); "
        f"outcomes {[(r['step'], r['outcome']) for r in answered]}"
    )
