"""One contract, every implementation: local stand-ins and real clients against real servers.

Each test runs against the embedded implementation and the cloud one (on fake-gcs-server, the
Pub/Sub emulator or the Firestore emulator, marked ``stack``), so the two cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import pubsub_v1, storage

from panoptes_network.adapters.firestore_metadata import FirestoreMetadata
from panoptes_network.adapters.folder_storage import FolderStorage
from panoptes_network.adapters.gcs_storage import GcsStorage
from panoptes_network.adapters.metadata import MetadataStore
from panoptes_network.adapters.publisher import Publisher, QueuePublisher
from panoptes_network.adapters.pubsub_publisher import PubSubPublisher
from panoptes_network.adapters.sqlite_metadata import SqliteMetadata
from panoptes_network.adapters.storage import Storage
from panoptes_network.core.errors import AlreadyExists, NotFound, PreconditionFailed, TransientError
from panoptes_network.core.geo_point import GeoPoint
from panoptes_network.core.messages import ObjectRef
from panoptes_network.local.emulators import free_port
from polling import returns_within, wait_for
from step_harness import drain_messages

RAW = "PAN001/14d3bd/20181011T134202/20181011T134333.fits.fz"
ACK_DEADLINE_SECONDS = 30  # a push's: an unreachable backend must be a TransientError well before it

# ---------------------------------------------------------------- storage


@pytest.fixture(params=["folder", pytest.param("gcs", marks=pytest.mark.stack)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Storage, str]:
    """A storage implementation and an empty bucket in it."""
    if request.param == "folder":
        return FolderStorage(tmp_path), "test-bucket"
    client, bucket = request.getfixturevalue("gcs_bucket")
    return GcsStorage(client), bucket


def test_written_object_reads_back_whole_in_ranges_and_in_stat_and_list(store: tuple[Storage, str]) -> None:
    storage_, bucket = store
    data = b"SIMPLE  =                    T" + bytes(100)
    ref = storage_.write_new(bucket, RAW, data, "application/fits")

    assert (ref.bucket, ref.name) == (bucket, RAW) and ref.generation > 0
    assert storage_.read(ref) == data
    assert storage_.read_range(ref, 0, 6) == b"SIMPLE"
    assert storage_.read_range(ref, 10, 20) == data[10:20]
    assert storage_.read_range(ref, len(data) - 3, len(data) + 50) == data[-3:]
    assert storage_.read_range(ref, len(data), len(data) + 5) == b""
    assert storage_.read_range(ref, 5, 5) == b""
    info = storage_.stat(bucket, RAW)
    assert info is not None and info.ref == ref and info.size == len(data)
    assert info.updated is not None and info.updated.tzinfo is not None
    assert storage_.stat(bucket, RAW + ".missing") is None
    assert [i.ref for i in storage_.list(bucket, "PAN001/")] == [ref]
    assert list(storage_.list(bucket, "PAN002/")) == []


def test_create_only_write_refuses_an_existing_name(store: tuple[Storage, str]) -> None:
    storage_, bucket = store
    ref = storage_.write_new(bucket, RAW, b"first")
    with pytest.raises(AlreadyExists):
        storage_.write_new(bucket, RAW, b"second")
    assert storage_.read(ref) == b"first"
    assert storage_.stat(bucket, RAW).ref == ref  # type: ignore[union-attr]


def test_reading_a_generation_that_is_not_live_is_not_found(store: tuple[Storage, str]) -> None:
    storage_, bucket = store
    old = storage_.write_new(bucket, RAW, b"old")
    storage_.delete(old)
    new = storage_.write_new(bucket, RAW, b"new content")
    assert new.generation != old.generation

    for wrong in (old, ObjectRef(bucket, RAW, new.generation + 1)):
        with pytest.raises(NotFound):
            storage_.read(wrong)
        with pytest.raises(NotFound):
            storage_.read_range(wrong, 0, 3)
        with pytest.raises(NotFound):
            storage_.read_range(wrong, 100, 200)
    with pytest.raises(NotFound):
        storage_.read(ObjectRef(bucket, RAW + ".missing", new.generation))
    assert storage_.read(new) == b"new content"


def test_delete_needs_the_live_generation(store: tuple[Storage, str]) -> None:
    storage_, bucket = store
    ref = storage_.write_new(bucket, RAW, b"keep me")
    with pytest.raises(PreconditionFailed):
        storage_.delete(ObjectRef(bucket, RAW, ref.generation + 1))
    assert storage_.stat(bucket, RAW).ref == ref  # type: ignore[union-attr]
    assert storage_.read(ref) == b"keep me"

    storage_.delete(ref)
    assert storage_.stat(bucket, RAW) is None
    assert list(storage_.list(bucket)) == []
    with pytest.raises(NotFound):
        storage_.read(ref)
    with pytest.raises(NotFound):
        storage_.delete(ref)


def test_create_only_holds_for_large_objects_too(store: tuple[Storage, str]) -> None:
    """Above 8 MB the Cloud Storage client uploads in resumable sessions (fake-gcs-server does not
    enforce their precondition itself; the adapter must still refuse)."""
    storage_, bucket = store
    first = storage_.write_new(bucket, RAW, b"a" * (9 << 20))
    with pytest.raises(AlreadyExists):
        storage_.write_new(bucket, RAW, b"b" * (9 << 20))
    assert storage_.stat(bucket, RAW).ref == first  # type: ignore[union-attr]


def test_replace_needs_the_live_generation_and_makes_a_new_one(store: tuple[Storage, str]) -> None:
    storage_, bucket = store
    first = storage_.write_new(bucket, RAW, b"first result")
    with pytest.raises(PreconditionFailed):
        storage_.replace(ObjectRef(bucket, RAW, first.generation + 1), b"never written")
    assert storage_.read(first) == b"first result"

    second = storage_.replace(first, b"second result", "application/fits")
    assert second.generation != first.generation
    assert storage_.read(second) == b"second result"
    assert storage_.stat(bucket, RAW).ref == second  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        storage_.read(first)
    with pytest.raises(PreconditionFailed):  # the compared generation is gone: never overwrite the newer one
        storage_.replace(first, b"stale rerun")
    with pytest.raises(NotFound):
        storage_.replace(ObjectRef(bucket, RAW + ".missing", 1), b"nothing there")


def test_binary_content_round_trips(store: tuple[Storage, str]) -> None:
    storage_, bucket = store
    data = bytes(range(256)) * 3
    ref = storage_.write_new(bucket, "binary.bin", data)
    assert storage_.read(ref) == data
    assert storage_.read_range(ref, 250, 262) == data[250:262]


def test_nested_names_list_by_prefix_in_name_order(store: tuple[Storage, str]) -> None:
    storage_, bucket = store
    names = ["a/b/c/d.fits", "a/b/e.fits", "a/bz.fits", "z.fits"]
    refs = {name: storage_.write_new(bucket, name, name.encode()) for name in reversed(names)}
    assert [i.ref for i in storage_.list(bucket)] == [refs[n] for n in names]
    assert [i.ref.name for i in storage_.list(bucket, "a/b/")] == ["a/b/c/d.fits", "a/b/e.fits"]
    assert [i.ref.name for i in storage_.list(bucket, "a/b")] == ["a/b/c/d.fits", "a/b/e.fits", "a/bz.fits"]
    assert storage_.read(refs["a/b/c/d.fits"]) == b"a/b/c/d.fits"


# ---------------------------------------------------------------- publisher

Received = list[tuple[bytes, dict[str, str]]]


class QueueChannel:
    """The in-process queue and a way to drain what was published to one topic."""

    def __init__(self) -> None:
        self.publisher = QueuePublisher()

    def subscribe(self, topic: str) -> None:
        pass

    def receive(self, topic: str, count: int) -> Received:
        return [(m.data, dict(m.attributes)) for m in drain_messages(self.publisher) if m.topic == topic]


class PubSubChannel:
    """The Pub/Sub emulator, received through a pull subscription made by the test."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.publisher = PubSubPublisher(project)
        self.subscriber = pubsub_v1.SubscriberClient()

    def _subscription(self, topic: str) -> str:
        return self.subscriber.subscription_path(self.project, f"{topic}-test")

    def subscribe(self, topic: str) -> None:
        topic_path = self.publisher.client.topic_path(self.project, topic)
        self.publisher.client.create_topic(name=topic_path)
        self.subscriber.create_subscription(name=self._subscription(topic), topic=topic_path)

    def receive(self, topic: str, count: int) -> Received:
        messages: Received = []

        def pulled() -> Received:
            response = self.subscriber.pull(subscription=self._subscription(topic), max_messages=10, timeout=5)
            if response.received_messages:
                self.subscriber.acknowledge(
                    subscription=self._subscription(topic), ack_ids=[m.ack_id for m in response.received_messages]
                )
            messages.extend((m.message.data, dict(m.message.attributes)) for m in response.received_messages)
            return messages

        return wait_for(pulled, f"{count} message(s) on {topic}", 30, until=lambda got: len(got) >= count)


