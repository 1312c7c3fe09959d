"""Rendered pages kept for a few seconds: a page under load is read and rendered once per
``seconds``, not once per request.

An observation page reads the observation, every frame's record and each product's size: tens
of store round trips. Fifty people (or a class of students) opening the same page at once would
otherwise make fifty times those reads; with this cache they wait for the one render in
progress and share it. The price is that a page can be ``seconds`` old. Only successful renders
are kept (an exception passes through, uncached), at most ``entries`` of them, the least
recently used dropped first, so arbitrary search URLs cannot grow it without bound.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PageCache(Generic[T]):
    """``get(key, make)``: the value made for ``key`` less than ``seconds`` ago, or ``make()``'s,
    made by one thread while the others asking for the same key wait for it; a value that
    ``keep`` refuses (an error page) is given but not kept."""

    def __init__(self, seconds: float, entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.entries, self.clock = seconds, entries, clock
        self._values: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._making: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: str, make: Callable[[], T], keep: Callable[[T], bool] = lambda value: True) -> T:
        with self._guard:
            fresh = self._fresh(key)
            if fresh is not None:
                return fresh[1]
            making = self._making.setdefault(key, threading.Lock())
        with making:
            with self._guard:
                fresh = self._fresh(key)  # made while this thread waited
                if fresh is not None:
                    return fresh[1]
            try:
                value = make()
            finally:
                with self._guard:
                    self._making.pop(key, None)
            if not keep(value):
                return value
            with self._guard:
                self._values[key] = (self.clock(), value)
                self._values.move_to_end(key)
                while len(self._values) > self.entries:
                    self._values.popitem(last=False)
            return value

    def _fresh(self, key: str) -> tuple[float, T] | None:
        found = self._values.get(key)
        if found is None or self.clock() - found[0] >= self.seconds:
            return None
        self._values.move_to_end(key)
        return found
