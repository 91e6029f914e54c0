"""The local node's monitoring manifests (tools/cluster/monitoring.py) and chart overrides
(k8s/local-values.yaml) are wired as kube-prometheus-stack and the chart expect, without a cluster.

The cluster itself proves the behaviour (tests/cluster/test_monitoring.py, opt-in); these catch a
wrong selector, a privileged container, a broad RBAC rule or a drifted image tag in milliseconds.
"""

from __future__ import annotations

import pytest
import yaml

from tools.cluster import images, monitoring
from tools.toolchain import REPO_ROOT

NAMES = monitoring.Names(release="kps", namespace="monitoring")
SPEC_VALUES = monitoring.kps_values()["prometheus"]["prometheusSpec"]
RESOURCES = {"requests": {"cpu": "1m"}}
CHART_VALUES = yaml.safe_load((REPO_ROOT / "charts" / "streamflow" / "values.yaml").read_text())
LOCAL_VALUES = yaml.safe_load(images.LOCAL_VALUES.read_text())


def all_manifests() -> list[dict]:
    return [
        monitoring.namespace_manifest(NAMES),
        *monitoring.operator_manifests(NAMES, "localhost/streamflow/op:v1", "localhost/streamflow/rl:v1", RESOURCES),
        *monitoring.prometheus_manifests(NAMES, "localhost/streamflow/prometheus:v3.5.0", "v3.5.0", SPEC_VALUES),
        *monitoring.kube_state_metrics_manifests(NAMES, "localhost/streamflow/ksm:v2"),
    ]


def one(kind: str, name: str | None = None) -> dict:
    found = [m for m in all_manifests() if m["kind"] == kind and name in (None, m["metadata"]["name"])]
    assert len(found) == 1, f"{kind} {name}: {len(found)}"
    return found[0]


@pytest.mark.parametrize("kind", ["serviceMonitor", "podMonitor", "probe", "scrapeConfig", "rule"])
def test_prometheus_selects_release_kps_in_every_namespace_as_kps_defaults_do(kind: str) -> None:
    spec = one("Prometheus")["spec"]
    assert spec[f"{kind}Selector"] == {"matchLabels": {"release": "kps"}}
    assert spec[f"{kind}NamespaceSelector"] == {}


def test_prometheus_takes_interval_retention_and_resources_from_the_kps_values() -> None:
    spec = one("Prometheus")["spec"]
    for key in ("scrapeInterval", "evaluationInterval", "retention", "resources"):
        assert spec[key] == SPEC_VALUES[key]
    assert spec["version"] == "v3.5.0" and spec["imagePullPolicy"] == "IfNotPresent"


def test_every_service_monitor_carries_the_release_label_kps_selects() -> None:
    monitors = [m for m in all_manifests() if m["kind"] == "ServiceMonitor"]
    assert {m["metadata"]["name"] for m in monitors} == {
        NAMES.operator,
        NAMES.prometheus,
        NAMES.kubelet_service,
        NAMES.kube_state_metrics,
    }
    assert all(m["metadata"]["labels"]["release"] == "kps" for m in monitors)


def test_each_service_monitor_selects_a_service_it_ships_by_its_labels_and_port() -> None:
    services = [m for m in all_manifests() if m["kind"] == "Service"]
    for monitor in (m for m in all_manifests() if m["kind"] == "ServiceMonitor"):
        if monitor["metadata"]["name"] == NAMES.kubelet_service:
            continue  # the operator writes that Service (--kubelet-service) in kube-system
        wanted = monitor["spec"]["selector"]["matchLabels"].items()
        matching = [s for s in services if wanted <= s["metadata"]["labels"].items()]
        assert len(matching) == 1, monitor["metadata"]["name"]
        ports = {port["name"] for port in matching[0]["spec"]["ports"]}
        assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= ports


def test_pods_are_non_root_read_only_without_capabilities_with_runtime_default_seccomp() -> None:
    deployments = [m for m in all_manifests() if m["kind"] == "Deployment"]
    assert len(deployments) == 2
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] and not context["allowPrivilegeEscalation"]
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert container["imagePullPolicy"] == "IfNotPresent"
    prometheus = one("Prometheus")["spec"]["securityContext"]
    assert prometheus["runAsNonRoot"] and prometheus["seccompProfile"] == {"type": "RuntimeDefault"}
    assert one("Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_rbac_has_no_wildcards_and_writes_secrets_only_in_the_monitoring_namespace() -> None:
    roles = [m for m in all_manifests() if m["kind"] in ("ClusterRole", "Role")]
    for role in roles:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule.get("resources", []), role["metadata"]
    for role in (r for r in roles if r["kind"] == "ClusterRole"):
        for rule in role["rules"]:
            assert "secrets" not in rule.get("resources", []), role["metadata"]["name"]
            if "resources" in rule and rule["resources"] != ["events"]:
                assert set(rule["verbs"]) <= {"get", "list", "watch", "update", "patch"}, (
                    role["metadata"]["name"],
                    rule,
                )
    secret_writers = [r for r in roles for rule in r["rules"] if "secrets" in rule.get("resources", [])]
    assert [r["metadata"].get("namespace") for r in secret_writers] == ["monitoring"]


def test_kube_state_metrics_may_list_exactly_what_it_collects() -> None:
    role = one("ClusterRole", NAMES.kube_state_metrics)
    allowed = {resource for rule in role["rules"] for resource in rule["resources"]}
    assert allowed == set(monitoring.KUBE_STATE_METRICS_RESOURCES)
    assert {"cronjobs", "jobs"} <= allowed and not {"secrets", "configmaps"} & allowed
    args = one("Deployment", NAMES.kube_state_metrics)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--resources={','.join(monitoring.KUBE_STATE_METRICS_RESOURCES)}" in args


def test_local_values_override_existing_chart_keys_with_local_images_that_are_never_pulled() -> None:
    overrides = {
        "pushgateway": (LOCAL_VALUES["pushgateway"]["image"], CHART_VALUES["pushgateway"]["image"]),
        "postgresql": (
            LOCAL_VALUES["database"]["postgresql"]["image"],
            CHART_VALUES["database"]["postgresql"]["image"],
        ),
    }
    for what, (local, chart) in overrides.items():
        assert set(local) <= set(chart), what
        assert local["registry"] == images.REGISTRY and local["pullPolicy"] in ("IfNotPresent", "Never"), what
        assert local["registry"] != chart["registry"], what  # never under the upstream name


def test_local_pushgateway_is_the_chart_version_and_postgresql_keeps_the_chart_uid() -> None:
    assert LOCAL_VALUES["pushgateway"]["image"]["tag"] == CHART_VALUES["pushgateway"]["image"]["tag"]
    assert CHART_VALUES["database"]["postgresql"]["runAsUser"] == images.POSTGRES_UID
    assert images.local_image_names() == {
        "postgresql": "localhost/streamflow/postgresql:15-bookworm",
        "pushgateway": f"localhost/streamflow/pushgateway:{CHART_VALUES['pushgateway']['image']['tag']}",
    }