@pytest.fixture(params=["queue", pytest.param("pubsub", marks=pytest.mark.stack)])
def channel(request: pytest.FixtureRequest) -> Iterator[QueueChannel | PubSubChannel]:
    if request.param == "queue":
        yield QueueChannel()
        return
    chan = PubSubChannel(request.getfixturevalue("pubsub_project"))
    yield chan
    chan.subscriber.close()


def test_published_messages_arrive_with_data_and_attributes(channel: QueueChannel | PubSubChannel) -> None:
    publisher: Publisher = channel.publisher
    channel.subscribe("record-image")
    channel.subscribe("plate-solve")
    sent = [
        (b'{"bucket": "panoptes-raw-images", "generation": 1}', {"schema_version": "1"}),
        (bytes(range(256)), {"schema_version": "1", "kind": "binary"}),
    ]
    ids = [publisher.publish("record-image", data, attributes) for data, attributes in sent]
    publisher.publish("plate-solve", b"elsewhere", {})

    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == 2
    assert sorted(channel.receive("record-image", 2)) == sorted(sent)


# ---------------------------------------------------------------- metadata


@pytest.fixture(params=["sqlite", pytest.param("firestore", marks=pytest.mark.stack)])
def metadata(request: pytest.FixtureRequest, tmp_path: Path) -> MetadataStore:
    if request.param == "sqlite":
        return SqliteMetadata(tmp_path / "metadata.sqlite")
    return FirestoreMetadata(request.getfixturevalue("firestore_project"))


