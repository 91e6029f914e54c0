"""The last users' predictions, per worker, counting its own hits and misses.

A user's features and prediction cannot change until the next materialization (the model is
loaded once), so each worker keeps the last `maxsize` of them (docs/performance.md: a cached
/predict costs tens of microseconds, a miss a store lookup and the model). ServingState empties
the cache when the registry records a new materialization or apply, and when it opens a store.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

V = TypeVar("V")


class Count(Protocol):
    """Where the cache counts: a prometheus_client counter, or anything with its `inc`."""

    def inc(self, amount: float = 1) -> None: ...


class PredictionCache(Generic[V]):
    """A least-recently-used map of user id -> value that computes what it lacks.

    `get` counts a hit when the value came from the cache and a miss when it was computed. A
    computation that raises (an unknown user, a failed lookup) is neither kept nor counted: no
    prediction was served, and a user who appears later is found at once. `maxsize` 0 turns the
    cache off: every call computes, and counts a miss.

    `get` is called from one thread (the event loop); `clear` may be called from any, since it
    swaps in an empty map instead of emptying the one a `get` may be using, and a value computed
    from the old data goes into the old map.
    """

    def __init__(self, compute: Callable[[str], V], maxsize: int, hits: Count, misses: Count) -> None:
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0, not {maxsize}")
        self.maxsize = maxsize
        self._compute = compute
        self._hits, self._misses = hits, misses
        self._entries: OrderedDict[str, V] = OrderedDict()

    def get(self, key: str) -> V:
        entries = self._entries  # read once: see clear()
        try:
            value = entries[key]
        except KeyError:
            value = self._compute(key)
            if self.maxsize:
                entries[key] = value
                if len(entries) > self.maxsize:
                    entries.popitem(last=False)  # the least recently used
            self._misses.inc()
            return value
        entries.move_to_end(key)
        self._hits.inc()
        return value

    def clear(self) -> None:
        self._entries = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)
