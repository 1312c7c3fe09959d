"""The explorer's page cache: one render per key and period however many ask at once, never an
error kept, never more entries than its bound."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from panoptes_network.explorer.page_cache import PageCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_fifty_at_once_share_one_render() -> None:
    cache: PageCache[int] = PageCache(10, 8)
    renders = []
    started = threading.Event()

    def make() -> int:
        renders.append(1)
        started.wait(5)  # the others arrive while this render is in progress
        return len(renders)

    with ThreadPoolExecutor(50) as pool:
        results = [pool.submit(cache.get, "page", make) for _ in range(50)]
        started.set()
        assert {future.result() for future in results} == {1}
    assert len(renders) == 1


def test_a_page_is_rendered_again_once_its_seconds_are_over() -> None:
    clock = Clock()
    cache: PageCache[float] = PageCache(10, 8, clock)
    assert cache.get("page", lambda: clock.now) == 0.0
    clock.now = 9.9
    assert cache.get("page", lambda: clock.now) == 0.0
    clock.now = 10.0
    assert cache.get("page", lambda: clock.now) == 10.0


def test_refused_values_and_errors_are_not_kept() -> None:
    cache: PageCache[str] = PageCache(10, 8)
    assert cache.get("page", lambda: "404 page", keep=lambda value: value != "404 page") == "404 page"
    assert cache.get("page", lambda: "the page") == "the page"
    with pytest.raises(RuntimeError):
        cache.get("other", lambda: (_ for _ in ()).throw(RuntimeError("store down")))
    assert cache.get("other", lambda: "recovered") == "recovered"


def test_the_least_recently_used_page_goes_first() -> None:
    cache: PageCache[str] = PageCache(10, 2)
    cache.get("a", lambda: "a1")
    cache.get("b", lambda: "b1")
    cache.get("a", lambda: "a2")  # a is used again: b is now the oldest
    cache.get("c", lambda: "c1")
    assert cache.get("a", lambda: "a3") == "a1"
    assert cache.get("b", lambda: "b2") == "b2", "b was dropped"
