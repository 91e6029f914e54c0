"""`make monitoring CLUSTER=local`: monitoring wired the way kube-prometheus-stack wires it, built here.

On kind/minikube `make monitoring` installs kube-prometheus-stack (release `kps` in namespace
`monitoring`). Its charts and images cannot be fetched on this machine, so this module runs the same
pieces under the names kps gives them, from binaries built here:

- prometheus-operator and prometheus-config-reloader at PROMETHEUS_OPERATOR_VERSION (Go module
  proxy), the operator's CRDs from the same module (server-side apply: they are too big for the
  last-applied annotation);
- a Prometheus CR whose ServiceMonitor / PodMonitor / Probe / ScrapeConfig / PrometheusRule
  selectors are `release: <kps release>` in every namespace, as kps renders them with its default
  `*SelectorNilUsesHelmValues=true`; its scrape/evaluation interval, retention and resources come
  from k8s/kube-prometheus-stack.values.yaml; Prometheus at PROMETHEUS_VERSION from its Go module
  (tools.toolchain.prometheus_release: Debian's 2.42 lacks Kubernetes service discovery); the
  operator's Service `prometheus-operated` answers on 9090;
- kube-state-metrics at KUBE_STATE_METRICS_VERSION with kps's Service and ServiceMonitor;
- ServiceMonitors for Prometheus, the operator and the kubelet (cAdvisor), as kps creates them.

Not here (kps has them): Grafana (the Go module proxy refuses github.com/grafana/grafana: AGPL),
Alertmanager, node-exporter, the operator's admission webhook. docs/cluster.md has the details.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools import toolchain
from tools.cluster import images, node
from tools.cluster.addons import RESTRICTED_CONTAINER
from tools.cluster.layout import Layout
from tools.cluster.progress import say, step, timed

KPS_VALUES = toolchain.REPO_ROOT / "k8s" / "kube-prometheus-stack.values.yaml"
READY_TIMEOUT = 300.0
RBAC = "rbac.authorization.k8s.io/v1"
MONITORING = "monitoring.coreos.com/v1"
NOBODY = 65534


@dataclass(frozen=True)
class Names:
    """kps's resource names for a release (its fullname is `<release>-kube-prometheus-stack`)."""

    release: str = "kps"
    namespace: str = "monitoring"

    @property
    def fullname(self) -> str:
        return f"{self.release}-kube-prometheus-stack"

    @property
    def operator(self) -> str:
        return f"{self.fullname}-operator"

    @property
    def prometheus(self) -> str:
        return f"{self.fullname}-prometheus"

    @property
    def kubelet_service(self) -> str:
        return f"{self.fullname}-kubelet"

    @property
    def kube_state_metrics(self) -> str:
        return f"{self.release}-kube-state-metrics"

    @property
    def selector(self) -> dict[str, Any]:
        """What kps's Prometheus selects monitors and rules by (`*SelectorNilUsesHelmValues=true`)."""
        return {"matchLabels": {"release": self.release}}


def _pod_security(user: int, group: int | None = None) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": group if group is not None else user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _labels(names: Names, app: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/instance": names.release, "release": names.release}


def _service_account(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}


