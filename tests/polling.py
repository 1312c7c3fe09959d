"""Waiting in tests, one way: ask again until the answer is the one awaited, within a generous
bound. The bound only turns a hang into a failure that says what was awaited and what was last
seen; it is never a measured duration (speed is the bench's business: bench/run)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
SHOWN_CHARACTERS = 2000  # of the last answer, in a failure message


def wait_for(
    check: Callable[[], T],
    what: str,
    seconds: float,
    *,
    until: Callable[[T], object] = bool,
    every: float = 0.2,
) -> T:
    """``check()`` again every ``every`` seconds until ``until`` holds for its answer (by default:
    the answer is truthy); that answer. Asked at least once, and once more at the bound."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            seen = repr(value)
            if len(seen) > SHOWN_CHARACTERS:
                seen = seen[:SHOWN_CHARACTERS] + "..."
            pytest.fail(f"{what}: not within {seconds:g} s; last seen {seen}")
        time.sleep(every)


def returns_within(call: Callable[[], T], what: str, seconds: float) -> T:
    """``call()``'s result, or its exception raised here; a failure if it has not returned within
    ``seconds`` (a call that must not hang, run in a thread so that the test can give up on it)."""
    answer: dict[str, Any] = {}

    def run() -> None:
        try:
            answer["value"] = call()
        except BaseException as error:  # handed to the test's thread and raised there
            answer["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    wait_for(lambda: not worker.is_alive(), what, seconds, every=0.05)
    if "error" in answer:
        raise answer["error"]
    return answer["value"]
