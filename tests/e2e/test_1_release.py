"""Proof 1: every pod of the release and of monitoring is Ready with 0 restarts and no traceback in
its log; the bootstrap Job completed before the API turned Ready; `helm test` passes; the drift
dashboard says "no drift run yet" before the first run."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e.conftest import FULLNAME, MONITORING_NAMESPACE, NAMESPACE, RELEASE
from tests.support import images
from tools import toolchain
from tools.monitoring import dashboards


def _pods(kube, namespace: str) -> list[dict]:
    return kube.json("-n", namespace, "get", "pods")["items"]


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def test_every_pod_is_ready_or_done_with_no_restart(kube):
    for namespace in (NAMESPACE, MONITORING_NAMESPACE):
        pods = _pods(kube, namespace)
        assert pods, f"no pods in {namespace}"
        for pod in pods:
            name, phase = pod["metadata"]["name"], pod["status"]["phase"]
            # Job pods (bootstrap hook, drift runs) end Succeeded; every other pod is Running and Ready
            assert phase == "Succeeded" or (phase == "Running" and _ready(pod)), f"{namespace}/{name}: {phase}"
            restarts = {c["name"]: c["restartCount"] for c in pod["status"].get("containerStatuses", [])}
            assert not any(restarts.values()), f"{namespace}/{name} restarted: {restarts}"


def test_no_traceback_in_any_log(kube):
    for namespace in (NAMESPACE, MONITORING_NAMESPACE):
        for pod in _pods(kube, namespace):
            name = pod["metadata"]["name"]
            for container in pod["spec"]["containers"]:
                log = kube.run("-n", namespace, "logs", name, "-c", container["name"])
                assert "Traceback (most recent call last)" not in log, f"{namespace}/{name}/{container['name']}:\n{log}"


def test_bootstrap_job_completed_before_the_api_was_ready(kube):
    jobs = kube.json("-n", NAMESPACE, "get", "jobs", "-l", "app.kubernetes.io/component=bootstrap")["items"]
    assert [j["metadata"]["name"].rsplit("-", 1)[0] for j in jobs] == [f"{FULLNAME}-bootstrap"]  # this revision's
    job = jobs[0]
    assert job["status"].get("succeeded") == 1, job["status"]
    completed = job["status"]["completionTime"]
    api_pods = kube.json("-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=api")["items"]
    assert api_pods
    for pod in api_pods:
        ready_since = next(c["lastTransitionTime"] for c in pod["status"]["conditions"] if c["type"] == "Ready")
        # RFC 3339 UTC timestamps of one API server compare as strings
        assert completed <= ready_since, f"{pod['metadata']['name']} Ready at {ready_since}, bootstrap done {completed}"


def test_helm_test_passes(kube):
    result = subprocess.run(
        # no --logs: the test pod is deleted once it succeeded (hook-delete-policy hook-succeeded)
        [str(toolchain.helm()), "--kubeconfig", kube.kubeconfig, "test", RELEASE, "-n", NAMESPACE],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Phase:          Succeeded" in result.stdout


def test_drift_dashboard_says_no_run_yet_before_the_first_run(kube, prometheus):
    """Installed with the chart's defaults (daily schedule), nothing has run: the "Drift runs" stat
    of the drift dashboard, evaluated on the in-cluster Prometheus, shows the hint."""
    panel = dashboards.panel(dashboards.committed()["drift.json"], "Drift runs")
    (target,) = panel["targets"]
    jobs = kube.json("-n", NAMESPACE, "get", "jobs", "-l", "app.kubernetes.io/component=drift")["items"]
    assert jobs == [], "a drift job ran already: the proof needs the state before the first run"
    for namespace in (NAMESPACE, ".*"):  # the release, and "All"
        (sample,) = prometheus.query(dashboards.substitute(target["expr"], {"namespace": namespace}))
        assert dashboards.mapped_text(panel, float(sample["value"][1])) == dashboards.NO_DRIFT_RUN_TEXT


LIST_IMAGE = (
    "import importlib.metadata as m, json, os; print(json.dumps({'app': sorted(os.listdir('/app')), "
    "'dists': sorted({d.metadata['Name'] for d in m.distributions()}), 'user': os.getuid()}))"
)


@pytest.mark.parametrize("image", ["api", "jobs"])
def test_each_image_holds_what_the_tests_say(kube, image):
    """The images as built hold exactly the first-party packages tests/support/images.py reads from
    the Dockerfile, and exactly the packages of their own lock (the API image no Evidently)."""
    if image == "api":
        template = kube.json("-n", NAMESPACE, "get", "deployment", f"{FULLNAME}-api")["spec"]["template"]
    else:
        cronjob = kube.json("-n", NAMESPACE, "get", "cronjob", f"{FULLNAME}-drift")
        template = cronjob["spec"]["jobTemplate"]["spec"]["template"]
    reference = template["spec"]["containers"][0]["image"]
    output = kube.run(
        "-n", NAMESPACE, "run", f"e2e-list-{image}", f"--image={reference}", "--image-pull-policy=IfNotPresent",
        "--restart=Never", "--rm", "-i", "--quiet", "--command", "--", "python", "-c", LIST_IMAGE, timeout=180,
    )  # fmt: skip
    found = json.loads(output.strip().splitlines()[-1])
    assert set(found["app"]) == images.image_packages(image)
    assert {images.normalize(d) for d in found["dists"]} == set(images.lock_pins(images.image_lock(image)))
    assert found["user"] == 10001
