"""The whole local cloud stack, started once per test session, through the same code as ``stack``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from panoptes_network.stack import LocalStack, start_stack


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = start_stack(f"stack-{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp("stack-logs"))
    yield stack
    stack.stop()
