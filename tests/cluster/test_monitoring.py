"""Monitoring on the local node behaves as kube-prometheus-stack's (`make monitoring CLUSTER=local`).

Against the running node (`make cluster CLUSTER=local`); the fixture runs `monitoring.up` itself
(idempotent: seconds when it is already up). In a throwaway namespace (Pod Security "restricted"):
the Pushgateway image the chart runs locally behind a Service, two ServiceMonitors selecting it
(one labelled `release: kps`, one not), two PrometheusRules (likewise), a suspended CronJob and a
Job. Through `kubectl port-forward service/prometheus-operated`:

- the operator turned the labelled ServiceMonitor into a scrape job, and its target is up; the
  unlabelled one is in neither the configuration nor the targets;
- the labelled rule group is loaded and its recording rule has a value; the unlabelled is not;
- kube-state-metrics is scraped (target up) and exports kube_cronjob_* and kube_job_* series of
  the namespace's CronJob (with a timeZone, as the chart's: a build without the time zone
  database crashed on it) and Job.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import yaml

from tools.cluster import images, monitoring, node
from tools.cluster.addons import RESTRICTED_CONTAINER
from tools.cluster.layout import Layout

T = TypeVar("T")
TIMEOUT = 240.0  # operator reconcile + config-reloader reload + a 15s scrape/evaluation interval, on busy cores
NAMES = monitoring.Names()
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "runAsGroup": 65534,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def eventually(what: str, probe: Callable[[], T | None], timeout: float = TIMEOUT) -> T:
    """probe()'s first truthy result; fails with `what` and the last result when none comes."""
    deadline, last, reason = time.monotonic() + timeout, None, None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except OSError as error:
            last, reason = None, error
        if last:
            return last
        time.sleep(2)
    raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r}, {reason!r})")


@pytest.fixture(scope="module")
def stack(layout: Layout) -> Layout:
    monitoring.up(layout, NAMES)
    return layout