def _binding(kind: str, name: str, account: str, namespace: str, role_namespace: str = "") -> dict[str, Any]:
    """A (Cluster)RoleBinding of the (Cluster)Role `name` to a ServiceAccount."""
    metadata = {"name": name, **({"namespace": role_namespace} if role_namespace else {})}
    return {
        "apiVersion": RBAC,
        "kind": f"{kind}Binding",
        "metadata": metadata,
        "roleRef": {"apiGroup": RBAC.split("/")[0], "kind": kind, "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }


def _service_monitor(names: Names, name: str, selector: dict[str, str], endpoints: list[dict], **spec) -> dict:
    """A ServiceMonitor labelled as kps labels its own (`release: <release>`), in the kps namespace."""
    return {
        "apiVersion": MONITORING,
        "kind": "ServiceMonitor",
        "metadata": {"name": name, "namespace": names.namespace, "labels": {"release": names.release}},
        "spec": {"selector": {"matchLabels": selector}, "endpoints": endpoints, **spec},
    }


def _deployment(name: str, namespace: str, labels: dict[str, str], pod: dict[str, Any]) -> dict[str, Any]:
    selector = {key: labels[key] for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def _service(name: str, namespace: str, labels: dict[str, str], ports: list[dict]) -> dict[str, Any]:
    selector = {key: labels[key] for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"selector": selector, "ports": ports},
    }


def _container(name: str, image: str, args: list[str], port: int, resources: dict, **extra) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",  # imported with ctr: there is no registry to pull from
        "args": args,
        "ports": [{"name": "http", "containerPort": port}],
        "resources": resources,
        "securityContext": RESTRICTED_CONTAINER,
        **extra,
    }


def namespace_manifest(names: Names) -> dict[str, Any]:
    # Pod Security "restricted" enforced: every pod here, the operator-made Prometheus included, must comply
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": names.namespace, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    }


def operator_manifests(names: Names, image: str, reloader_image: str, resources: dict) -> list[dict[str, Any]]:
    """The operator with least privilege: only the Prometheus controller (the Alertmanager,
    PrometheusAgent and ThanosRuler controllers start only when their RBAC allows them: it does
    not, and the operator logs "missing permission" and skips them); Prometheus StatefulSets,
    Secrets and ConfigMaps in the kps namespace only (--prometheus-instance-namespaces); the
    kubelet Service and Endpoints in kube-system."""
    name, namespace = names.operator, names.namespace
    labels = _labels(names, "kube-prometheus-stack-prometheus-operator")
    read = ["get", "list", "watch"]
    cluster_rules = [
        {
            "apiGroups": ["monitoring.coreos.com"],
            "resources": ["servicemonitors", "podmonitors", "probes", "scrapeconfigs", "prometheusrules"],
            "verbs": read,
        },
        {"apiGroups": ["monitoring.coreos.com"], "resources": ["prometheuses"], "verbs": read},
        # the operator checks `update` at start and writes the status with server-side apply (`patch`)
        {"apiGroups": ["monitoring.coreos.com"], "resources": ["prometheuses/status"], "verbs": ["update", "patch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": read},  # namespace selectors
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]},  # kubelet endpoints
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get"]},
    ]
    write = ["get", "list", "watch", "create", "update", "patch", "delete"]
    namespace_rules = [
        {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": write},
        {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": write},  # config, rules, web config
        {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "create", "update", "delete"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "delete"]},
    ]
    kubelet_rules = [
        {"apiGroups": [""], "resources": ["services", "endpoints"], "verbs": ["get", "create", "update", "delete"]}
    ]
    args = [
        f"--kubelet-service=kube-system/{names.kubelet_service}",
        "--kubelet-endpoints=true",
        "--kubelet-endpointslice=false",
        f"--prometheus-config-reloader={reloader_image}",
        f"--prometheus-instance-namespaces={namespace}",
        "--localhost=127.0.0.1",  # as kps: the reloader reaches Prometheus without resolving "localhost"
    ]
    container = _container(
        "kube-prometheus-stack", image, args, 8080, resources, env=[{"name": "GOGC", "value": "30"}]
    )  # GOGC as upstream's example: the operator's caches are mostly garbage
    container["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5}
    pod = {"serviceAccountName": name, "securityContext": _pod_security(NOBODY), "containers": [container]}
    return [
        _service_account(name, namespace),
        {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": name}, "rules": cluster_rules},
        _binding("ClusterRole", name, name, namespace),
        {
            "apiVersion": RBAC,
            "kind": "Role",
            "metadata": {"name": name, "namespace": namespace},
            "rules": namespace_rules,
        },
        _binding("Role", name, name, namespace, namespace),
        {
            "apiVersion": RBAC,
            "kind": "Role",
            "metadata": {"name": name, "namespace": "kube-system"},
            "rules": kubelet_rules,
        },
        _binding("Role", name, name, namespace, "kube-system"),
        _deployment(name, namespace, labels, pod),
        _service(name, namespace, labels, [{"name": "http", "port": 8080, "targetPort": "http"}]),
        _service_monitor(
            names,
            name,
            {"app.kubernetes.io/name": labels["app.kubernetes.io/name"], "release": names.release},
            [{"port": "http", "honorLabels": True}],
        ),
    ]


def prometheus_manifests(names: Names, image: str, version: str, spec_values: dict[str, Any]) -> list[dict]:
    """Prometheus as kps makes it: the CR, its ServiceAccount and read-only ClusterRole, kps's own
    Service for it, and the ServiceMonitors of Prometheus itself and of the kubelet."""
    name, namespace = names.prometheus, names.namespace
    labels = _labels(names, "kube-prometheus-stack-prometheus")
    read = ["get", "list", "watch"]
    rules = [
        {"apiGroups": [""], "resources": ["nodes", "nodes/metrics", "services", "endpoints", "pods"], "verbs": read},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": read},
        {"nonResourceURLs": ["/metrics", "/metrics/cadvisor"], "verbs": ["get"]},
    ]
    selector = names.selector
    spec = {
        "image": image,
        "version": version,  # the operator writes the configuration and flags this version understands
        "imagePullPolicy": "IfNotPresent",  # for the config-reloader too: both are imported, never pulled
        "replicas": 1,
        "serviceAccountName": name,
        "externalUrl": f"http://{name}.{namespace}:9090",
        "portName": "http-web",
        # kps's default selectors: `release: <release>` objects in every namespace
        **{f"{kind}Selector": selector for kind in ("serviceMonitor", "podMonitor", "probe", "scrapeConfig", "rule")},
        **{
            f"{kind}NamespaceSelector": {} for kind in ("serviceMonitor", "podMonitor", "probe", "scrapeConfig", "rule")
        },
        # The values file's intervals (kps's default is 30s/30s): a new target or rule is live within
        # seconds, so `make monitoring` and the cluster tests wait less; retention and resources as there
        **{key: spec_values[key] for key in ("scrapeInterval", "evaluationInterval", "retention", "resources")},
        "securityContext": {**_pod_security(1000, 2000), "fsGroup": 2000},  # kps's UID/GID
        # no storage spec: an emptyDir, as kps without prometheusSpec.storageSpec
    }
    self_monitor = _service_monitor(
        names,
        name,
        {"app.kubernetes.io/name": labels["app.kubernetes.io/name"], "release": names.release, "self-monitor": "true"},
        [{"port": "http-web", "path": "/metrics"}],
    )
    kubelet_endpoint = {
        "port": "https-metrics",
        "scheme": "https",
        "tlsConfig": {"insecureSkipVerify": True},  # as kps: the kubelet's serving certificate names the node
        "bearerTokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "honorLabels": True,
    }
    kubelet_monitor = _service_monitor(
        names,
        names.kubelet_service,
        {"app.kubernetes.io/name": "kubelet", "k8s-app": "kubelet"},
        [kubelet_endpoint, {**kubelet_endpoint, "path": "/metrics/cadvisor"}],
        namespaceSelector={"matchNames": ["kube-system"]},
        jobLabel="k8s-app",
        attachMetadata={"node": False},
    )
    return [
        _service_account(name, namespace),
        {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules},
        _binding("ClusterRole", name, name, namespace),
        {
            "apiVersion": MONITORING,
            "kind": "Prometheus",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": spec,
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": {**labels, "self-monitor": "true"}},
            "spec": {
                # the operator's pod labels (app.kubernetes.io/name: prometheus, the chart's NetworkPolicy peer)
                "selector": {"app.kubernetes.io/name": "prometheus", "operator.prometheus.io/name": name},
                "ports": [{"name": "http-web", "port": 9090, "targetPort": 9090}],
            },
        },
        self_monitor,
        kubelet_monitor,
    ]


# kube-state-metrics collectors: kps's defaults less the objects whose whole content KSM would have
# to read to count them (Secrets, ConfigMaps) and cluster plumbing StreamFlow never alerts on
KUBE_STATE_METRICS_RESOURCES = (
    "cronjobs",
    "jobs",
    "pods",
    "deployments",
    "replicasets",
    "statefulsets",
    "daemonsets",
    "nodes",
    "namespaces",
    "services",
    "persistentvolumeclaims",
    "persistentvolumes",
    "horizontalpodautoscalers",
    "poddisruptionbudgets",
)
# resource -> API group, for the ClusterRole (list/watch of exactly what is collected)
_RESOURCE_GROUPS = {
    "cronjobs": "batch",
    "jobs": "batch",
    "deployments": "apps",
    "replicasets": "apps",
    "statefulsets": "apps",
    "daemonsets": "apps",
    "horizontalpodautoscalers": "autoscaling",
    "poddisruptionbudgets": "policy",
}


def kube_state_metrics_manifests(names: Names, image: str) -> list[dict[str, Any]]:
    name, namespace = names.kube_state_metrics, names.namespace
    labels = _labels(names, "kube-state-metrics")
    groups: dict[str, list[str]] = {}
    for resource in KUBE_STATE_METRICS_RESOURCES:
        groups.setdefault(_RESOURCE_GROUPS.get(resource, ""), []).append(resource)
    rules = [{"apiGroups": [group], "resources": found, "verbs": ["list", "watch"]} for group, found in groups.items()]
    args = ["--port=8080", "--telemetry-port=8081", f"--resources={','.join(KUBE_STATE_METRICS_RESOURCES)}"]
    container = _container(
        "kube-state-metrics",
        image,
        args,
        8080,
        {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
    )
    container["ports"].append({"name": "metrics", "containerPort": 8081})
    container["livenessProbe"] = {"httpGet": {"path": "/livez", "port": "http"}, "initialDelaySeconds": 5}
    container["readinessProbe"] = {"httpGet": {"path": "/readyz", "port": "metrics"}, "periodSeconds": 5}
    pod = {"serviceAccountName": name, "securityContext": _pod_security(NOBODY), "containers": [container]}
    return [
        _service_account(name, namespace),
        {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules},
        _binding("ClusterRole", name, name, namespace),
        _deployment(name, namespace, labels, pod),
        _service(name, namespace, labels, [{"name": "http", "port": 8080, "targetPort": "http"}]),
        # as kps's kube-state-metrics subchart: job="kube-state-metrics", KSM's own labels kept
        _service_monitor(
            names,
            name,
            {"app.kubernetes.io/name": "kube-state-metrics", "app.kubernetes.io/instance": names.release},
            [{"port": "http", "honorLabels": True}],
            jobLabel="app.kubernetes.io/name",
        ),
    ]


# --- Images -------------------------------------------------------------------------------------


def monitoring_images(layout: Layout) -> dict[str, images.Image]:
    """The images of the monitoring stack, built once (cached by their content)."""
    registry, operator_version = images.REGISTRY, toolchain.PROMETHEUS_OPERATOR_VERSION
    ksm_version = toolchain.KUBE_STATE_METRICS_VERSION

    def binary(what: str, name: str, build: Callable[[], Path], entrypoint: str) -> images.Image:
        path = timed(f"{what} binary", build)
        return timed(f"{what} image", lambda: images.binary_image(layout, f"{registry}/{name}", path, entrypoint))

    return {
        "operator": binary(
            f"prometheus-operator {operator_version}",
            f"prometheus-operator:{operator_version}",
            toolchain.prometheus_operator,
            "/bin/operator",
        ),
        "reloader": binary(
            f"prometheus-config-reloader {operator_version}",
            f"prometheus-config-reloader:{operator_version}",
            toolchain.prometheus_config_reloader,
            "/bin/prometheus-config-reloader",
        ),
        "prometheus": binary(
            f"Prometheus {toolchain.PROMETHEUS_VERSION}",
            f"prometheus:{toolchain.PROMETHEUS_VERSION}",
            toolchain.prometheus_release,
            "/bin/prometheus",
        ),
        "kube-state-metrics": binary(
            f"kube-state-metrics {ksm_version}",
            f"kube-state-metrics:{ksm_version}",
            toolchain.kube_state_metrics,
            "/kube-state-metrics",
        ),
    }


# --- Apply and wait -----------------------------------------------------------------------------


def _apply(layout: Layout, what: str, manifests: list[dict]) -> None:
    """kubectl apply, then one line: how many objects were created, changed or already as wanted."""
    out = node.kubectl(layout, "apply", "-f", "-", stdin=yaml.safe_dump_all(manifests, sort_keys=False), timeout=300)
    verbs: dict[str, int] = {}
    for line in out.splitlines():
        if line.strip():
            verb = line.rsplit(" ", 1)[-1]
            verbs[verb] = verbs.get(verb, 0) + 1
    unchanged = verbs.pop("unchanged", 0)
    if not verbs:
        say(f"  {what}: already as wanted ({unchanged} objects unchanged)")
    else:
        changed = ", ".join(f"{count} {verb}" for verb, count in sorted(verbs.items()))
        say(f"  {what}: {changed}" + (f", {unchanged} unchanged" if unchanged else ""))


def _apply_crds(layout: Layout, crds: list[dict]) -> None:
    """Server-side apply (the CRDs are too big for client-side apply's last-applied annotation);
    its output says "serverside-applied" either way, so compare resourceVersions for the summary."""

    def versions() -> dict[str, str]:
        found = _get(layout, "crd")["items"]
        return {item["metadata"]["name"]: item["metadata"]["resourceVersion"] for item in found}

    before = versions()
    node.kubectl(
        layout, "apply", "--server-side", "--force-conflicts", "--field-manager=streamflow-monitoring", "-f", "-",
        stdin=yaml.safe_dump_all(crds, sort_keys=False), timeout=300,
    )  # fmt: skip
    after = versions()
    names = [crd["metadata"]["name"] for crd in crds]
    changed = [name for name in names if before.get(name) != after.get(name)]
    if changed:
        say(f"  CRDs: {len(changed)} created or updated, {len(names) - len(changed)} unchanged")
    else:
        say(f"  CRDs: already as wanted ({len(names)} unchanged)")


def _get(layout: Layout, *args: str) -> dict[str, Any]:
    return json.loads(node.kubectl(layout, "get", *args, "-o", "json", timeout=20))


def _wait(layout: Layout, what: str, check: Callable[[], bool], describe: Callable[[], str]) -> None:
    """Say "already" when check() holds at once; otherwise wait for it with a progress step."""
    try:
        if check():
            say(f"  {what}: already")
            return
    except (node.ClusterError, ValueError, KeyError, subprocess.SubprocessError):
        pass
    with step(f"waiting for {what}"):
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                if check():
                    return
            except (node.ClusterError, ValueError, KeyError, subprocess.SubprocessError):
                pass
            if time.monotonic() > deadline:
                raise node.ClusterError(f"timed out after {READY_TIMEOUT:.0f}s waiting for {what}:\n{describe()}")
            time.sleep(1)


def _deployment_available(layout: Layout, namespace: str, name: str) -> bool:
    """Rolled out as `kubectl rollout status` means it: the current generation observed, every pod
    of the new template, none of an old one left, all available."""
    found = _get(layout, "-n", namespace, "deployment", name)
    status, wanted = found.get("status", {}), found["spec"]["replicas"]
    return (
        status.get("observedGeneration") == found["metadata"]["generation"]
        and status.get("updatedReplicas", 0) == status.get("replicas", 0) == wanted
        and status.get("availableReplicas", 0) == wanted
    )


def _prometheus_available(layout: Layout, names: Names) -> bool:
    found = _get(layout, "-n", names.namespace, "prometheus", names.prometheus)
    conditions = {c["type"]: c for c in found.get("status", {}).get("conditions", [])}
    available = conditions.get("Available", {})
    return available.get("status") == "True" and available.get("observedGeneration") == found["metadata"]["generation"]


def _describe(layout: Layout, namespace: str, *selectors: str) -> str:
    out = [node.kubectl(layout, "-n", namespace, "get", "pods", "-o", "wide", check=False)]
    for selector in selectors:
        out.append(node.kubectl(layout, "-n", namespace, "describe", *selector.split(), check=False)[-2500:])
    return "\n".join(out)


def stamp_builds(manifests: list[dict], built: list[images.Image]) -> list[dict]:
    """Annotate each pod template (and the Prometheus CR's pods) with the builds of the images it
    runs: a rebuilt image keeps its tag, and the changed annotation is what rolls the pods onto it."""
    for manifest in manifests:
        if manifest["kind"] == "Deployment":
            metadata = manifest["spec"]["template"]["metadata"]
            used = {container["image"] for container in manifest["spec"]["template"]["spec"]["containers"]}
        elif manifest["kind"] == "Prometheus":
            metadata = manifest["spec"].setdefault("podMetadata", {})
            used = {manifest["spec"]["image"], *(image.name for image in built if "config-reloader" in image.name)}
        else:
            continue
        builds = ",".join(sorted(image.archive.stem for image in built if image.name in used))
        metadata.setdefault("annotations", {})["streamflow.io/image-builds"] = builds
    return manifests


def kps_values(path: Path = KPS_VALUES) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def up(layout: Layout, names: Names) -> None:
    """Build, import, apply and wait: idempotent (a second run rebuilds nothing and changes nothing)."""
    node.require_root()
    if not all(node.running(layout).values()):
        raise node.ClusterError(f"the local node is not running (state {layout.node}): `make cluster CLUSTER=local`")
    values = kps_values()
    built = monitoring_images(layout)
    images.import_missing(layout, list(built.values()))
    crds = list(toolchain.prometheus_operator_crds().values())
    with step(f"prometheus-operator {toolchain.PROMETHEUS_OPERATOR_VERSION}: {len(crds)} CRDs (server-side)"):
        _apply_crds(layout, crds)
        for crd in crds:
            node.kubectl(
                layout, "wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=60s"
            )
    with step(f"operator, Prometheus and kube-state-metrics in namespace {names.namespace} (release {names.release})"):
        _apply(layout, "namespace", [namespace_manifest(names)])
        operator = operator_manifests(
            names, built["operator"].name, built["reloader"].name, values["prometheusOperator"]["resources"]
        )
        ksm = kube_state_metrics_manifests(names, built["kube-state-metrics"].name)
        _apply(layout, "operator", stamp_builds(operator, list(built.values())))
        _apply(layout, "kube-state-metrics", stamp_builds(ksm, list(built.values())))
        spec_values = values["prometheus"]["prometheusSpec"]
        prometheus = prometheus_manifests(names, built["prometheus"].name, toolchain.PROMETHEUS_VERSION, spec_values)
        _apply(layout, "Prometheus", stamp_builds(prometheus, list(built.values())))
    namespace = names.namespace
    _wait(
        layout,
        f"deployment {names.operator} available",
        lambda: _deployment_available(layout, namespace, names.operator),
        lambda: _describe(layout, namespace, f"deployment {names.operator}"),
    )
    _wait(
        layout,
        f"deployment {names.kube_state_metrics} available",
        lambda: _deployment_available(layout, namespace, names.kube_state_metrics),
        lambda: _describe(layout, namespace, f"deployment {names.kube_state_metrics}"),
    )
    _wait(
        layout,
        f"Prometheus {names.prometheus} available (pod Ready)",
        lambda: _prometheus_available(layout, names),
        lambda: _describe(
            layout, namespace, f"prometheus {names.prometheus}", "pods -l app.kubernetes.io/name=prometheus"
        ),
    )
    say(
        f"monitoring is up: `make prometheus CLUSTER=local` forwards service/prometheus-operated to 127.0.0.1:9090; "
        f"ServiceMonitors and PrometheusRules need the label release={names.release}"
    )
