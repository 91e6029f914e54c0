"""A real Prometheus and Pushgateway on loopback, configured from the rendered Helm chart.

What prometheus-operator would do in a cluster, done by hand for processes on 127.0.0.1:
- each ServiceMonitor becomes a scrape job with the target labels the operator attaches
  (job = the Service's name, namespace, service, pod, container, endpoint), honorLabels,
  interval, timeout, path and scheme taken from the ServiceMonitor itself;
- its relabelings and metricRelabelings become the job's relabel_configs and
  metric_relabel_configs, applied as the operator applies them: after its own target labels,
  with the Kubernetes discovery labels it would see (__meta_kubernetes_namespace, _service_name,
  _service_label_*, _pod_name, _pod_label_*, _pod_container_name, _endpoint_port_name);
- each PrometheusRule's `spec.groups` becomes a rule file.
So dashboards and alert rules are exercised with the labels they will meet in the cluster.
A ServiceMonitor feature this translation does not know (TLS, authorization, a discovery label
no local target has, ...) is an error, never silently dropped. Used by `make observe` and by
the tests.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tools import toolchain

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "streamflow"
COMPONENT_LABEL = "app.kubernetes.io/component"
TRANSLATED_ENDPOINT_FIELDS = {
    "port",
    "path",
    "scheme",
    "interval",
    "scrapeTimeout",
    "honorLabels",
    "relabelings",
    "metricRelabelings",
}
# prometheus-operator's RelabelConfig fields -> Prometheus' relabel_config keys
RELABEL_FIELDS = {
    "sourceLabels": "source_labels",
    "separator": "separator",
    "targetLabel": "target_label",
    "regex": "regex",
    "modulus": "modulus",
    "replacement": "replacement",
    "action": "action",
}
META = "__meta_kubernetes_"
# The discovery labels a local target gets (the endpoints role's, for what the chart runs);
# a label of a family outside these (node, IPs, readiness, ...) is refused, not left empty.
DISCOVERY_LABELS = {"namespace", "service_name", "pod_name", "pod_container_name", "endpoint_port_name"}
DISCOVERY_LABEL_FAMILIES = ("service_label_", "service_labelpresent_", "pod_label_", "pod_labelpresent_")


def render_chart(
    release: str, namespace: str, values: Mapping[str, Any] | None = None, value_files: Iterable[Path] = ()
) -> list[dict]:
    """`helm template` of charts/streamflow with values files and then extra values, as objects."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as overrides:
        yaml.safe_dump(dict(values or {}), overrides)
        overrides.flush()
        files = [arg for path in (*value_files, overrides.name) for arg in ("-f", str(path))]
        result = toolchain.run_tool(
            [
                str(toolchain.helm()),
                "template",
                release,
                str(CHART_DIR),
                "--namespace",
                namespace,
                "--kube-version",
                toolchain.KUBERNETES_VERSION,
                *files,
            ],
            timeout=120,
        )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(objects: Iterable[dict], kind: str) -> list[dict]:
    return [o for o in objects if o.get("kind") == kind]


def labels_of(obj: dict) -> dict[str, str]:
    return obj["metadata"].get("labels") or {}


def _backing_workload(objects: list[dict], service: dict, target_port: str | int) -> tuple[dict, str]:
    """(workload, container name) behind a Service port: what the pod and container labels say."""
    selector = service["spec"]["selector"]
    for workload in of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet"):
        template = workload["spec"]["template"]
        if selector.items() <= (template["metadata"].get("labels") or {}).items():
            for container in template["spec"]["containers"]:
                if any(target_port in (p.get("name"), p.get("containerPort")) for p in container.get("ports", [])):
                    return workload, container["name"]
    raise ValueError(f"no workload container behind Service {service['metadata']['name']} port {target_port}")


