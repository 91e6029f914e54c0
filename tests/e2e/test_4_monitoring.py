"""Proof 4: prometheus-operator turned our ServiceMonitors into scrape jobs whose API and Pushgateway
targets are up; `api_requests_total{route="/predict"}` moves by exactly the requests sent; the
PrometheusRule is loaded and StreamFlowDriftDetected fires after February-vs-March and is silent
after January-vs-February."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx

from tests.e2e.conftest import FULLNAME, NAMESPACE, REPO_ROOT
from tests.support.kube import eventually
from tools import toolchain

SENT = 37  # an odd count, so a doubled or a dropped scrape cannot pass for it
SCRAPE_INTERVAL_SECONDS = 15  # the local node's Prometheus (tools/cluster/monitoring.py)


def _our_targets(prometheus) -> dict[str, dict]:
    return {
        t["labels"].get("service", ""): t for t in prometheus.targets() if t["labels"].get("namespace") == NAMESPACE
    }


def test_api_and_pushgateway_targets_are_up(prometheus):
    def up() -> dict[str, dict] | None:
        targets = _our_targets(prometheus)
        wanted = (f"{FULLNAME}-api", f"{FULLNAME}-pushgateway")
        return targets if all(targets.get(s, {}).get("health") == "up" for s in wanted) else None

    targets = eventually("the API and Pushgateway targets up", up, timeout=180)
    # the operator's job names: serviceMonitor/<namespace>/<name>/<endpoint>
    assert targets[f"{FULLNAME}-api"]["scrapePool"].startswith(f"serviceMonitor/{NAMESPACE}/")


def _predict_count(prometheus) -> float:
    expr = f'sum(api_requests_total{{namespace="{NAMESPACE}", route="/predict"}})'
    return prometheus.value(expr) or 0.0


def test_predict_counter_moves_by_exactly_the_requests_sent(prometheus, api_url):
    def settled() -> float | None:
        # the same value across more than one scrape interval: nothing sent earlier is still on its way
        first = _predict_count(prometheus)
        time.sleep(SCRAPE_INTERVAL_SECONDS + 1)
        return first if _predict_count(prometheus) == first else None

    before = eventually("a settled /predict count", settled, timeout=180, interval=1)
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for index in range(SENT):
            assert client.post("/predict", json={"user_id": "U0001" if index % 2 else "4686-GEFRM"}).status_code == 200
    eventually(
        f"api_requests_total{{route=/predict}} to move by {SENT} from {before}",
        lambda: _predict_count(prometheus) - before == SENT,
        timeout=120,
    )
    time.sleep(SCRAPE_INTERVAL_SECONDS + 1)
    assert _predict_count(prometheus) - before == SENT  # and not more


def _run_drift(kube, reference: str, current: str) -> None:
    """A Job from the CronJob's template with explicit months (the way `make drift-now` runs it)."""
    name = f"{FULLNAME}-drift-e2e-{current.replace('-', '')}"
    kube.run("-n", NAMESPACE, "delete", "job", name, "--ignore-not-found", "--wait")
    kube.job_from_cronjob(NAMESPACE, f"{FULLNAME}-drift", name, ["--reference", reference, "--current", current])
    eventually(
        f"drift job {reference} vs {current} to succeed",
        lambda: kube.json("-n", NAMESPACE, "get", "job", name)["status"].get("succeeded") == 1,
        timeout=900,
        interval=5,
    )


def _drift_alert_firing(prometheus) -> bool:
    return any(
        a["labels"].get("alertname") == "StreamFlowDriftDetected" and a["state"] == "firing"
        for a in prometheus.alerts()
    )


def test_rule_loaded_and_drift_alert_follows_the_decision(kube, prometheus):
    groups = eventually("our PrometheusRule's groups loaded", lambda: [
        g for g in prometheus.rule_groups() if any(r["name"] == "StreamFlowDriftDetected" for r in g["rules"])
    ], timeout=180)  # fmt: skip
    assert groups[0]["file"].find(NAMESPACE) >= 0, groups[0]["file"]

    _run_drift(kube, "2024-02-29", "2024-03-31")
    eventually("StreamFlowDriftDetected firing after February vs March", lambda: _drift_alert_firing(prometheus), 240)

    _run_drift(kube, "2024-01-31", "2024-02-29")
    eventually(
        "StreamFlowDriftDetected silent after January vs February",
        lambda: not _drift_alert_firing(prometheus) and prometheus.value(
            f'max(streamflow_drift_retraining_triggered{{namespace="{NAMESPACE}"}})') == 0,
        240,
    )  # fmt: skip


def test_make_prometheus_forwards_the_in_cluster_prometheus():
    """`make prometheus` as the README runs it: a port-forward to 127.0.0.1:9090 until stopped."""
    forward = subprocess.Popen(
        ["make", "--no-print-directory", "prometheus", "CLUSTER=local"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        ready = eventually(
            "Prometheus on 127.0.0.1:9090", lambda: httpx.get("http://127.0.0.1:9090/-/ready", timeout=5), 60, 1
        )
        assert ready.status_code == 200
        build = httpx.get("http://127.0.0.1:9090/api/v1/status/buildinfo", timeout=5).json()["data"]
        assert build["version"] == toolchain.VERSIONS["PROMETHEUS_VERSION"].lstrip("v")  # the one built here
    finally:
        os.killpg(forward.pid, signal.SIGTERM)
        forward.wait(timeout=30)
