"""Session-wide local cloud servers for tests marked ``stack`` (started once, stopped at the end),
and the PostgreSQL test server.

Clients reach them through per-test fixtures that set the ``*_EMULATOR_HOST`` variables with
``monkeypatch`` (so nothing leaks into other tests) and isolate each test: a fresh Pub/Sub
project (the emulator has no reset), a reset Firestore, a fresh bucket. PostgreSQL is the
server at ``PANOPTES_TEST_POSTGRES`` (default postgresql://postgres@127.0.0.1:5432/test); tests
work in their own schema or database and drop it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from panoptes_network.adapters.sql_tables import normalised_url
from panoptes_network.local import emulators

POSTGRES = os.environ.get("PANOPTES_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_engine(**options: Any) -> sa.Engine:
    """An engine on the test server; the test is skipped without one (a failure in CI)."""
    engine = sa.create_engine(normalised_url(POSTGRES), **options)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {POSTGRES} is required in CI: {exc}")
        pytest.skip(f"no PostgreSQL at {POSTGRES}: {exc}")
    return engine


@pytest.fixture(scope="module")
def postgres_schema() -> Iterator[str]:
    """A schema of this test module's own on the test server, dropped afterwards (its tables
    are created by the code under test, so parallel runs never meet)."""
    engine = postgres_engine()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield schema
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


FIRESTORE_PROJECT = "panoptes-test"


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def pubsub_emulator(server_logs: Path) -> Iterator[emulators.Server]:
    server = emulators.start_pubsub(server_logs)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def firestore_emulator(server_logs: Path) -> Iterator[emulators.Server]:
    server = emulators.start_firestore(server_logs)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_server(server_logs: Path) -> Iterator[emulators.Server]:
    server = emulators.start_gcs(server_logs)
    yield server
    server.stop()


@pytest.fixture
def pubsub_project(pubsub_emulator: emulators.Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A project id no other test used, with the emulator's address in the environment."""
    project = f"test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project)
    return project


@pytest.fixture
def firestore_project(firestore_emulator: emulators.Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """An emptied Firestore project, with the emulator's address in the environment."""
    emulators.reset_firestore(firestore_emulator.host, FIRESTORE_PROJECT)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", FIRESTORE_PROJECT)
    return FIRESTORE_PROJECT


@pytest.fixture
def gcs_bucket(gcs_server: emulators.Server) -> tuple[storage.Client, str]:
    """A storage client bound to fake-gcs-server (no environment) and a new empty bucket."""
    client = storage.Client(
        project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": gcs_server.url}
    )
    bucket = client.create_bucket(f"test-{uuid.uuid4().hex[:12]}")
    return client, bucket.name
