"""The chart's default requests, with kube-prometheus-stack as k8s/kube-prometheus-stack.values.yaml
configures it, fit one node of 2 CPUs and 4 GiB beside kind's or minikube's own system pods.

What runs at once: every Deployment (x replicas), StatefulSet and DaemonSet of both charts; the
largest of StreamFlow's one-off pods (the bootstrap Job at install/upgrade, the `helm test` pod
after the rollout: never both); the largest set of StreamFlow's CronJobs whose runs can overlap (each
may start up to startingDeadlineSeconds late and run activeDeadlineSeconds; concurrencyPolicy
Forbid keeps one run per CronJob); and kps's largest Job (its admission-webhook certificate Jobs
run one after the other at its install/upgrade). A pod requests the sum of its containers, or its
largest init container if that is more.

kube-prometheus-stack cannot be rendered here: its chart repository is out of reach, e.g.
  helm pull kube-prometheus-stack --repo https://prometheus-community.github.io/helm-charts --version 86.0.0
  Error: looks like "https://prometheus-community.github.io/helm-charts" is not a valid chart
  repository or cannot be reached: ... lookup prometheus-community.github.io ...: no such host
so KPS_WORKLOADS lists, by hand, the workloads kube-prometheus-stack KPS_VERSION runs and the
values each container's resources come from (read from that version's values.yaml and
templates), and the test fails when one that our values leave enabled has no explicit requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import yaml
from kubernetes.utils.quantity import parse_quantity

from tests.support.chart import find, pod_template, render
from tests.support.processes import REPO_ROOT
from tools import toolchain

KPS_VALUES = REPO_ROOT / "k8s" / "kube-prometheus-stack.values.yaml"
NODE = {"cpu": Decimal("2"), "memory": Decimal(4 * 1024**3)}
MI = 1024**2

# kind v1.33 (kubeadm's static pods, kind's CoreDNS and kindnet) and minikube v1.33 with
# `--cni=calico` as `make cluster` starts it. Sources: kubeadm v1.33.13 (cmd/kubeadm/app/phases:
# controlplane/manifests.go 250m/200m/100m, etcd/local.go 100m + 100Mi, addons/dns: CoreDNS 100m +
# 70Mi, 2 replicas); kind's pkg/build/nodeimage/const_cni.go (kindnet 100m + 50Mi); kube-proxy and
# local-path-provisioner / storage-provisioner request nothing; minikube runs one CoreDNS and
# calico's manifest requests 250m for calico-node.
_CONTROL_PLANE = {"kube-apiserver": ("250m", "0"), "kube-controller-manager": ("200m", "0")}
_CONTROL_PLANE |= {"kube-scheduler": ("100m", "0"), "etcd": ("100m", "100Mi"), "coredns": ("100m", "70Mi")}
SYSTEM_PODS = {
    "kind": _CONTROL_PLANE | {"coredns-2": ("100m", "70Mi"), "kindnet": ("100m", "50Mi")},
    "minikube": _CONTROL_PLANE | {"calico-node": ("250m", "0")},
}

# kube-prometheus-stack 86.0.0's defaults of the switches below (its values.yaml)
KPS_VERSION = toolchain.VERSIONS["KPS_VERSION"]
KPS_DEFAULTS = {
    "prometheus.enabled": True,
    "alertmanager.enabled": True,
    "prometheusOperator.enabled": True,
    "prometheusOperator.admissionWebhooks.enabled": True,
    "prometheusOperator.admissionWebhooks.deployment.enabled": False,
    "prometheusOperator.admissionWebhooks.patch.enabled": True,
    "prometheusOperator.admissionWebhooks.certManager.enabled": False,
    "grafana.enabled": True,
    "grafana.sidecar.dashboards.enabled": True,
    "grafana.sidecar.datasources.enabled": True,
    "kubeStateMetrics.enabled": True,
    "nodeExporter.enabled": True,
    "thanosRuler.enabled": False,
    "crds.upgradeJob.enabled": False,
    "prometheus.prometheusSpec.replicas": 1,
    "alertmanager.alertmanagerSpec.replicas": 1,
    "prometheusOperator.admissionWebhooks.deployment.replicas": 1,
}
# the operator's config-reloader sidecar (and init container) of Prometheus, Alertmanager, ThanosRuler
RELOADER = "prometheusOperator.prometheusConfigReloader.resources"


@dataclass(frozen=True)
class KpsWorkload:
    name: str
    enabled_if: tuple[str, ...]  # all true: it runs (`!path`: the path is false)
    containers: tuple[tuple[str, str], ...]  # (container, values path of its resources)
    replicas: str = ""  # values path of its replicas; empty: one (a DaemonSet: one on our node)
    job: bool = False


KPS_WORKLOADS = (
    KpsWorkload(
        "prometheus",
        ("prometheus.enabled",),
        (("prometheus", "prometheus.prometheusSpec.resources"), ("config-reloader", RELOADER)),
        "prometheus.prometheusSpec.replicas",
    ),
    KpsWorkload(
        "alertmanager",
        ("alertmanager.enabled",),
        (("alertmanager", "alertmanager.alertmanagerSpec.resources"), ("config-reloader", RELOADER)),
        "alertmanager.alertmanagerSpec.replicas",
    ),
    KpsWorkload(
        "prometheus-operator", ("prometheusOperator.enabled",), (("operator", "prometheusOperator.resources"),)
    ),
    KpsWorkload(
        "admission webhook Deployment",
        (
            "prometheusOperator.enabled",
            "prometheusOperator.admissionWebhooks.enabled",
            "prometheusOperator.admissionWebhooks.deployment.enabled",
        ),
        (("webhook", "prometheusOperator.admissionWebhooks.deployment.resources"),),
        "prometheusOperator.admissionWebhooks.deployment.replicas",
    ),
    KpsWorkload(
        "admission webhook certificate Jobs",
        (
            "prometheusOperator.enabled",
            "prometheusOperator.admissionWebhooks.enabled",
            "prometheusOperator.admissionWebhooks.patch.enabled",
            "!prometheusOperator.admissionWebhooks.certManager.enabled",
        ),
        (("create/patch", "prometheusOperator.admissionWebhooks.patch.resources"),),
        job=True,
    ),
    KpsWorkload("CRD upgrade Job", ("crds.upgradeJob.enabled",), (("upgrade", "crds.upgradeJob.resources"),), job=True),
    KpsWorkload(
        "grafana",
        ("grafana.enabled",),
        (
            ("grafana", "grafana.resources"),
            ("grafana-sc-dashboard", "grafana.sidecar.resources?grafana.sidecar.dashboards.enabled"),
            ("grafana-sc-datasources", "grafana.sidecar.resources?grafana.sidecar.datasources.enabled"),
        ),
    ),
    KpsWorkload("kube-state-metrics", ("kubeStateMetrics.enabled",), (("ksm", "kube-state-metrics.resources"),)),
    KpsWorkload("node-exporter", ("nodeExporter.enabled",), (("node-exporter", "prometheus-node-exporter.resources"),)),
    KpsWorkload(
        "thanos-ruler",
        ("thanosRuler.enabled",),
        (("thanos-ruler", "thanosRuler.thanosRulerSpec.resources"), ("config-reloader", RELOADER)),
    ),
)


Requests = dict[str, Decimal]  # "cpu" in cores, "memory" in bytes
ZERO: Requests = {"cpu": Decimal(0), "memory": Decimal(0)}


def add(*requests: Requests) -> Requests:
    return {key: sum((r[key] for r in requests), Decimal(0)) for key in ZERO}


def biggest(requests: list[Requests]) -> Requests:
    """Per resource, the largest of alternatives that never run together."""
    return {key: max((r[key] for r in requests), default=Decimal(0)) for key in ZERO}


def quantities(cpu: str, memory: str) -> Requests:
    return {"cpu": parse_quantity(cpu), "memory": parse_quantity(memory)}


def _lookup(values: dict, path: str, default: Any = None) -> Any:
    node: Any = values
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return KPS_DEFAULTS.get(path, default)
        node = node[key]
    return node


# --- StreamFlow's chart -------------------------------------------------------------------------


def pod_requests(template: dict) -> Requests:
    """A pod's effective requests; every container must state its own."""
    spec = template["spec"]

    def of(container: dict) -> Requests:
        requests = container.get("resources", {}).get("requests", {})
        assert {"cpu", "memory"} <= requests.keys(), f"{container['name']}: no CPU and memory requests"
        return quantities(str(requests["cpu"]), str(requests["memory"]))

    containers = add(*(of(c) for c in spec["containers"]))
    return biggest([containers, *(of(c) for c in spec.get("initContainers", []))])


