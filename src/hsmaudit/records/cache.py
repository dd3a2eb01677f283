"""The one bounded value cache of the hot path: a plain dict that `remember` empties when full.

Stdlib only, like the rest of `records/`. Records come in bursts from few streams, so a cache that
is simply cleared at `limit` entries keeps the hit rate of an LRU while a hit stays one `dict.get`
on an exact dict (a `functools.lru_cache` call, or `get` on a dict subclass, costs more per hit;
benchmarks/parse_bench.py). The bound keeps a long-lived Lambda container's memory flat on
adversarial input. Callers keep the dict and do the lookup themselves; only a miss calls here.

    >>> cache: dict[int, str] = {}
    >>> [remember(cache, key, value, limit=2) for key, value in [(1, "a"), (2, "b"), (3, "c")]]
    ['a', 'b', 'c']
    >>> cache
    {3: 'c'}
"""

from __future__ import annotations

from typing import Final, TypeVar

K = TypeVar("K")
V = TypeVar("V")

CACHE_LIMIT: Final = 4096
"""Entries per cache before it is cleared (the time and parser value caches share this bound)."""


def remember(cache: dict[K, V], key: K, value: V, limit: int = CACHE_LIMIT) -> V:
    """Store `value` under `key` in `cache`, clearing the whole cache first if it holds `limit`.

    Returns `value`, so a miss reads `found = remember(cache, key, compute(key))`.
    """
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value
