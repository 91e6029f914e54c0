"""The prediction cache counts its own hits and misses, evicts the least recently used user, and
keeps nothing that failed."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from api.metrics import ApiMetrics
from api.prediction_cache import PredictionCache


class Compute:
    """A computation that records its calls; ids starting with "ghost" raise, like unknown users."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, user_id: str) -> str:
        self.calls.append(user_id)
        if user_id.startswith("ghost"):
            raise LookupError(user_id)
        return f"prediction for {user_id} #{len(self.calls)}"


def cache_and_counts(maxsize: int) -> tuple[PredictionCache[str], Compute, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = ApiMetrics(registry)
    compute = Compute()
    return PredictionCache(compute, maxsize, hits=metrics.cache_hit, misses=metrics.cache_miss), compute, registry


def counts(registry: CollectorRegistry) -> tuple[float, float]:
    return tuple(  # type: ignore[return-value]
        registry.get_sample_value("api_prediction_cache_total", {"result": result}) or 0.0 for result in ("hit", "miss")
    )


def test_a_repeated_user_is_a_hit_served_without_computing() -> None:
    cache, compute, registry = cache_and_counts(10)
    first = cache.get("U0001")
    assert cache.get("U0001") == first and cache.get("U0001") == first
    cache.get("U0002")
    assert compute.calls == ["U0001", "U0002"]
    assert counts(registry) == (2, 2)


def test_a_failed_computation_is_neither_kept_nor_counted() -> None:
    cache, compute, registry = cache_and_counts(10)
    for _ in range(3):
        with pytest.raises(LookupError):
            cache.get("ghost-1")
    assert compute.calls == ["ghost-1"] * 3, "nothing was kept: every call computes again"
    assert counts(registry) == (0, 0) and len(cache) == 0


def test_the_least_recently_used_user_is_evicted() -> None:
    cache, compute, registry = cache_and_counts(2)
    cache.get("a")
    cache.get("b")
    cache.get("a")  # a is now more recent than b
    cache.get("c")  # evicts b
    assert len(cache) == 2
    cache.get("a")
    cache.get("b")
    assert compute.calls == ["a", "b", "c", "b"]
    assert counts(registry) == (2, 4)


def test_size_zero_computes_every_time_and_counts_misses() -> None:
    cache, compute, registry = cache_and_counts(0)
    for _ in range(3):
        cache.get("U0001")
    assert compute.calls == ["U0001"] * 3 and len(cache) == 0
    assert counts(registry) == (0, 3)


def test_clear_empties_it() -> None:
    cache, compute, _ = cache_and_counts(10)
    cache.get("U0001")
    cache.clear()
    assert len(cache) == 0
    cache.get("U0001")
    assert compute.calls == ["U0001", "U0001"]


def test_a_value_computed_across_a_clear_is_not_kept() -> None:
    """The registry watcher's thread may empty the cache while the loop computes a miss from the
    data from before: that value must not land in the emptied cache."""
    compute = Compute()

    def compute_while_cleared(user_id: str) -> str:
        racing.clear()
        return compute(user_id)

    racing: PredictionCache[str] = PredictionCache(compute_while_cleared, 10, hits=Count(), misses=Count())
    racing.get("U0002")
    assert len(racing) == 0
    racing.get("U0002")
    assert compute.calls == ["U0002", "U0002"]


class Count:
    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


def test_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        PredictionCache(Compute(), -1, hits=Count(), misses=Count())