def _daily_window(cronjob: dict) -> tuple[int, int]:
    """(start minute of the day, minutes a run may last from then); a schedule that is not daily
    at a fixed time, or a run without a deadline, may overlap anything: the whole day."""
    spec = cronjob["spec"]
    fields = spec["schedule"].split()
    deadline = spec["jobTemplate"]["spec"].get("activeDeadlineSeconds")
    if len(fields) != 5 or fields[2:] != ["*", "*", "*"] or not all(f.isdigit() for f in fields[:2]) or not deadline:
        return 0, 24 * 60
    start = int(fields[1]) * 60 + int(fields[0])
    return start, (spec.get("startingDeadlineSeconds", 0) + deadline + 59) // 60


def concurrent_cronjobs(cronjobs: list[dict]) -> Requests:
    """The most that StreamFlow's CronJobs can request at one moment."""
    windows = [(*_daily_window(c), pod_requests(pod_template(c))) for c in cronjobs]
    moments = [start for start, _, _ in windows]
    sums = [add(*(r for s, length, r in windows if (moment - s) % (24 * 60) <= length)) for moment in moments]
    return biggest(sums)


def chart_requests(objects: list[dict]) -> dict[str, Requests]:
    steady, one_off = [], []
    for obj in objects:
        kind = obj["kind"]
        if kind in {"Deployment", "StatefulSet"}:
            steady.append({k: v * obj["spec"].get("replicas", 1) for k, v in pod_requests(pod_template(obj)).items()})
        elif kind == "DaemonSet":
            steady.append(pod_requests(pod_template(obj)))
        elif kind in {"Job", "Pod"}:
            # the bootstrap Job (once per revision) and the `helm test` pod (after the rollout)
            one_off.append(pod_requests(pod_template(obj)))
    return {
        "steady": add(*steady),
        "largest one-off pod": biggest(one_off),
        "overlapping CronJobs": concurrent_cronjobs(find(objects, "CronJob")),
    }