def _label_name(name: str) -> str:
    """A Kubernetes label key as Prometheus' discovery writes it into a label name."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _discovery_labels(service: dict, pod_labels: Mapping[str, str], pod: str, container: str, port: str) -> dict:
    """The __meta_kubernetes_* labels Prometheus' endpoints discovery gives such a target; they
    exist during relabeling only (Prometheus drops labels starting with __ afterwards)."""
    labels = {
        f"{META}namespace": service["metadata"]["namespace"],
        f"{META}service_name": service["metadata"]["name"],
        f"{META}pod_name": pod,
        f"{META}pod_container_name": container,
        f"{META}endpoint_port_name": port,
    }
    for family, source in (("service", labels_of(service)), ("pod", pod_labels)):
        labels |= {f"{META}{family}_label_{_label_name(k)}": v for k, v in source.items()}
        labels |= {f"{META}{family}_labelpresent_{_label_name(k)}": "true" for k in source}
    return labels


def _discovered_locally(label: str) -> bool:
    name = label.removeprefix(META)
    return name in DISCOVERY_LABELS or name.startswith(DISCOVERY_LABEL_FAMILIES)


def relabel_configs(relabelings: Iterable[Mapping[str, Any]], where: str, targets: bool) -> list[dict]:
    """Prometheus relabel configs from prometheus-operator RelabelConfigs: the same fields in
    snake_case, the action in lower case (the operator takes `Replace` and `replace` alike).
    For target relabelings, a source __meta_kubernetes_* label no local target can have is an
    error: in the cluster it would have a value, here it would silently be empty. (A pod label
    one pod lacks is empty in both places; samples have no discovery labels at all.)"""
    configs = []
    for relabeling in relabelings:
        unknown = set(relabeling) - set(RELABEL_FIELDS)
        if unknown:
            raise ValueError(f"{where}: relabeling fields {sorted(unknown)} are not translated")
        if targets:
            sources = relabeling.get("sourceLabels", [])
            absent = [label for label in sources if label.startswith(META) and not _discovered_locally(label)]
            if absent:
                raise ValueError(f"{where}: {absent} are not among the discovery labels of a local target")
        config = {RELABEL_FIELDS[key]: value for key, value in relabeling.items()}
        if "action" in config:
            config["action"] = config["action"].lower()
        configs.append(config)
    return configs


def scrape_configs(objects: list[dict], addresses: Mapping[str, list[str]]) -> list[dict]:
    """Prometheus scrape_configs for every ServiceMonitor, its targets at local `addresses`
    (by the Service's app.kubernetes.io/component label, one address per pod)."""
    services = of_kind(objects, "Service")
    configs = []
    for monitor in of_kind(objects, "ServiceMonitor"):
        spec, meta = monitor["spec"], monitor["metadata"]
        if spec["selector"].get("matchExpressions"):
            raise ValueError(f"ServiceMonitor {meta['name']}: matchExpressions are not translated")
        namespaces = spec.get("namespaceSelector", {}).get("matchNames") or [meta["namespace"]]
        selected = [
            s
            for s in services
            if s["metadata"]["namespace"] in namespaces
            and spec["selector"]["matchLabels"].items() <= labels_of(s).items()
        ]
        if not selected:
            raise ValueError(f"ServiceMonitor {meta['name']} selects no Service of the chart")
        for index, endpoint in enumerate(spec["endpoints"]):
            unknown = set(endpoint) - TRANSLATED_ENDPOINT_FIELDS
            if unknown:
                raise ValueError(f"ServiceMonitor {meta['name']}: endpoint fields {sorted(unknown)} are not translated")
            static = []
            for service in selected:
                port = next(p for p in service["spec"]["ports"] if p["name"] == endpoint["port"])
                workload, container = _backing_workload(objects, service, port.get("targetPort", port["port"]))
                pod_labels = workload["spec"]["template"]["metadata"].get("labels") or {}
                component = labels_of(service)[COMPONENT_LABEL]
                job = labels_of(service).get(spec["jobLabel"]) if spec.get("jobLabel") else None
                for replica, address in enumerate(addresses[component]):
                    pod = f"{workload['metadata']['name']}-local-{replica}"
                    static.append(
                        {
                            "targets": [address],
                            "labels": {
                                "job": job or service["metadata"]["name"],
                                "namespace": service["metadata"]["namespace"],
                                "service": service["metadata"]["name"],
                                "endpoint": endpoint["port"],
                                "pod": pod,
                                "container": container,
                                **_discovery_labels(service, pod_labels, pod, container, endpoint["port"]),
                            },
                        }
                    )
            job_name = f"serviceMonitor/{meta['namespace']}/{meta['name']}/{index}"
            config = {
                "job_name": job_name,
                "honor_labels": bool(endpoint.get("honorLabels", False)),
                "metrics_path": endpoint.get("path", "/metrics"),
                "scheme": endpoint.get("scheme", "http"),
                "static_configs": static,
            }
            for ours, theirs in (("scrape_interval", "interval"), ("scrape_timeout", "scrapeTimeout")):
                if theirs in endpoint:
                    config[ours] = endpoint[theirs]
            if endpoint.get("relabelings"):
                config["relabel_configs"] = relabel_configs(endpoint["relabelings"], job_name, targets=True)
            if endpoint.get("metricRelabelings"):
                config["metric_relabel_configs"] = relabel_configs(
                    endpoint["metricRelabelings"], job_name, targets=False
                )
            configs.append(config)
    return configs


def rule_groups(objects: list[dict]) -> dict[str, Any]:
    """The rule file Prometheus (and promtool) reads: every PrometheusRule's groups."""
    return {"groups": [group for rule in of_kind(objects, "PrometheusRule") for group in rule["spec"]["groups"]]}


# --- processes -------------------------------------------------------------------------------
@dataclass
class Server:
    """A started binary, its log in a file; ready when `is_ready` says so (default: its
    /-/ready endpoint answers 200, as Prometheus and the Pushgateway do)."""

    name: str
    url: str
    process: subprocess.Popen
    log_path: Path
    is_ready: Callable[[], bool] | None = None

    def wait_ready(self, timeout: float = 60.0) -> None:
        is_ready = self.is_ready or (lambda: httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}): {self.log_tail()}")
            try:
                if is_ready():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, lines: int = 10) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    name: str, cmd: list[str], url: str, workdir: Path, is_ready: Callable[[], bool] | None = None
) -> Server:
    """Start `cmd` (log in workdir/<name>.log) and wait until it is ready; stopped if it never is."""
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    server = Server(name, url, process, log_path, is_ready)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def start_pushgateway(workdir: Path, port: int) -> Server:
    # Debian builds the Pushgateway with a default persistence file shared machine-wide
    # (/var/lib/prometheus/pushgateway.data): without our own file, a new stack would start
    # with the groups an earlier run pushed.
    return start_server(
        "pushgateway",
        [
            str(toolchain.pushgateway()),
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={workdir / 'pushgateway.metrics'}",
        ],
        f"http://127.0.0.1:{port}",
        workdir,
    )


