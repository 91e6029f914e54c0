"""Prometheus metrics of the API and the pure-ASGI middleware that records them.

All metrics live on an injectable registry (tests stay isolated). Labels are bounded: the route
*template* (never the raw path or a user id), the method, the status code, the outcome.
With several uvicorn workers, prometheus_client's multiprocess mode is on: the launcher
(`python -m api`) sets PROMETHEUS_MULTIPROC_DIR before any worker imports prometheus_client,
and each scrape aggregates every worker's files from that directory. Whether we are in that
mode comes from our settings, never from the environment variable: Feast's metrics module
sets PROMETHEUS_MULTIPROC_DIR for itself when it is imported.

The middleware is plain ASGI on purpose: Starlette's decorator-style BaseHTTPMiddleware wraps
every request in extra tasks and streams and was measured at 0.39x throughput.

With one worker, the request counter and latency histogram are plain numbers the event loop
updates, turned into prometheus_client metric families when scraped (`InProcessRequestMetrics`,
a custom collector): served, prometheus_client's locked Counter.inc + Histogram.observe cost
about as much as the whole ASGI layer around them (throughput with metrics / without: 0.94-0.96
with them, 0.97 with plain numbers; docs/performance.md). Several workers need prometheus_client's
own metrics, whose files the scrape aggregates.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

# A millisecond API: most requests land between 0.5 ms and 25 ms; the tail up to seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LOOKUP_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
_BUCKET_LABELS = (*map(floatToGoString, LATENCY_BUCKETS), "+Inf")  # the `le` values, as prometheus_client writes them
UNMATCHED_ROUTE = "unmatched"  # one label value for every path no route matched (404 scans)

# The two request metrics users' PromQL depends on: (name, help, labels)
REQUESTS = (
    "api_requests_total",
    "HTTP requests handled, by route template and status code.",
    ("method", "route", "status"),
)
LATENCY = (
    "api_request_latency_seconds",
    "Time from request start to response end, by route template.",
    ("method", "route"),
)

RequestObserver = Callable[[float], None]  # records one finished request: its duration in seconds


class _RouteLatency:
    """One (method, route) histogram: a count per bucket (not cumulative; the last is +Inf)."""

    __slots__ = ("buckets", "created", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0
        self.created = time.time()


class _RequestSeries:
    """One (method, route, status) request count, and its route's histogram."""

    __slots__ = ("count", "created", "latency")

    def __init__(self, latency: _RouteLatency) -> None:
        self.count = 0
        self.latency = latency
        self.created = time.time()

    def observe(self, seconds: float) -> None:
        self.count += 1
        latency = self.latency
        latency.sum += seconds
        # first bucket whose upper bound is >= seconds (Prometheus buckets are "le")
        latency.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1