# --- kube-prometheus-stack ----------------------------------------------------------------------


def kps_requests(values: dict) -> dict[str, Requests]:
    """Steady requests and the largest Job of kps with these values; raises naming every enabled
    container whose requests our values leave to kps's defaults (none of which sets any)."""
    missing: list[str] = []
    steady: list[Requests] = []
    jobs: list[Requests] = []
    for workload in KPS_WORKLOADS:
        if not all(bool(_lookup(values, p.lstrip("!"))) != p.startswith("!") for p in workload.enabled_if):
            continue
        pod = []
        for container, reference in workload.containers:
            path, _, condition = reference.partition("?")
            if condition and not _lookup(values, condition):
                continue
            requests = (_lookup(values, path) or {}).get("requests", {})
            if not {"cpu", "memory"} <= requests.keys():
                missing.append(f"{workload.name}/{container}: {path}.requests")
                continue
            pod.append(quantities(str(requests["cpu"]), str(requests["memory"])))
        replicas = int(_lookup(values, workload.replicas, 1)) if workload.replicas else 1
        (jobs if workload.job else steady).append({k: v * replicas for k, v in add(*pod).items()})
    if missing:
        raise AssertionError(f"kube-prometheus-stack {KPS_VERSION} workloads without explicit requests: {missing}")
    return {"steady": add(*steady), "largest Job": biggest(jobs)}


# --- the budget ---------------------------------------------------------------------------------


