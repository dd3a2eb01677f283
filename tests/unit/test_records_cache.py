"""records.cache.remember: the hot path's self-clearing cache (issue 14, item 4)."""

from __future__ import annotations

import doctest

import hsmaudit.records.cache
from hsmaudit.records import time
from hsmaudit.records.cache import CACHE_LIMIT, remember


def test_remember_returns_the_value_and_clears_only_when_full() -> None:
    cache: dict[str, int] = {}
    assert [remember(cache, key, n, limit=3) for n, key in enumerate("abc")] == [0, 1, 2]
    assert cache == {"a": 0, "b": 1, "c": 2}
    # WHEN a fourth key arrives THEN the cache starts again from that one entry
    assert remember(cache, "d", 3, limit=3) == 3
    assert cache == {"d": 3}


def test_the_default_bound_is_the_shared_limit() -> None:
    cache: dict[int, int] = {}
    for key in range(CACHE_LIMIT + 1):
        remember(cache, key, key)
    assert cache == {CACHE_LIMIT: CACHE_LIMIT}


def test_the_time_caches_stay_bounded() -> None:
    for day in range(CACHE_LIMIT + 10):
        time.format_times(day * 86_400_000_000)
    assert len(time._DAY_CACHE) <= CACHE_LIMIT
    assert len(time._SECOND_CACHE) <= CACHE_LIMIT
    assert time.format_usecs(0) == "1970-01-01T00:00:00.000000Z"


def test_the_docstring_example_runs() -> None:
    assert doctest.testmod(hsmaudit.records.cache).failed == 0
