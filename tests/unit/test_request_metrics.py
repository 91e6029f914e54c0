"""The one-process request metrics (plain numbers + a custom collector) expose exactly what
prometheus_client's own Counter and Histogram would for the same requests."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from api.metrics import LATENCY, LATENCY_BUCKETS, REQUESTS, ApiMetrics, InProcessRequestMetrics, RequestObserver

# Durations on bucket bounds (Prometheus buckets are "less or equal"), between them, zero, and
# above the largest bound; several statuses of one route and a second route and method.
REQUESTS_SEEN = [
    ("POST", "/predict", "200", 0.0),
    ("POST", "/predict", "200", 0.0005),
    ("POST", "/predict", "200", 0.00050001),
    ("POST", "/predict", "200", 0.001),
    ("POST", "/predict", "200", 0.0031),
    ("POST", "/predict", "404", 0.0007),
    ("POST", "/predict", "503", 5.0),
    ("POST", "/predict", "500", 7.5),
    ("GET", "/metrics", "200", 0.012),
    ("GET", "unmatched", "404", 0.00001),
]

CREATED = re.compile(r"^\S+_created(\{[^}]*\})? \S+$", re.M)


def exposition_without_created(registry: CollectorRegistry) -> str:
    """The text format with the *_created lines' timestamps taken out (they differ by nature)."""
    return CREATED.sub(lambda m: m.group(0).rsplit(" ", 1)[0] + " <created>", generate_latest(registry).decode())


def prometheus_client_reference() -> CollectorRegistry:
    registry = CollectorRegistry()
    counter = Counter(REQUESTS[0], REQUESTS[1], REQUESTS[2], registry=registry)
    histogram = Histogram(LATENCY[0], LATENCY[1], LATENCY[2], buckets=LATENCY_BUCKETS, registry=registry)
    for method, route, status, seconds in REQUESTS_SEEN:
        counter.labels(method, route, status).inc()
        histogram.labels(method, route).observe(seconds)
    return registry


def test_in_process_request_metrics_expose_what_prometheus_client_would() -> None:
    registry = CollectorRegistry()
    metrics = InProcessRequestMetrics(registry)
    observers: dict[tuple[str, str, str], RequestObserver] = {}
    for method, route, status, seconds in REQUESTS_SEEN:
        key = (method, route, status)
        observers.setdefault(key, metrics.observer(*key))(seconds)
    ours, reference = exposition_without_created(registry), exposition_without_created(prometheus_client_reference())
    assert ours == reference
    # and the numbers are the ones sent, not two equally wrong copies
    labels = {"method": "POST", "route": "/predict"}
    assert registry.get_sample_value("api_requests_total", labels | {"status": "200"}) == 5
    assert registry.get_sample_value("api_request_latency_seconds_bucket", labels | {"le": "0.0005"}) == 2
    assert registry.get_sample_value("api_request_latency_seconds_bucket", labels | {"le": "5.0"}) == 7
    assert registry.get_sample_value("api_request_latency_seconds_count", labels) == 8
    assert registry.get_sample_value("api_request_latency_seconds_sum", labels) == pytest.approx(
        sum(s for m, r, _, s in REQUESTS_SEEN if (m, r) == ("POST", "/predict"))
    )


def test_an_observer_asked_for_twice_counts_into_the_same_series() -> None:
    registry = CollectorRegistry()
    metrics = ApiMetrics(registry)
    for _ in range(2):
        metrics.request_observer("POST", "/predict", "200")(0.002)
    labels = {"method": "POST", "route": "/predict"}
    assert registry.get_sample_value("api_requests_total", labels | {"status": "200"}) == 2
    assert registry.get_sample_value("api_request_latency_seconds_count", labels) == 2


def test_the_request_metric_names_cannot_be_registered_twice() -> None:
    registry = CollectorRegistry()
    InProcessRequestMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter(REQUESTS[0], REQUESTS[1], REQUESTS[2], registry=registry)