def budget(objects: list[dict], kps_values: dict, system: str) -> dict[str, Requests]:
    parts = {f"streamflow {k}": v for k, v in chart_requests(objects).items()}
    parts |= {f"kps {k}": v for k, v in kps_requests(kps_values).items()}
    parts[f"{system} system pods"] = add(*(quantities(*r) for r in SYSTEM_PODS[system].values()))
    parts["total"] = add(*parts.values())
    return parts


def describe(parts: dict[str, Requests]) -> str:
    return "; ".join(f"{k} {v['cpu'] * 1000:.0f}m/{v['memory'] / MI:.0f}Mi" for k, v in parts.items())


def over(parts: dict[str, Requests]) -> list[str]:
    return [key for key in ZERO if parts["total"][key] > NODE[key]]


@pytest.fixture(scope="module")
def default_objects() -> list[dict]:
    return render("default")


@pytest.fixture(scope="module")
def kps_values() -> dict:
    return yaml.safe_load(KPS_VALUES.read_text())


@pytest.mark.parametrize("system", sorted(SYSTEM_PODS))
def test_default_requests_with_kube_prometheus_stack_fit_a_2_cpu_4_gib_node(default_objects, kps_values, system):
    parts = budget(default_objects, kps_values, system)
    assert not over(parts), f"over {NODE['cpu']} CPU / 4096Mi: {describe(parts)}"
    print(describe(parts))


def test_the_old_defaults_did_not_fit(kps_values) -> None:
    """Negative control: the requests before issue 20 (API 250m, bootstrap and drift 500m and
    1Gi, PostgreSQL 250m...) fail the same sum."""
    old = {"cpu": "500m", "memory": "1Gi"}
    values = {
        "api": {"resources": {"requests": {"cpu": "250m"}}},
        "database": {"postgresql": {"resources": {"requests": {"cpu": "250m"}}}},
        "performance": {"resources": {"requests": {"cpu": "250m"}}},
        **{job: {"resources": {"requests": old}} for job in ("bootstrap", "drift", "retrain")},
    }
    assert "cpu" in over(budget(render("default", values), kps_values, "minikube"))


def test_overlapping_cronjobs_add_up_and_separate_ones_do_not(default_objects) -> None:
    cronjobs = {c["metadata"]["labels"]["app.kubernetes.io/component"]: c for c in find(default_objects, "CronJob")}
    one = pod_requests(pod_template(cronjobs["drift"]))
    # default schedules: drift 06:00, retrain 06:30 (runs up to an hour), performance 06:45
    assert concurrent_cronjobs(list(cronjobs.values()))["cpu"] == 2 * one["cpu"]
    everything_at_once = render("default", {key: {"schedule": "0 6 1 * *"} for key in cronjobs})
    assert concurrent_cronjobs(find(everything_at_once, "CronJob"))["cpu"] == 3 * one["cpu"]


@pytest.mark.parametrize(
    "path",
    [
        "prometheus.prometheusSpec.resources",
        RELOADER,
        "grafana.sidecar.resources",
        "prometheusOperator.admissionWebhooks.patch.resources",
        "prometheus-node-exporter.resources",
    ],
)
def test_a_kps_workload_without_explicit_requests_fails(kps_values, path: str) -> None:
    values = yaml.safe_load(KPS_VALUES.read_text())
    *parents, leaf = path.split(".")
    node = values
    for key in parents:
        node = node[key]
    del node[leaf]
    with pytest.raises(AssertionError, match=f"{path}.requests"):
        kps_requests(values)


def test_a_kps_component_switched_on_needs_requests_too(kps_values) -> None:
    with pytest.raises(AssertionError, match="thanos-ruler"):
        kps_requests(kps_values | {"thanosRuler": {"enabled": True}})


def test_the_kps_model_is_for_the_pinned_version() -> None:
    """KPS_DEFAULTS and KPS_WORKLOADS were read from kube-prometheus-stack 86.0.0: moving
    KPS_VERSION means reading its values.yaml and templates again."""
    assert KPS_VERSION == "86.0.0"