def test_create_succeeds_once_and_keeps_the_first_fields(metadata: MetadataStore) -> None:
    assert metadata.create("images", "PAN001_14d3bd_20181011T134333", {"status": "received", "n": 1}) is True
    assert metadata.create("images", "PAN001_14d3bd_20181011T134333", {"status": "other", "n": 2}) is False
    assert metadata.get("images", "PAN001_14d3bd_20181011T134333") == {"status": "received", "n": 1}


def test_get_of_a_missing_document_is_none(metadata: MetadataStore) -> None:
    metadata.create("images", "present", {"a": 1})
    assert metadata.get("images", "absent") is None
    assert metadata.get("observations", "present") is None


def test_merge_deep_merges_nested_maps(metadata: MetadataStore) -> None:
    metadata.create("images", "img", {"status": "received", "exptime": 120.0})
    metadata.merge("images", "img", {"steps": {"a": {"state": "done", "attempts": 1}}})
    metadata.merge("images", "img", {"steps": {"b": {"state": "running"}}, "status": "recorded"})
    metadata.merge("images", "img", {"steps": {"a": {"attempts": 2}}})
    assert metadata.get("images", "img") == {
        "status": "recorded",
        "exptime": 120.0,
        "steps": {"a": {"state": "done", "attempts": 2}, "b": {"state": "running"}},
    }
    metadata.merge("images", "new", {"tags": ["x", "y"], "ok": True, "none": None})
    assert metadata.get("images", "new") == {"tags": ["x", "y"], "ok": True, "none": None}