def start_prometheus(
    workdir: Path, port: int, objects: list[dict], addresses: Mapping[str, list[str]], evaluation_interval: str = "15s"
) -> Prometheus:
    rules = workdir / "streamflow-rules.yaml"
    rules.write_text(yaml.safe_dump(rule_groups(objects), sort_keys=False))
    config = {
        "global": {"evaluation_interval": evaluation_interval},
        "rule_files": [str(rules)],
        "scrape_configs": scrape_configs(objects, addresses),
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    toolchain.run_tool([str(toolchain.promtool()), "check", "config", str(config_path)], timeout=60)
    server = start_server(
        "prometheus",
        [
            str(toolchain.prometheus()),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1d",
        ],
        f"http://127.0.0.1:{port}",
        workdir,
    )
    return Prometheus(server, config)


@dataclass
class Prometheus:
    server: Server
    config: dict
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.server.url, timeout=10)

    @property
    def url(self) -> str:
        return self.server.url

    def _get(self, path: str, **params: Any) -> Any:
        body = self.client.get(path, params=params).json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus {path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """Instant query at now: the result vector (or a scalar as a one-element list)."""
        data = self._get("/api/v1/query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def label_values(self, label: str, match: str) -> list[str]:
        """Grafana's label_values(match, label)."""
        return self._get(f"/api/v1/label/{label}/values", **{"match[]": match})

    def alerts(self) -> dict[str, str]:
        """alertname -> state (pending or firing) of the alerts active now."""
        return {a["labels"]["alertname"]: a["state"] for a in self._get("/api/v1/alerts")["alerts"]}

    def targets_up(self) -> dict[str, bool]:
        return {t["scrapeUrl"]: t["health"] == "up" for t in self._get("/api/v1/targets")["activeTargets"]}

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.5) -> Any:
        """Poll `check` until it returns something truthy; raise naming `what` on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            time.sleep(every)
        raise TimeoutError(f"Prometheus at {self.url}: {what} not seen within {timeout:.0f}s")

    def stop(self) -> None:
        self.client.close()
        self.server.stop()
