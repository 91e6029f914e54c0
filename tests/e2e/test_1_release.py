"""Proof 1: every pod of the release and of monitoring is Ready with 0 restarts and no traceback in
its log; the bootstrap hook Job completed before the API turned Ready; `helm test` passes."""

from __future__ import annotations

import subprocess

from tests.e2e.conftest import FULLNAME, MONITORING_NAMESPACE, NAMESPACE, RELEASE
from tools import toolchain


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


def test_bootstrap_hook_completed_before_the_api_was_ready(kube):
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
        [str(toolchain.helm()), "--kubeconfig", kube.kubeconfig, "test", RELEASE, "-n", NAMESPACE, "--logs"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Phase:          Succeeded" in result.stdout