def test_list_filters_by_equality_orders_by_id_and_limits(metadata: MetadataStore) -> None:
    for i, unit in enumerate(["PAN002", "PAN001", "PAN001", "PAN002", "PAN001"]):
        metadata.create("images", f"img-{i}", {"unit_id": unit, "status": "received" if i != 4 else "solved"})
    metadata.create("observations", "img-9", {"unit_id": "PAN001", "status": "received"})

    assert [i for i, _ in metadata.list("images")] == [f"img-{i}" for i in range(5)]
    found = metadata.list("images", where={"unit_id": "PAN001"})
    assert [i for i, _ in found] == ["img-1", "img-2", "img-4"]
    assert found[0][1] == {"unit_id": "PAN001", "status": "received"}
    both = metadata.list("images", where={"unit_id": "PAN001", "status": "received"})
    assert [i for i, _ in both] == ["img-1", "img-2"]
    assert [i for i, _ in metadata.list("images", where={"unit_id": "PAN001"}, limit=2)] == ["img-1", "img-2"]
    assert metadata.list("images", where={"unit_id": "PAN009"}) == []


def test_aware_datetimes_round_trip(metadata: MetadataStore) -> None:
    utc = dt.datetime(2018, 10, 11, 13, 43, 33, 123456, tzinfo=dt.UTC)
    local = dt.datetime(2020, 3, 19, 23, 27, 8, tzinfo=dt.timezone(dt.timedelta(hours=-10)))
    metadata.create("images", "img", {"time": utc, "steps": {"a": {"started": local}}})
    doc = metadata.get("images", "img")
    assert doc is not None
    assert doc["time"] == utc and doc["time"].utcoffset() is not None
    assert doc["steps"]["a"]["started"] == local


def test_concurrent_creates_of_one_document_succeed_exactly_once(metadata: MetadataStore) -> None:
    start = threading.Barrier(5)
    results: list[bool] = []

    def create(worker: int) -> None:
        start.wait()
        results.append(metadata.create("observations", "PAN001_14d3bd_20181011T134202", {"worker": worker}))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False] * 4 + [True]
    doc = metadata.get("observations", "PAN001_14d3bd_20181011T134202")
    assert doc is not None and doc["worker"] in range(5)


def test_replace_field_deciding_on_the_document_never_undoes_a_write_made_meanwhile(metadata: MetadataStore) -> None:
    """The next step records ``unsolved`` while this one decides to write ``background_subtracted``
    from an older read: the decision must be taken again on what is there (or the write wait)."""
    metadata.create("images", "race", {"status": "recorded"})
    later_step = {"status": "unsolved", "steps": {"plate-solver": {"state": "done"}}}
    competitor = threading.Thread(target=metadata.merge, args=("images", "race", later_step))
    seen: list[str] = []

    def decide(image: dict) -> dict:
        seen.append(image.get("status"))
        if len(seen) == 1:  # the other writer gets in between this read and this write, if it can
            competitor.start()
            competitor.join(1.0)
        return {} if image.get("status") == "unsolved" else {"status": "background_subtracted"}

    metadata.replace_field("images", "race", ("steps", "subtract-background"), {"state": "done"}, decide)
    competitor.join(30)
    assert metadata.get("images", "race") == {
        "status": "unsolved",
        "steps": {"plate-solver": {"state": "done"}, "subtract-background": {"state": "done"}},
    }
    assert seen[0] == "recorded"


