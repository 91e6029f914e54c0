"""The drift outcome as Prometheus metrics, pushed to a Pushgateway.

The drift job is a batch job: it is gone before Prometheus could scrape it, so it pushes its
outcome to a Pushgateway (Prometheus's documented pattern for service-level batch jobs) and
Prometheus scrapes the Pushgateway with `honor_labels`. One PUT per run replaces the whole
group, so every series describes the latest run; Prometheus keeps the history.

The push comes after the status ConfigMap is annotated and never fails the run: the ConfigMap
is the record of the decision, the metrics are its view for dashboards and alerts.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from jobs.drift.decision import Decision
from jobs.drift.report import DriftResult
from streamflow import __version__
from streamflow.logs import first_line, log_event

log = logging.getLogger("streamflow.drift.push")

PUSH_JOB = "streamflow-drift"  # the Pushgateway group; becomes the `job` label of every series
PUSH_TIMEOUT_SECONDS = 10.0


def build_registry(
    decision: Decision, result: DriftResult, rows: dict[str, int], duration_seconds: float, finished_unix: float
) -> CollectorRegistry:
    """A fresh registry holding one run's outcome (the names the dashboards and rules query)."""
    registry = CollectorRegistry()

    def gauge(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, documentation, labels, registry=registry)

    gauge("streamflow_drift_share", "Share of the 14 features that drifted (target excluded).").set(
        decision.drift_share
    )
    gauge("streamflow_drift_threshold", "drift_share at or above which retraining is triggered.").set(
        decision.threshold
    )
    gauge("streamflow_drift_drifted_features", "Number of features that drifted.").set(result.drifted_count)
    gauge(
        "streamflow_drift_retraining_triggered", "Decision of the last run: 1 = RETRAINING_TRIGGERED, 0 = NO_ACTION."
    ).set(int(decision.retrain))
    score = gauge(
        "streamflow_drift_feature_score",
        "Drift distance of each feature (drifted when >= its threshold).",
        ("feature",),
    )
    drifted = gauge("streamflow_drift_feature_drifted", "1 when the feature drifted.", ("feature",))
    threshold = gauge(
        "streamflow_drift_feature_threshold", "Distance at which a feature counts as drifted.", ("feature",)
    )
    for column in result.features:
        score.labels(column.column).set(column.score)
        drifted.labels(column.column).set(int(column.drifted))
        threshold.labels(column.column).set(column.threshold)
    gauge("streamflow_drift_target_score", "Drift distance of churn_label (reported, not part of drift_share).").set(
        result.target.score
    )
    gauge("streamflow_drift_target_drifted", "1 when churn_label drifted.").set(int(result.target.drifted))
    row_gauge = gauge("streamflow_drift_rows", "Rows compared, by dataset (reference, current).", ("dataset",))
    for dataset, count in rows.items():
        row_gauge.labels(dataset).set(count)
    gauge("streamflow_drift_run_duration_seconds", "Wall time of the last successful run.").set(duration_seconds)
    gauge("streamflow_drift_last_success_timestamp_seconds", "Unix time the last successful run finished.").set(
        finished_unix
    )
    gauge(
        "streamflow_drift_run_info",
        "The last run's snapshots and decision (value 1).",
        ("reference", "current", "decision", "version"),
    ).labels(decision.reference.isoformat(), decision.current.isoformat(), decision.action, __version__).set(1)
    return registry


def push(url: str, registry: CollectorRegistry, job: str = PUSH_JOB) -> bool:
    """PUT a job's metrics to the Pushgateway (replacing its group); False (and a warning naming
    the URL) on failure: the job's record is elsewhere, its metrics are only a view of it."""
    started = time.perf_counter()
    try:
        push_to_gateway(url, job=job, registry=registry, timeout=PUSH_TIMEOUT_SECONDS)
    except Exception as exc:  # urllib raises URLError, HTTPError, OSError, ValueError for bad URLs
        reason = first_line(exc)
        log_event(
            log,
            "pushgateway push failed; the outcome is recorded, its metrics are not",
            logging.WARNING,
            pushgateway=url,
            job=job,
            reason=reason,
        )
        return False
    log_event(log, "metrics pushed", pushgateway=url, job=job, seconds=round(time.perf_counter() - started, 3))
    return True
