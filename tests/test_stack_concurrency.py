"""The same message many times at once, through the whole local stack, with the plate-solver
writing its stamps to a real PostgreSQL database (a fresh one for this module, dropped after).

One full frame is uploaded; its storage notification is then published 5 more times at once,
and the plate-solve message (as Pub/Sub pushed it) is POSTed 5 times at once straight to the
plate-solver while it solves, each copy asked again until it is acknowledged, as Pub/Sub
would. Leases and done records must make it one piece of work per step: one set of outputs,
exact counters, one message per follow-on topic, and each star's stamp row once in SQL.
"""

from __future__ import annotations

import base64
import concurrent.futures
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import requests
import sqlalchemy as sa

from fixtures_servers import POSTGRES, postgres_engine
from fixtures_stack import running_stack
from panoptes_network.adapters.sql_tables import engine_for
from panoptes_network.core.messages import ObjectRef, storage_notification
from panoptes_network.core.topology import load_topology
from panoptes_network.local.stack import LocalStack
from polling import wait_for
from stack_checks import DEADLINE_SECONDS, Watch, assert_completed_once, request_lines

pytestmark = pytest.mark.stack

COPIES = 5
ACKNOWLEDGED = 204


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A database of its own on the test server (the stack's services connect to it by URL)."""
    server = postgres_engine(isolation_level="AUTOCOMMIT")
    name = f"panoptes_{uuid.uuid4().hex[:12]}"
    with server.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[LocalStack]:
    yield from running_stack(tmp_path_factory, "concurrency", database_url=database_url)


def all_at_once(action: Callable[[int], object], copies: int = COPIES) -> list:
    """``action(i)`` in ``copies`` threads released together by a barrier; the results in order."""
    barrier = threading.Barrier(copies)

    def run(i: int) -> object:
        barrier.wait(timeout=30)
        return action(i)

    with concurrent.futures.ThreadPoolExecutor(copies) as pool:
        return list(pool.map(run, range(copies)))


def push_body(message, subscription: str) -> dict:
    """The push envelope Pub/Sub sends for ``message`` (a ``PubsubMessage``)."""
    return {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
            "publishTime": message.publish_time.isoformat(),
        },
        "subscription": subscription,
    }


def post_until_acknowledged(url: str, body: dict, seconds: float = 120) -> list[int]:
    """POST like a push subscription: again every second until acknowledged; every status seen."""
    statuses: list[int] = []

    def post() -> list[int]:
        statuses.append(requests.post(url, json=body, timeout=60).status_code)
        return statuses

    return wait_for(post, f"{url} acknowledging", seconds, until=lambda seen: seen[-1] == ACKNOWLEDGED, every=1.0)


def acknowledged(stack: LocalStack, image_id: str, step: str) -> set[str]:
    """Message ids ``step`` acknowledged for the image."""
    return {
        r["message_id"] for r in request_lines(stack, image_id) if r["step"] == step and r["status"] == ACKNOWLEDGED
    }


def test_the_same_messages_at_once_make_one_set_of_effects(stack: LocalStack, database_url: str) -> None:
    from google.cloud import pubsub_v1

    watch = Watch(stack)
    name, image_id, blob = watch.upload_star_field("C" + uuid.uuid4().hex[:5])

    data, attributes = storage_notification(
        ObjectRef(blob.bucket.name, name, blob.generation), blob.size, blob.content_type
    )
    topic = watch.publisher.topic_path(stack.project, "image-received")
    all_at_once(lambda _: watch.publisher.publish(topic, data, **attributes).result(timeout=30))

    # One pull, not published(): the copies must arrive while the first attempt still solves.
    [plate_solve] = wait_for(lambda: watch.pull("plate-solve"), "the plate-solve message", 120)
    subscription = pubsub_v1.SubscriberClient.subscription_path(
        stack.project, load_topology().service("plate-solver").subscription
    )
    body = push_body(plate_solve, subscription)
    url = stack.services["plate-solver"].url + "/"
    posted = all_at_once(lambda _: post_until_acknowledged(url, body))

    # The storage notification: once from fake-gcs-server, COPIES times from us.
    wait_for(
        lambda: acknowledged(stack, image_id, "image-received"),
        "every notification acknowledged",
        DEADLINE_SECONDS,
        until=lambda ids: len(ids) == COPIES + 1,
    )
    image = assert_completed_once(watch, name, image_id)

    def solver_acknowledged() -> int:  # the push (Pub/Sub retries it after each 503) and each copy
        return sum(r["step"] == "plate-solver" and r["status"] == ACKNOWLEDGED for r in request_lines(stack, image_id))

    wait_for(lambda: solver_acknowledged() >= COPIES + 1, "the push and every copy acknowledged", seconds=120)
    answered = request_lines(stack, image_id)
    solver = [r for r in answered if r["step"] == "plate-solver"]
    held = [r for r in solver if r["status"] == 503 and "holds the lease" in r["reason"]]
    assert held  # copies really arrived while another attempt was solving
    finished = Counter(r["outcome"] for r in solver if r["status"] == ACKNOWLEDGED)  # the push and each copy
    assert finished["done"] == 1 and set(finished) == {"done", "already_done"} and finished.total() >= COPIES + 1

    with engine_for(database_url).connect() as connection:
        rows, distinct = connection.execute(
            sa.text("SELECT COUNT(*), COUNT(DISTINCT source_id) FROM stamps WHERE image_id = :id"), {"id": image_id}
        ).one()
    assert rows == distinct > 100
    assert image["steps"]["plate-solver"]["stamps"] == {"database": "postgresql", "rows": rows}
    print(
        f"plate-solver answers: {sorted((r['outcome'], r['status']) for r in solver)}; "
        f"posted copies saw {posted}; image-received outcomes "
        f"{sorted(r['outcome'] for r in answered if r['step'] == 'image-received')}"
    )