def test_replace_field_deciding_none_writes_nothing(metadata: MetadataStore) -> None:
    metadata.create("images", "kept", {"status": "solved", "steps": {"plate-solver": {"state": "done"}}})
    metadata.replace_field("images", "kept", ("steps", "plate-solver"), {"state": "error"}, lambda image: None)
    assert metadata.get("images", "kept") == {"status": "solved", "steps": {"plate-solver": {"state": "done"}}}
    metadata.replace_field("images", "absent", ("steps", "x"), {"state": "error"}, lambda image: None)
    assert metadata.get("images", "absent") is None


def test_replace_field_replaces_one_nested_map_whole(metadata: MetadataStore) -> None:
    metadata.merge("images", "img", {"status": "received", "steps": {"a": {"x": 1, "y": 2}, "b": {"z": 3}}})
    metadata.replace_field("images", "img", ("steps", "a"), {"y": 5})
    assert metadata.get("images", "img") == {"status": "received", "steps": {"a": {"y": 5}, "b": {"z": 3}}}
    metadata.replace_field("images", "new", ("steps", "c"), {"w": [1, 2]})
    assert metadata.get("images", "new") == {"steps": {"c": {"w": [1, 2]}}}
    # with fields merged in the same write: maps merge key by key, the path is replaced whole
    metadata.merge("images", "img", {"camera": {"iso": 100}})
    metadata.replace_field(
        "images",
        "img",
        ("steps", "a"),
        {"z": 1},
        {"status": "solved", "camera": {"temp": 11}, "steps": {"b": {"q": 2}}},
    )
    assert metadata.get("images", "img") == {
        "status": "solved",
        "camera": {"iso": 100, "temp": 11},
        "steps": {"a": {"z": 1}, "b": {"z": 3, "q": 2}},
    }


def test_geopoints_round_trip(metadata: MetadataStore) -> None:
    metadata.create("units", "PAN001", {"location": GeoPoint(19.54, -155.58), "nested": {"at": GeoPoint(-1.5, 2.0)}})
    doc = metadata.get("units", "PAN001")
    assert doc == {"location": GeoPoint(19.54, -155.58), "nested": {"at": GeoPoint(-1.5, 2.0)}}
    assert metadata.list("units")[0][1]["location"] == GeoPoint(19.54, -155.58)


def test_counting_with_a_marker_counts_each_marker_once(metadata: MetadataStore) -> None:
    increments = {
        ("observations", "seq"): {"num_images": 1, "total_exptime": 120.5},
        ("units", "PAN001"): {"num_images": 1},
    }
    metadata.merge("observations", "seq", {"field_name": "KIC 8462852"})
    assert metadata.create_with_increments("counted", "img-1", {"exptime": 120.5}, increments) is True
    assert metadata.create_with_increments("counted", "img-1", {"exptime": 120.5}, increments) is False
    assert metadata.create_with_increments("counted", "img-2", {"exptime": 120.5}, increments) is True
    assert metadata.get("observations", "seq") == {"field_name": "KIC 8462852", "num_images": 2, "total_exptime": 241.0}
    assert metadata.get("units", "PAN001") == {"num_images": 2}
    assert metadata.get("counted", "img-1") == {"exptime": 120.5}


def test_concurrent_counting_of_one_marker_counts_once(metadata: MetadataStore) -> None:
    start = threading.Barrier(5)
    results: list[bool] = []

    def count() -> None:
        start.wait()
        results.append(metadata.create_with_increments("counted", "img", {}, {("units", "PAN001"): {"num_images": 1}}))

    threads = [threading.Thread(target=count) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False] * 4 + [True]
    assert metadata.get("units", "PAN001") == {"num_images": 1}


def test_a_lease_is_held_until_it_expires_or_is_released(metadata: MetadataStore) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    later = now + dt.timedelta(seconds=60)
    assert metadata.claim_lease("leases", "step:img", "a", now, later) is True
    assert metadata.claim_lease("leases", "step:img", "b", now, later) is False
    assert metadata.claim_lease("leases", "step:img", "a", now, later) is True  # the holder may renew
    assert (
        metadata.claim_lease(
            "leases", "step:img", "b", later + dt.timedelta(seconds=1), later + dt.timedelta(seconds=90)
        )
        is True
    )
    metadata.release_lease("leases", "step:img", "a")  # no longer a's: nothing happens
    assert metadata.claim_lease("leases", "step:img", "c", later, later) is False
    metadata.release_lease("leases", "step:img", "b")
    assert metadata.claim_lease("leases", "step:img", "c", now, later) is True