class InProcessRequestMetrics(Collector):
    """api_requests_total and api_request_latency_seconds of a one-process API, exposed in the
    same shape as prometheus_client's Counter and Histogram would expose them (a test compares
    the two). Only the event loop writes, and /metrics is read on the event loop too."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._series: dict[tuple[str, str, str], _RequestSeries] = {}
        self._latency: dict[tuple[str, str], _RouteLatency] = {}
        registry.register(self)

    def observer(self, method: str, route: str, status: str) -> RequestObserver:
        latency = self._latency.get((method, route))
        if latency is None:
            latency = self._latency[(method, route)] = _RouteLatency()
        series = self._series.get((method, route, status))
        if series is None:
            series = self._series[(method, route, status)] = _RequestSeries(latency)
        return series.observe

    def describe(self) -> Iterator[Metric]:
        yield from self._families(empty=True)

    def collect(self) -> Iterator[Metric]:
        yield from self._families(empty=False)

    def _families(self, empty: bool) -> Iterator[Metric]:
        requests = CounterMetricFamily(REQUESTS[0], REQUESTS[1], labels=REQUESTS[2])
        latency = HistogramMetricFamily(LATENCY[0], LATENCY[1], labels=LATENCY[2])
        if not empty:
            for labels, series in list(self._series.items()):
                requests.add_metric(labels, float(series.count), created=series.created)
            for route_labels, route in list(self._latency.items()):
                cumulative, running = [], 0
                for bound, count in zip(_BUCKET_LABELS, route.buckets, strict=True):
                    running += count
                    cumulative.append((bound, float(running)))
                latency.add_metric(route_labels, cumulative, route.sum)
                # HistogramMetricFamily takes no `created`; prometheus_client's Histogram exposes it
                latency.samples.append(
                    Sample(f"{LATENCY[0]}_created", dict(zip(LATENCY[2], route_labels, strict=True)), route.created)
                )
        yield requests
        yield latency


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry, multiproc_dir: Path | None = None) -> None:
        self.registry = registry
        self.multiproc_dir = multiproc_dir  # set when several workers share the metrics
        if multiproc_dir is None:
            self._in_process_requests: InProcessRequestMetrics | None = InProcessRequestMetrics(registry)
        else:  # each worker writes its own files; the scrape sums them
            self._in_process_requests = None
            self._requests = Counter(REQUESTS[0], REQUESTS[1], REQUESTS[2], registry=registry)
            self._latency = Histogram(LATENCY[0], LATENCY[1], LATENCY[2], buckets=LATENCY_BUCKETS, registry=registry)
        self.in_flight = Gauge(
            "api_requests_in_flight",
            "Requests being handled right now.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.predictions = Counter(
            "api_predictions_total",
            "Predictions returned, by predicted outcome (churn / stay).",
            ["outcome"],
            registry=registry,
        )
        self.predicted_churn, self.predicted_stay = (self.predictions.labels(o) for o in ("churn", "stay"))
        self.prediction_cache = Counter(
            "api_prediction_cache_total",
            "Predictions served from the worker's cache (hit) or computed from the store (miss).",
            ["result"],
            registry=registry,
        )
        self.cache_hit, self.cache_miss = (self.prediction_cache.labels(r) for r in ("hit", "miss"))
        self.feature_lookup = Histogram(
            "api_feature_lookup_latency_seconds",
            "Feast online feature lookup time per prediction.",
            buckets=LOOKUP_BUCKETS,
            registry=registry,
        )
        self.feature_lookup_errors = Counter(
            "api_feature_lookup_errors_total",
            "Online feature lookups that failed (store unreachable).",
            registry=registry,
        )
        self.model_info = Gauge(
            "api_model_info",
            "The model being served (value 1), by version and runtime (treelite, or sklearn when the "
            "compiled trees were refused).",
            ["version", "runtime"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.ready = Gauge(
            "api_ready",
            "1 when the model is verified and the feature store answers.",
            registry=registry,
            multiprocess_mode="livemin",
        )

    def model_served(self, version: str, runtime: str, replaced: tuple[str, str] | None = None) -> None:
        """api_model_info is 1 for the model served now. The one it replaced stops showing: its
        series is removed, or set to 0 with several workers (their files keep every series)."""
        if replaced is not None and replaced != (version, runtime):
            if self.multiproc_dir is None:
                self.model_info.remove(*replaced)
            else:
                self.model_info.labels(*replaced).set(0)
        self.model_info.labels(version, runtime).set(1)

    def request_observer(self, method: str, route: str, status: str) -> RequestObserver:
        """What records one request of these labels: keep it, label resolution is the slow part."""
        if self._in_process_requests is not None:
            return self._in_process_requests.observer(method, route, status)
        counter, histogram = self._requests.labels(method, route, status), self._latency.labels(method, route)

        def observe(seconds: float) -> None:
            counter.inc()
            histogram.observe(seconds)

        return observe

    def exposition(self) -> tuple[bytes, str]:
        """The text format for /metrics: this process's registry, or every worker's files."""
        if self.multiproc_dir is not None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=str(self.multiproc_dir))
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def mark_worker_dead(self) -> None:
        """Multiprocess mode: drop this worker's live gauges from the aggregate when it exits."""
        if self.multiproc_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), path=str(self.multiproc_dir))


class PrometheusMiddleware:
    """Counts and times every HTTP request; labels by the matched route's template."""

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # Observers by (method, route, status): resolving labels costs more than the increment
        # itself. Bounded: route templates x methods x status codes.
        self._observers: dict[tuple[str, str, int], RequestObserver] = {}
        # Requests in flight. In one process the gauge reads this plain count when scraped, so a
        # request pays two integer updates instead of two locked gauge updates (~1.4 us of the
        # middleware's ~6); the event loop is the only writer. Several workers each update their
        # gauge file, summed at scrape time (multiprocess_mode="livesum").
        self.in_flight = 0
        self._gauge_per_request = metrics.multiproc_dir is not None
        if not self._gauge_per_request:
            metrics.in_flight.set_function(lambda: self.in_flight)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app dies before answering
        started = time.perf_counter()

        async def send_with_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        if self._gauge_per_request:
            self.metrics.in_flight.inc()
        self.in_flight += 1
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - started
            self.in_flight -= 1
            if self._gauge_per_request:
                self.metrics.in_flight.dec()
            route = scope.get("route")  # set by the router once a route matched
            template = getattr(route, "path", UNMATCHED_ROUTE)
            key = (scope["method"], template, status)
            observe = self._observers.get(key)
            if observe is None:
                observe = self._observers[key] = self.metrics.request_observer(key[0], template, str(status))
            observe(elapsed)
