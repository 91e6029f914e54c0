"""`make doctor`: is a StreamFlow release wired to its monitoring? A table of checks, a fix for each failure.

    python3 -m tools.doctor --namespace streamflow --release streamflow

Against any live cluster (KUBECTL or `kubectl`, the current context):
  crds            prometheus-operator's CRDs (ServiceMonitor, PrometheusRule, Prometheus) exist
  release         the release's API Deployment exists
  servicemonitor  a Prometheus selects our ServiceMonitors (labels and namespace, as the operator does)
  prometheusrule  our PrometheusRule exists and a Prometheus selects it
  grafana         our dashboard ConfigMaps carry the label and folder annotation Grafana's sidecar watches
  targets         Prometheus scrapes the API and the Pushgateway, and they are up
  drift-status    the status ConfigMap exists and the last drift decision it holds
  cronjob         the drift CronJob's last schedule and last success
Exit 1 when a check fails (a warning does not fail). Standard library only: it runs with the
user's python3, next to kubectl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

OK, WARN, FAIL = "ok", "warn", "FAIL"
MONITORING_GROUP = "monitoring.coreos.com"
CRDS = ("servicemonitors", "prometheusrules", "prometheuses")
ANNOTATION_PREFIX = "drift.streamflow.io/"  # streamflow/drift.py; tests/unit/test_doctor.py keeps them equal
INSTANCE_LABEL = "app.kubernetes.io/instance"
# prometheus-operated's port by number: kps names it http-web, the operator's default is web
PROMETHEUS_PORT = 9090


@dataclass(frozen=True)
class Check:
    name: str
    result: str
    detail: str
    fix: str = ""


class KubectlError(RuntimeError):
    pass


def kubectl(*args: str) -> str:
    command = [os.environ.get("KUBECTL", "kubectl"), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise KubectlError(
            result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
        )
    return result.stdout


def get(*args: str) -> Any:
    return json.loads(kubectl("get", *args, "-o", "json"))


def fullname(release: str) -> str:
    """The chart's resource prefix (charts/streamflow/templates/_helpers.tpl)."""
    return release if "streamflow" in release else f"{release}-streamflow"