@pytest.fixture(scope="module")
def prometheus(stack: Layout) -> Iterator[Callable[..., Any]]:
    """GET a Prometheus API path through `kubectl port-forward service/prometheus-operated`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    forward = subprocess.Popen(
        [str(node.kubectl_path()), f"--kubeconfig={stack.admin_kubeconfig}", "-n", NAMES.namespace,
         "port-forward", "service/prometheus-operated", f"{port}:9090"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def get(path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}{query}", timeout=10) as response:
            return json.load(response)["data"]

    try:
        eventually("the port-forward to prometheus-operated", lambda: get("/api/v1/status/buildinfo"), 60)
        yield get
    finally:
        forward.terminate()
        forward.wait(10)


def _object(kind: str, name: str, labels: dict[str, str], spec: dict, api: str = monitoring.MONITORING) -> dict:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "labels": labels}, "spec": spec}


def _rule_group(name: str, namespace: str) -> dict:
    record = {
        "record": f"streamflow_monitoring_test:{name.replace('-', '_')}",
        "expr": f'up{{namespace="{namespace}"}}',
    }
    return {"groups": [{"name": f"monitoring-test-{name}", "rules": [record]}]}


@pytest.fixture(scope="module")
def namespace(stack: Layout) -> Iterator[str]:
    """The Pushgateway behind a Service, monitors and rules with and without `release: kps`, a CronJob, a Job."""
    name = f"mon-test-{secrets.token_hex(3)}"
    pushgateway = images.chart_dependency_images(stack)[0]
    images.import_missing(stack, [pushgateway])
    app = {"app": "pushgateway"}
    container = {"image": pushgateway.name, "imagePullPolicy": "Never", "securityContext": RESTRICTED_CONTAINER}
    pod = {"securityContext": POD_SECURITY, "terminationGracePeriodSeconds": 2}
    version_job = {
        "template": {
            "spec": {
                **pod,
                "restartPolicy": "Never",
                "containers": [{**container, "name": "version", "args": ["--version"]}],
            }
        }
    }
    manifests = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "pushgateway", "labels": app},
            "spec": {
                "selector": {"matchLabels": app},
                "template": {
                    "metadata": {"labels": app},
                    "spec": {
                        **pod,
                        "containers": [
                            {**container, "name": "pushgateway", "ports": [{"name": "http", "containerPort": 9091}]}
                        ],
                    },
                },
            },
        },
        _object("Service", "pushgateway", app, {"selector": app, "ports": [{"name": "http", "port": 9091}]}, "v1"),
        _object(
            "ServiceMonitor",
            "with-release",
            {"release": NAMES.release},
            {"selector": {"matchLabels": app}, "endpoints": [{"port": "http", "honorLabels": True}]},
        ),
        _object(
            "ServiceMonitor",
            "without-release",
            {},
            {"selector": {"matchLabels": app}, "endpoints": [{"port": "http", "honorLabels": True}]},
        ),
        _object("PrometheusRule", "with-release", {"release": NAMES.release}, _rule_group("with-release", name)),
        _object("PrometheusRule", "without-release", {}, _rule_group("without-release", name)),
        _object(
            "CronJob",
            "suspended",
            {},
            {"schedule": "0 0 1 1 *", "timeZone": "Etc/UTC", "suspend": True, "jobTemplate": {"spec": version_job}},
            "batch/v1",
        ),
        _object("Job", "version", {}, version_job, "batch/v1"),
    ]
    node.kubectl(stack, "create", "namespace", name)
    node.kubectl(stack, "label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    try:
        node.kubectl(stack, "-n", name, "apply", "-f", "-", stdin=yaml.safe_dump_all(manifests))
        yield name
    finally:
        node.kubectl(stack, "delete", "namespace", name, "--wait=true", timeout=300)


def _targets(prometheus: Callable[..., Any]) -> list[dict]:
    return prometheus("/api/v1/targets", state="active")["activeTargets"]


def test_operator_turns_only_the_labelled_service_monitor_into_an_up_target(
    prometheus: Callable[..., Any], namespace: str
) -> None:
    pool = f"serviceMonitor/{namespace}/with-release/0"

    def up_target() -> list[dict]:
        return [t for t in _targets(prometheus) if t["scrapePool"] == pool and t["health"] == "up"]

    found = eventually(f"target {pool} up", up_target)
    assert found[0]["labels"]["namespace"] == namespace
    # The same reload that brought the labelled one: the unlabelled monitor is in neither the
    # configuration the operator generated nor the targets
    config = prometheus("/api/v1/status/config")["yaml"]
    assert f"job_name: {pool}" in config
    assert f"serviceMonitor/{namespace}/without-release/" not in config
    assert not [t for t in _targets(prometheus) if "without-release" in t["scrapePool"]]


def test_only_the_labelled_prometheus_rule_is_loaded_and_evaluated(
    prometheus: Callable[..., Any], namespace: str
) -> None:
    record = "streamflow_monitoring_test:with_release"

    def evaluated() -> list[dict]:
        return prometheus("/api/v1/query", query=f'{record}{{namespace="{namespace}"}} == 1')["result"]

    eventually(f"{record} evaluated to 1 (the Pushgateway target up)", evaluated)
    groups = prometheus("/api/v1/rules")["groups"]
    loaded = {group["name"]: group for group in groups}
    assert "monitoring-test-with-release" in loaded
    assert f"{namespace}-with-release" in loaded["monitoring-test-with-release"]["file"]
    assert loaded["monitoring-test-with-release"]["rules"][0]["health"] == "ok"
    assert "monitoring-test-without-release" not in loaded


def test_kube_state_metrics_is_scraped_with_cronjob_and_job_series(
    prometheus: Callable[..., Any], namespace: str
) -> None:
    def ksm_up() -> list[dict]:
        return [
            t for t in _targets(prometheus) if t["labels"].get("job") == "kube-state-metrics" and t["health"] == "up"
        ]

    found = eventually("a kube-state-metrics target up", ksm_up)
    assert found[0]["scrapePool"] == f"serviceMonitor/{NAMES.namespace}/{NAMES.kube_state_metrics}/0"

    def series(query: str) -> Callable[[], list[dict]]:
        return lambda: prometheus("/api/v1/query", query=query)["result"]

    eventually("kube_cronjob_spec_suspend of the suspended CronJob", series(
        f'kube_cronjob_spec_suspend{{namespace="{namespace}", cronjob="suspended"}} == 1'))  # fmt: skip
    eventually("kube_job_status_succeeded of the finished Job", series(
        f'kube_job_status_succeeded{{namespace="{namespace}", job_name="version"}} == 1'))  # fmt: skip
