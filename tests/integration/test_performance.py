"""The served model's performance on labelled months equals an independent computation, and
reaches a real Pushgateway with its model version and month."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import log_loss, precision_score, recall_score, roc_auc_score

from streamflow import db, model
from streamflow.datasets import snapshot_frame
from streamflow.feature_repo import open_store
from streamflow.features import TARGET, encode_frame
from streamflow.settings import Settings
from tests.support.processes import data_env, must_succeed, run_module
from tools.api_process import free_port
from tools.monitoring.localstack import start_pushgateway

LINE = re.compile(
    r"^\[performance\] model=(?P<version>\S+) month=(?P<month>\S+) rows=(?P<rows>\d+) auc=(?P<auc>\S+) "
    r"precision=(?P<precision>\S+) recall=(?P<recall>\S+) log_loss=(?P<log_loss>\S+) calibration_gap=(?P<gap>\S+)$"
)


@pytest.fixture(scope="module")
def pushed(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("pushgateway")
    gateway = start_pushgateway(workdir, free_port())
    try:
        result = must_succeed(run_module("jobs.performance", env=data_env(demo_dir, pushgateway_url=gateway.url)))
        metrics = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    finally:
        gateway.stop()
    return [LINE.match(line) for line in result.stdout.strip().splitlines()], metrics


def test_scores_equal_scikit_learns_on_rows_read_through_feast(demo_settings: Settings, pushed) -> None:
    lines, _ = pushed
    served = model.load(demo_settings)
    assert [m and m["month"] for m in lines] == ["2024-02-29", "2024-03-31"]  # after the training month
    store, engine = open_store(demo_settings), db.make_engine(demo_settings)
    for match in lines:
        assert match and match["version"] == served.version
        frame = snapshot_frame(engine, store, date.fromisoformat(match["month"]))
        labels = frame[TARGET].to_numpy()
        probabilities = served.estimator.predict_proba(encode_frame(frame))[:, 1]  # scikit-learn itself
        predicted = (probabilities >= demo_settings.prediction_threshold).astype(int)
        expected = {
            "rows": len(frame),
            "auc": roc_auc_score(labels, probabilities),
            "precision": precision_score(labels, predicted),
            "recall": recall_score(labels, predicted),
            "log_loss": log_loss(labels, probabilities),
            "gap": probabilities.mean() - labels.mean(),
        }
        for key, value in expected.items():
            assert float(match[key]) == pytest.approx(value, abs=6e-5), key


def test_the_metrics_reach_the_pushgateway_per_version_and_month(demo_settings: Settings, pushed) -> None:
    lines, metrics = pushed
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    auc = {(s.labels["model_version"], s.labels["month"]): s.value for s in families["streamflow_model_auc"].samples}
    assert auc == {(m["version"], m["month"]): pytest.approx(float(m["auc"]), abs=6e-5) for m in lines if m}
    for name in ("precision", "recall", "log_loss", "calibration_gap", "observed_churn_rate"):
        assert len(families[f"streamflow_model_{name}"].samples) == len(lines)
    assert all(s.labels["job"] == "streamflow-model-performance" for s in families["streamflow_model_auc"].samples)
