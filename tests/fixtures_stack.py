"""The whole local cloud stack, started once per test session, through the same code as ``stack``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from panoptes_network.local.stack import LocalStack, start_stack


def running_stack(tmp_path_factory: pytest.TempPathFactory, prefix: str, **options: Any) -> Iterator[LocalStack]:
    """A stack of its own (a fresh project, ``start_stack`` options), stopped afterwards: for
    tests that break a server or need other settings than the session's stack."""
    stack = start_stack(f"{prefix}-{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp(f"{prefix}-logs"), **options)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    yield from running_stack(tmp_path_factory, "stack")