def test_concurrent_claims_of_one_lease_succeed_once(metadata: MetadataStore) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    start = threading.Barrier(5)
    results: list[bool] = []

    def claim(worker: int) -> None:
        start.wait()
        results.append(metadata.claim_lease("leases", "x", f"w{worker}", now, now + dt.timedelta(seconds=30)))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False] * 4 + [True]


# ---------------------------------------------------------------- unavailable backends


def _closed_gcs() -> GcsStorage:
    client = storage.Client(
        project="test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://127.0.0.1:{free_port()}"},
    )
    return GcsStorage(client)


def _assert_transient_quickly(call: Callable[[], Any]) -> None:
    with pytest.raises(TransientError):
        returns_within(call, "a TransientError from an unreachable backend", ACK_DEADLINE_SECONDS)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.read(ObjectRef("b", "x", 1)),
        lambda s: s.write_new("b", "x", b"data"),
        lambda s: list(s.list("b")),
    ],
    ids=["read", "write_new", "list"],
)
def test_unreachable_storage_is_transient_within_a_bound(call: Callable[[GcsStorage], Any]) -> None:
    store = _closed_gcs()
    _assert_transient_quickly(lambda: call(store))


def test_unreachable_firestore_is_transient_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    metadata = FirestoreMetadata(f"test-{uuid.uuid4().hex[:8]}")
    _assert_transient_quickly(lambda: metadata.get("images", "img"))
    _assert_transient_quickly(lambda: metadata.create("images", "img", {"a": 1}))


def test_unreachable_pubsub_is_transient_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    publisher = PubSubPublisher("test")
    _assert_transient_quickly(lambda: publisher.publish("record-image", b"{}", {"schema_version": "1"}))


def test_a_held_lease_is_renewed_while_its_block_runs_and_released_after() -> None:
    """leases.lease over the SQLite store: held past its nominal length while renewed, then gone."""
    import tempfile

    from panoptes_network.core.leases import LEASES, lease

    with tempfile.TemporaryDirectory() as folder:
        store = SqliteMetadata(Path(folder) / "m.sqlite")
        with lease(store, "step:img", seconds=3) as held:
            assert held
            first = store.get(LEASES, "step:img")
            renewed = wait_for(
                lambda: store.get(LEASES, "step:img"),
                "the lease renewed",
                30,
                until=lambda now: now["expires"] > first["expires"],
                every=0.05,
            )
            assert renewed["holder"] == first["holder"]
            # Another attempt at the first expiry (the store is told the time) finds it still held.
            expired = first["expires"]
            assert not store.claim_lease(LEASES, "step:img", "other", expired, expired + dt.timedelta(seconds=3))
        assert store.get(LEASES, "step:img") is None


def test_a_duplicate_waits_for_a_lease_given_up_within_its_patience() -> None:
    """A copy of a quick step's message waits for the holder instead of answering 503 at once."""
    import tempfile

    from panoptes_network.core.leases import lease

    with tempfile.TemporaryDirectory() as folder:
        store = SqliteMetadata(Path(folder) / "m.sqlite")
        holding, done = threading.Event(), threading.Event()

        def first() -> None:
            with lease(store, "step:img", seconds=5) as held:
                assert held
                holding.set()
                time.sleep(0.5)
            done.set()

        worker = threading.Thread(target=first)
        worker.start()
        holding.wait(5)
        with lease(store, "step:img", seconds=5, patience=0.0) as impatient:
            assert not impatient
        with lease(store, "step:img", seconds=5, patience=5.0) as patient:
            assert patient and done.is_set()
        worker.join(5)
