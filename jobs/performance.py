"""How the served model really performs, once a month's churn labels have arrived.

    python -m jobs.performance [--month 2024-03-31]

Input drift is only a proxy: this job scores the model in the store (the one the API serves) on
every labelled month after the month it was trained on, by ROC AUC, precision and recall at the
API's `prediction_threshold`, log loss, and calibration (mean predicted churn probability
against the observed churn rate). It prints one line per month and, with
STREAMFLOW_PUSHGATEWAY_URL set, pushes them as `streamflow_model_*{model_version, month}` for the
drift dashboard and the performance alerts. Exit 0 when it scored at least one month (or there
was none to score yet), 3 on a data or model problem.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
from prometheus_client import CollectorRegistry, Gauge
from sklearn.metrics import log_loss, precision_score, recall_score, roc_auc_score
from sqlalchemy.exc import SQLAlchemyError

from jobs.drift.push import push
from streamflow import db, model
from streamflow.datasets import SnapshotError, load_snapshot
from streamflow.drift import ExitCode
from streamflow.features import TARGET, encode_frame
from streamflow.logs import configure_logging, first_line, log_event
from streamflow.settings import Settings, settings_or_exit

log = logging.getLogger("streamflow.performance")

PUSH_JOB = "streamflow-model-performance"  # its own Pushgateway group: the drift job's push replaces only its own


@dataclass(frozen=True)
class MonthPerformance:
    model_version: str
    month: date
    rows: int
    auc: float
    precision: float
    recall: float
    log_loss: float
    mean_predicted: float
    observed_rate: float

    @property
    def calibration_gap(self) -> float:
        """Mean predicted churn probability minus the observed churn rate (signed)."""
        return self.mean_predicted - self.observed_rate


def measure(
    probabilities: np.ndarray, labels: np.ndarray, threshold: float, version: str, month: date
) -> MonthPerformance:
    predicted = (probabilities >= threshold).astype(int)
    return MonthPerformance(
        model_version=version,
        month=month,
        rows=len(labels),
        auc=float(roc_auc_score(labels, probabilities)),
        precision=float(precision_score(labels, predicted, zero_division=0)),
        recall=float(recall_score(labels, predicted, zero_division=0)),
        log_loss=float(log_loss(labels, probabilities, labels=[0, 1])),
        mean_predicted=float(np.mean(probabilities)),
        observed_rate=float(np.mean(labels)),
    )


def evaluate(settings: Settings, months: list[date] | None = None) -> list[MonthPerformance]:
    """The served model on each labelled month after its training month (or on `months`)."""
    served = model.load(settings)
    engine = db.make_engine(settings)
    trained_on = date.fromisoformat(served.metadata.trained_on)
    months = months or [m for m in db.list_snapshots(engine, db.labels) if m > trained_on]
    results = []
    for month in months:
        frame = load_snapshot(engine, month)
        probabilities = served.churn_probability(encode_frame(frame))
        result = measure(probabilities, frame[TARGET].to_numpy(), settings.prediction_threshold, served.version, month)
        fields = {k: v for k, v in asdict(result).items() if k != "month"}
        log_event(log, "model performance", logging.INFO, month=month.isoformat(), **fields)
        results.append(result)
    return results


def build_registry(results: list[MonthPerformance]) -> CollectorRegistry:
    registry = CollectorRegistry()
    labels = ("model_version", "month")
    gauges = {
        "auc": Gauge(
            "streamflow_model_auc", "ROC AUC of the served model on a labelled month.", labels, registry=registry
        ),
        "precision": Gauge(
            "streamflow_model_precision", "Precision at the API's threshold.", labels, registry=registry
        ),
        "recall": Gauge("streamflow_model_recall", "Recall at the API's threshold.", labels, registry=registry),
        "log_loss": Gauge("streamflow_model_log_loss", "Log loss on a labelled month.", labels, registry=registry),
        "calibration_gap": Gauge(
            "streamflow_model_calibration_gap",
            "Mean predicted churn probability minus the observed churn rate.",
            labels,
            registry=registry,
        ),
        "observed_rate": Gauge(
            "streamflow_model_observed_churn_rate", "Observed churn rate.", labels, registry=registry
        ),
    }
    for result in results:
        for name, gauge in gauges.items():
            gauge.labels(result.model_version, result.month.isoformat()).set(getattr(result, name))
    return registry


def performance_line(result: MonthPerformance) -> str:
    return (
        f"[performance] model={result.model_version} month={result.month} rows={result.rows} auc={result.auc:.4f} "
        f"precision={result.precision:.4f} recall={result.recall:.4f} log_loss={result.log_loss:.4f} "
        f"calibration_gap={result.calibration_gap:+.4f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.performance", description=__doc__.split("\n")[0])
    parser.add_argument("--month", type=date.fromisoformat, action="append", help="a labelled month (repeatable)")
    args = parser.parse_args(argv)
    settings = settings_or_exit("performance job")
    configure_logging(settings.log_level, settings.log_format)
    try:
        results = evaluate(settings, args.month)
    except (SnapshotError, SQLAlchemyError, model.ModelArtifactError) as exc:
        print(f"performance job failed (data): {first_line(exc)}", file=sys.stderr)
        return ExitCode.DATA
    if not results:
        print("[performance] no labelled month after the served model's training month yet")
    for result in results:
        print(performance_line(result), flush=True)
    if settings.pushgateway_url and results:
        push(settings.pushgateway_url, build_registry(results), job=PUSH_JOB)
    return ExitCode.OK


if __name__ == "__main__":
    raise SystemExit(main())
