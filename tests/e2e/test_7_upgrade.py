"""Proof 5 (last: it ends with the uninstall): `helm upgrade` with api.replicas=2, another
drift.threshold and a new pod template rolls out while traffic flows through the Service with 0
failed requests; `helm uninstall` keeps the status ConfigMap and its last decision."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter

import httpx

from tests.e2e.conftest import FULLNAME, NAMESPACE, RELEASE
from tools import toolchain

NEW_THRESHOLD = "0.45"
MAX_REQUESTS = 20_000  # bounds the load loop in count as well as in time
MAX_SECONDS = 900.0


class Traffic(threading.Thread):
    """POST /predict to the Service's ClusterIP (the host reaches it through kube-proxy's rules, so
    the Service, not a port-forward to one pod, picks the endpoint) until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.outcomes: Counter[str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set() and time.monotonic() < deadline and self.outcomes.total() < MAX_REQUESTS:
                try:
                    status = client.post("/predict", json={"user_id": "U0001"}).status_code
                    self.outcomes[str(status)] += 1
                except httpx.HTTPError as error:
                    self.outcomes[type(error).__name__] += 1
                time.sleep(0.02)


def _helm(kube, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(toolchain.helm()), "--kubeconfig", kube.kubeconfig, *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_upgrade_rolls_out_with_no_failed_request(kube):
    service = kube.json("-n", NAMESPACE, "get", "service", f"{FULLNAME}-api")
    url = f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"
    old_pods = {
        p["metadata"]["name"]
        for p in kube.json("-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=api")["items"]
    }
    traffic = Traffic(url)
    traffic.start()
    time.sleep(5)
    upgrade = _helm(
        kube, "upgrade", RELEASE, "charts/streamflow", "-n", NAMESPACE, "--reuse-values",
        "--set", "api.replicas=2", "--set-json", f"drift.threshold={NEW_THRESHOLD}",  # --set reads 0.45 as a string
        # a changed pod template: the API Deployment rolls its pods, not only scales
        "--set-string", f"api.podAnnotations.e2e-rollout={int(time.time())}",
    )  # fmt: skip
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    rollout = kube.run(
        "-n", NAMESPACE, "rollout", "status", f"deployment/{FULLNAME}-api", "--timeout=600s", timeout=660
    )
    time.sleep(10)  # traffic on the new pods too
    traffic.stop.set()
    traffic.join(timeout=30)

    assert traffic.outcomes["200"] > 100, traffic.outcomes
    assert set(traffic.outcomes) == {"200"}, f"failed requests during the rollout: {traffic.outcomes}; {rollout}"
    deployment = kube.json("-n", NAMESPACE, "get", "deployment", f"{FULLNAME}-api")
    assert deployment["status"]["readyReplicas"] == 2
    new_pods = {
        p["metadata"]["name"]
        for p in kube.json("-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=api")["items"]
    }
    assert not old_pods & new_pods, "the pods were not replaced"
    cronjob = kube.json("-n", NAMESPACE, "get", "cronjob", f"{FULLNAME}-drift")
    env = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "STREAMFLOW_DRIFT_THRESHOLD", "value": NEW_THRESHOLD} in env


def test_uninstall_keeps_the_status_configmap(kube):
    before = kube.json("-n", NAMESPACE, "get", "configmap", f"{FULLNAME}-drift-status")["metadata"]["annotations"]
    uninstall = _helm(kube, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", timeout=600)
    assert uninstall.returncode == 0, uninstall.stdout + uninstall.stderr
    assert not kube.json("-n", NAMESPACE, "get", "deployments")["items"], "the release's Deployments stayed"
    after = kube.json("-n", NAMESPACE, "get", "configmap", f"{FULLNAME}-drift-status")["metadata"]["annotations"]
    decision_keys = {k: v for k, v in before.items() if k.startswith("drift.streamflow.io/")}
    assert decision_keys and all(after.get(k) == v for k, v in decision_keys.items())
