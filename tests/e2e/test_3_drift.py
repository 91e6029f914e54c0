"""Proof 3: the drift CronJob fires on its own (per-minute) schedule, and `make drift-now` once: the
status ConfigMap carries the decision annotations, an Event is recorded on it, the HTML/JSON reports
are on the PVC, and the drift metrics reach Prometheus through the Pushgateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamflow.drift import ANNOTATION_PREFIX
from tests.e2e.conftest import FULLNAME, NAMESPACE, make
from tests.support.kube import eventually

CRONJOB = f"{FULLNAME}-drift"
STATUS = f"{FULLNAME}-drift-status"


def _scheduled_runs(kube) -> list[dict]:
    """Jobs the CronJob controller made (owned by the CronJob: not `make drift-now`'s)."""
    jobs = kube.json("-n", NAMESPACE, "get", "jobs", "-l", "app.kubernetes.io/component=drift")["items"]
    return [job for job in jobs if any(o["kind"] == "CronJob" for o in job["metadata"].get("ownerReferences", []))]


def test_cronjob_fires_on_its_schedule(kube):
    # the chart's default is daily at 06:00 UTC: `make deploy` with the per-minute schedule first
    upgraded = make("deploy", "HELM_ARGS=-f tests/e2e/e2e-values.yaml")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr

    def succeeded() -> list[dict]:
        return [job for job in _scheduled_runs(kube) if job["status"].get("succeeded") == 1]

    done = eventually("a drift Job made by the CronJob's schedule to succeed", succeeded, timeout=420)
    cronjob = kube.json("-n", NAMESPACE, "get", "cronjob", CRONJOB)
    assert cronjob["spec"]["schedule"] == "*/1 * * * *"
    assert cronjob["status"].get("lastSuccessfulTime"), cronjob["status"]
    assert done[0]["metadata"]["name"].startswith(f"{CRONJOB}-")
    # From here on the proofs run the job by hand: stop the schedule so no run races them
    kube.run("-n", NAMESPACE, "patch", "cronjob", CRONJOB, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    eventually("the running scheduled drift Jobs to finish", lambda: not [
        job for job in _scheduled_runs(kube) if not job["status"].get("succeeded") and not job["status"].get("failed")
    ], timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def drift_now(kube) -> str:
    """`make drift-now CLUSTER=local` as the README has the user run it; its output."""
    result = make("drift-now")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _annotations(kube) -> dict[str, str]:
    found = kube.json("-n", NAMESPACE, "get", "configmap", STATUS)["metadata"].get("annotations", {})
    return {
        key.removeprefix(ANNOTATION_PREFIX): value for key, value in found.items() if key.startswith(ANNOTATION_PREFIX)
    }


def test_drift_now_prints_the_decision_and_annotates_the_status(kube, drift_now):
    annotations = _annotations(kube)
    assert annotations["decision"] in ("RETRAINING_TRIGGERED", "NO_ACTION")
    assert f"drift_share={float(annotations['drift-share']):.2f} -> {annotations['decision']}" in drift_now
    for key in ("threshold", "target-drift", "reference", "current", "report-html", "report-json", "finished-at"):
        assert annotations.get(key), f"annotation {key} missing: {annotations}"


def test_an_event_is_recorded_on_the_status_configmap(kube, drift_now):
    events = kube.json("-n", NAMESPACE, "get", "events", "--field-selector", f"involvedObject.name={STATUS}")["items"]
    reasons = {event["reason"] for event in events}
    assert reasons & {"RetrainingTriggered", "NoDriftAction"}, reasons


def test_reports_are_on_the_pvc(kube, drift_now):
    annotations = _annotations(kube)
    claim = kube.json("-n", NAMESPACE, "get", "pvc", f"{FULLNAME}-drift-reports")
    assert claim["status"]["phase"] == "Bound"
    volume = kube.json("get", "pv", claim["spec"]["volumeName"])
    # local-path-provisioner's volumes are host directories on this single node
    host_dir = Path((volume["spec"].get("hostPath") or volume["spec"]["local"])["path"])
    for key in ("report-html", "report-json"):
        report = host_dir / Path(annotations[key]).relative_to("/var/lib/streamflow/reports")
        assert report.is_file() and report.stat().st_size > 1000, report
    report_json = json.loads(
        (host_dir / Path(annotations["report-json"]).relative_to("/var/lib/streamflow/reports")).read_text()
    )
    assert report_json  # the Evidently snapshot, parsed


def test_drift_metrics_reach_prometheus_through_the_pushgateway(kube, prometheus, drift_now):
    annotations = _annotations(kube)
    expected = float(annotations["drift-share"])

    def pushed_share() -> float | None:
        value = prometheus.value(f'streamflow_drift_share{{namespace="{NAMESPACE}"}}')
        return value if value is not None and abs(value - expected) < 1e-3 else None

    eventually(f"streamflow_drift_share == {expected} in Prometheus", pushed_share, timeout=120)
    triggered = prometheus.value(f'streamflow_drift_retraining_triggered{{namespace="{NAMESPACE}"}}')
    assert triggered == (1.0 if annotations["decision"] == "RETRAINING_TRIGGERED" else 0.0)


def test_make_status_shows_the_running_tag_and_the_decision(kube, drift_now):
    result = make("status")
    assert result.returncode == 0, result.stdout + result.stderr
    image = kube.json("-n", NAMESPACE, "get", "deployment", f"{FULLNAME}-api")["spec"]["template"]["spec"]
    assert image["containers"][0]["image"] in result.stdout  # the content tag the pods run
    decision = _annotations(kube)["decision"]
    assert f"{ANNOTATION_PREFIX}decision={decision}" in result.stdout