def matches(selector: dict | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions) against labels; {} matches all."""
    if selector is None:
        return False
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def selects(prometheus: dict, kind: str, obj: dict, namespace_labels: dict[str, str]) -> bool:
    """Does this Prometheus CR pick `obj` up, as prometheus-operator decides it?

    kind is "serviceMonitor" or "rule". A nil object selector selects nothing; a nil namespace
    selector means the Prometheus' own namespace only.
    """
    spec = prometheus["spec"]
    if not matches(spec.get(f"{kind}Selector"), obj["metadata"].get("labels") or {}):
        return False
    namespace_selector = spec.get(f"{kind}NamespaceSelector")
    if namespace_selector is None:
        return obj["metadata"]["namespace"] == prometheus["metadata"]["namespace"]
    return matches(namespace_selector, namespace_labels)


def _selector_text(prometheus: dict, kind: str) -> str:
    selector = prometheus["spec"].get(f"{kind}Selector")
    labels = (selector or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in labels.items()) or json.dumps(selector)


class Doctor:
    def __init__(self, namespace: str, release: str) -> None:
        self.namespace = namespace
        self.release = release
        self.fullname = fullname(release)
        self.checks: list[Check] = []
        self._prometheuses: list[dict] | None = None

    def add(self, name: str, result: str, detail: str, fix: str = "") -> None:
        self.checks.append(Check(name, result, detail, fix))

    def prometheuses(self) -> list[dict]:
        if self._prometheuses is None:
            try:
                self._prometheuses = get("prometheuses.monitoring.coreos.com", "--all-namespaces")["items"]
            except KubectlError:
                self._prometheuses = []
        return self._prometheuses

    def namespace_labels(self) -> dict[str, str]:
        return get("namespace", self.namespace)["metadata"].get("labels") or {}

    def ours(self, resource: str) -> list[dict]:
        return get(resource, "-n", self.namespace, "-l", f"{INSTANCE_LABEL}={self.release}")["items"]

    # --- the checks -----------------------------------------------------------------------------
    def check_crds(self) -> None:
        missing = []
        for crd in CRDS:
            try:
                kubectl("get", "crd", f"{crd}.{MONITORING_GROUP}")
            except KubectlError:
                missing.append(crd)
        if missing:
            self.add(
                "crds", FAIL, f"missing: {', '.join(missing)}", "make monitoring (installs the operator and its CRDs)"
            )
        else:
            self.add("crds", OK, f"{', '.join(CRDS)} ({MONITORING_GROUP})")

    def check_release(self) -> None:
        try:
            deployment = get("deployment", "-n", self.namespace, f"{self.fullname}-api")
        except KubectlError as error:
            self.add("release", FAIL, f"{self.namespace}/{self.fullname}-api: {error}", "make deploy")
            return
        status = deployment.get("status", {})
        ready, wanted = status.get("readyReplicas", 0), deployment["spec"].get("replicas", 1)
        result = OK if ready >= wanted else FAIL
        fix = f"kubectl -n {self.namespace} describe deployment {self.fullname}-api" if result == FAIL else ""
        self.add("release", result, f"{self.fullname}-api {ready}/{wanted} ready", fix)

    def _check_selected(self, name: str, resource: str, kind: str, value_key: str) -> None:
        try:
            objects = self.ours(resource)
        except KubectlError as error:
            self.add(name, FAIL, str(error), "make monitoring (the CRDs)")
            return
        if not objects:
            self.add(
                name,
                FAIL,
                f"no {resource.split('.')[0]} of release {self.release} in {self.namespace}",
                f"helm upgrade {self.release} charts/streamflow -n {self.namespace} --reuse-values (recreates it)",
            )
            return
        prometheuses = self.prometheuses()
        if not prometheuses:
            self.add(name, FAIL, "no Prometheus custom resource in the cluster", "make monitoring")
            return
        namespace_labels = self.namespace_labels()
        for obj in objects:
            chosen = [p for p in prometheuses if selects(p, kind, obj, namespace_labels)]
            obj_name = obj["metadata"]["name"]
            if chosen:
                by = ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in chosen)
                self.add(name, OK, f"{obj_name} selected by {by}")
            else:
                wanted = "; ".join(f"{p['metadata']['name']} selects {_selector_text(p, kind)}" for p in prometheuses)
                labels = obj["metadata"].get("labels") or {}
                self.add(
                    name,
                    FAIL,
                    f"{obj_name} (release={labels.get('release', '<none>')}) is selected by no Prometheus: {wanted}",
                    f"make deploy KPS_RELEASE=<that release>, or --set {value_key}.additionalLabels.release=<value>",
                )

    def check_service_monitors(self) -> None:
        self._check_selected(
            "servicemonitor", "servicemonitors.monitoring.coreos.com", "serviceMonitor", "serviceMonitor"
        )

    def check_rules(self) -> None:
        self._check_selected("prometheusrule", "prometheusrules.monitoring.coreos.com", "rule", "prometheusRule")

    def check_grafana(self) -> None:
        dashboards = [cm for cm in self.ours("configmaps") if "dashboard" in cm["metadata"]["name"]]
        sidecars = []
        for pod in get("pods", "--all-namespaces", "-l", "app.kubernetes.io/name=grafana")["items"]:
            for container in pod["spec"].get("containers", []):
                env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
                if "LABEL" in env and "dashboard" in container["name"]:
                    sidecars.append((pod["metadata"]["namespace"], env))
        if not sidecars:
            self.add(
                "grafana",
                WARN,
                f"no Grafana dashboard sidecar found; {len(dashboards)} dashboard ConfigMap(s) wait for one",
                "make monitoring (kube-prometheus-stack's Grafana); the local node has none (docs/cluster.md)",
            )
            return
        for namespace, env in sidecars:
            label, value = env["LABEL"], env.get("LABEL_VALUE", "")
            folder = env.get("FOLDER_ANNOTATION", "")
            watched = env.get("NAMESPACE", "")
            problems = []
            for cm in dashboards:
                labels = cm["metadata"].get("labels") or {}
                annotations = cm["metadata"].get("annotations") or {}
                if label not in labels or (value and labels[label] != value):
                    problems.append(f"{cm['metadata']['name']} lacks label {label}={value or '<any>'}")
                if folder and folder not in annotations:
                    problems.append(f"{cm['metadata']['name']} lacks annotation {folder}")
            if watched and watched != "ALL" and self.namespace not in watched.split(","):
                problems.append(f"the sidecar watches namespaces {watched}, not {self.namespace}")
            if problems:
                self.add(
                    "grafana",
                    FAIL,
                    "; ".join(problems),
                    "set dashboards.label / dashboards.folderAnnotation to the sidecar's LABEL / FOLDER_ANNOTATION",
                )
            else:
                self.add(
                    "grafana", OK, f"{len(dashboards)} dashboards match the sidecar in {namespace} (label {label})"
                )

    def check_targets(self) -> None:
        wanted = {f"{self.fullname}-api"}
        try:
            get("deployment", "-n", self.namespace, f"{self.fullname}-pushgateway")
            wanted.add(f"{self.fullname}-pushgateway")
        except KubectlError:
            pass
        found: dict[str, dict] = {}
        errors = []
        for prometheus in self.prometheuses():
            path = (
                f"/api/v1/namespaces/{prometheus['metadata']['namespace']}/services/"
                f"prometheus-operated:{PROMETHEUS_PORT}/proxy/api/v1/targets?state=active"
            )
            try:
                targets = json.loads(kubectl("get", "--raw", path))["data"]["activeTargets"]
            except (KubectlError, KeyError, json.JSONDecodeError) as error:
                errors.append(f"{prometheus['metadata']['name']}: {error}")
                continue
            for target in targets:
                labels = target.get("labels", {})
                ours = labels.get("namespace") == self.namespace and labels.get("service") in wanted
                if ours and found.get(labels["service"], {}).get("health") != "up":  # one up target is enough
                    found[labels["service"]] = target
        for service in sorted(wanted):
            target = found.get(service)
            if target is None:
                detail = f"{service}: no scrape target" + (f" ({'; '.join(errors)})" if errors else "")
                self.add("targets", FAIL, detail, "see the servicemonitor check above; then the operator's log")
            elif target.get("health") != "up":
                self.add(
                    "targets",
                    FAIL,
                    f"{service}: {target.get('health')}: {target.get('lastError', '')}",
                    f"kubectl -n {self.namespace} get endpoints {service}; a NetworkPolicy may block Prometheus "
                    "(networkPolicy.prometheus.namespace)",
                )
            else:
                self.add("targets", OK, f"{service}: up ({target['scrapeUrl']})")

    def check_drift_status(self) -> None:
        name = f"{self.fullname}-drift-status"
        try:
            configmap = get("configmap", "-n", self.namespace, name)
        except KubectlError as error:
            self.add("drift-status", FAIL, f"{name}: {error}", "make deploy (the chart creates it)")
            return
        annotations = configmap["metadata"].get("annotations") or {}
        decision = annotations.get(ANNOTATION_PREFIX + "decision")
        if decision is None:
            self.add("drift-status", WARN, f"{name}: no drift run yet", "make drift-now")
            return
        share = annotations.get(ANNOTATION_PREFIX + "drift-share", "?")
        finished = annotations.get(ANNOTATION_PREFIX + "finished-at", "?")
        self.add("drift-status", OK, f"{decision} drift_share={share} finished {finished}")

    def check_cronjob(self) -> None:
        name = f"{self.fullname}-drift"
        try:
            cronjob = get("cronjob", "-n", self.namespace, name)
        except KubectlError as error:
            self.add("cronjob", FAIL, f"{name}: {error}", "make deploy (drift.enabled=true)")
            return
        spec, status = cronjob["spec"], cronjob.get("status", {})
        scheduled, succeeded = status.get("lastScheduleTime"), status.get("lastSuccessfulTime")
        detail = (
            f"schedule '{spec['schedule']}'{' (suspended)' if spec.get('suspend') else ''}; "
            f"last schedule {scheduled or 'never'}, last success {succeeded or 'never'}"
        )
        jobs = [j for j in self.ours("jobs") if j["metadata"]["name"].startswith(name)]
        last = max(jobs, key=lambda j: j["metadata"]["creationTimestamp"], default=None)
        if last is not None and last["status"].get("failed") and not last["status"].get("succeeded"):
            job = last["metadata"]["name"]
            self.add(
                "cronjob",
                FAIL,
                f"{detail}; the last run {job} failed",
                f"kubectl -n {self.namespace} logs job/{job} (its last line names the cause)",
            )
        elif scheduled is None and succeeded is None:
            self.add("cronjob", WARN, detail, "make drift-now runs it once now")
        else:
            self.add("cronjob", OK, detail)

    def run(self) -> list[Check]:
        steps: list[Callable[[], None]] = [
            self.check_crds,
            self.check_release,
            self.check_service_monitors,
            self.check_rules,
            self.check_grafana,
            self.check_targets,
            self.check_drift_status,
            self.check_cronjob,
        ]
        for step in steps:
            try:
                step()
            except KubectlError as error:
                self.add(
                    step.__name__.removeprefix("check_").replace("_", "-"),
                    FAIL,
                    str(error),
                    "is the cluster reachable?",
                )
        return self.checks


def table(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for check in checks:
        lines.append(f"{check.result:4}  {check.name:{width}}  {check.detail}")
        if check.fix and check.result != OK:
            lines.append(f"{'':4}  {'':{width}}  fix: {check.fix}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tools.doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", default="streamflow")
    parser.add_argument("--release", default="streamflow")
    args = parser.parse_args(argv)
    checks = Doctor(args.namespace, args.release).run()
    print(table(checks))
    failed = [c for c in checks if c.result == FAIL]
    print(f"\n{len(failed)} of {len(checks)} checks failed" if failed else f"\nall {len(checks)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
