"""Where the drift job records its decision: annotations on a status ConfigMap.

In a cluster: the real ConfigMap, patched through the `kubernetes` client (in-cluster config,
else kubeconfig). Embedded default: a local JSON file holding the same ConfigMap object, so the
whole flow runs with no cluster and `make status-local` reads the same fields.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from jobs.drift.decision import Decision
from streamflow.drift import ANNOTATION_PREFIX, Action
from streamflow.files import write_atomically
from streamflow.logs import log_event
from streamflow.settings import Settings

log = logging.getLogger("streamflow.drift.sink")

IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
CONFLICT_RETRIES = 5
EVENT_COMPONENT = "streamflow-drift-job"
EVENT_FIELDS = ("decision", "drift-share", "threshold", "target-drift", "reference", "current")


class SinkError(Exception):
    """The status could not be recorded; the previous status is unchanged."""


@dataclass(frozen=True)
class StatusEvent:
    """A Kubernetes Event to record on the status ConfigMap beside its annotations."""

    reason: str  # CamelCase, e.g. RetrainingTriggered
    message: str
    warning: bool = False


def decision_event(d: Decision) -> StatusEvent:
    """The Event of a drift decision: a Warning when it triggers retraining."""
    values = decision_annotations(d)
    message = " ".join(f"{key}={values.get(ANNOTATION_PREFIX + key, '')}" for key in EVENT_FIELDS)
    retrain = d.action is Action.RETRAIN
    return StatusEvent("RetrainingTriggered" if retrain else "NoDriftAction", message, warning=retrain)


def decision_annotations(d: Decision) -> dict[str, str]:
    """Every value a string, as Kubernetes requires."""
    fields = {
        "decision": d.action,
        "drift-share": f"{d.drift_share:.4f}",
        "threshold": f"{d.threshold:.2f}",
        "target-drift": f"{d.target_drift:.4f}",
        "target-drifted": str(d.target_drifted).lower(),
        "drifted-features": ",".join(d.drifted_features),
        "reference": d.reference.isoformat(),
        "current": d.current.isoformat(),
        "report-html": d.report_html,
        "report-json": d.report_json,
        "finished-at": d.finished_at,
        "job-version": d.job_version,
    }
    return {ANNOTATION_PREFIX + k: v for k, v in fields.items()}


class StatusSink(Protocol):
    def describe(self) -> str: ...

    def annotate(self, values: dict[str, str], event: StatusEvent | None = None) -> None: ...


class FileConfigMapSink:
    """A ConfigMap object kept in a local JSON file (the embedded default)."""

    def __init__(self, path: Path, name: str, namespace: str) -> None:
        self.path, self.name, self.namespace = path, name, namespace

    def describe(self) -> str:
        return f"file:{self.path}"

    def read(self) -> dict:
        if not self.path.exists():
            return {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": self.name, "namespace": self.namespace, "annotations": {}},
                "data": {},
            }
        try:
            return json.loads(self.path.read_text())
        except ValueError as exc:
            raise SinkError(f"status file {self.path} is not valid JSON ({exc}); fix or remove it") from None

    def annotate(self, values: dict[str, str], event: StatusEvent | None = None) -> None:
        """Merge the annotations into the file; a file has no Events, so `event` is only logged."""
        configmap = self.read()
        configmap.setdefault("metadata", {}).setdefault("annotations", {}).update(values)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # all annotations land together or none do
        write_atomically(self.path, lambda tmp: tmp.write_text(json.dumps(configmap, indent=2, sort_keys=True)))


class KubernetesConfigMapSink:
    """Patches the annotations of a real ConfigMap (RBAC: patch on that one object) and records
    an Event on it (RBAC: create on events)."""

    def __init__(self, name: str, namespace: str, api=None) -> None:
        self.name, self.namespace = name, namespace
        self._api = api

    @classmethod
    def from_environment(cls, name: str, namespace: str | None) -> KubernetesConfigMapSink:
        from kubernetes import client, config

        # Read KUBECONFIG now: the client captures it once, at import time.
        kubeconfig = os.environ.get("KUBECONFIG")
        try:
            config.load_incluster_config()
            in_cluster = True
        except config.ConfigException:
            try:
                config.load_kube_config(config_file=kubeconfig)
            except (config.ConfigException, FileNotFoundError, TypeError) as exc:
                raise SinkError(f"no Kubernetes credentials (not in a pod, and kubeconfig: {exc})") from None
            in_cluster = False
        if namespace is None:
            if in_cluster and IN_CLUSTER_NAMESPACE_FILE.exists():
                namespace = IN_CLUSTER_NAMESPACE_FILE.read_text().strip()
            else:
                _, context = config.list_kube_config_contexts(config_file=kubeconfig)
                namespace = (context or {}).get("context", {}).get("namespace", "default")
        return cls(name, namespace, client.CoreV1Api())

    def describe(self) -> str:
        return f"configmap:{self.namespace}/{self.name}"

    def annotate(self, values: dict[str, str], event: StatusEvent | None = None) -> None:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        body = {"metadata": {"annotations": values}}
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                patched = self._api.patch_namespaced_config_map(self.name, self.namespace, body, _request_timeout=30)
                if event is not None:
                    self._record_event(event, getattr(patched.metadata, "uid", None))
                return
            except ApiException as exc:
                if exc.status == 409 and attempt < CONFLICT_RETRIES:
                    log_event(
                        log,
                        "status ConfigMap patch conflict; retrying",
                        logging.WARNING,
                        configmap=self.describe(),
                        attempt=attempt,
                    )
                    time.sleep(0.2 * 2 ** (attempt - 1))
                    continue
                raise SinkError(self._explain(exc)) from None
            except HTTPError as exc:
                raise SinkError(f"cannot reach the Kubernetes API to patch {self.describe()}: {exc}") from None

    def _record_event(self, status_event: StatusEvent, configmap_uid: str | None) -> None:
        """A Kubernetes Event on the ConfigMap, so `kubectl describe` and event exporters see each
        outcome. The outcome is already recorded: an Event that fails is only a warning."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        event = {
            "metadata": {"generateName": f"{self.name}.", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": self.name,
                "namespace": self.namespace,
                "uid": configmap_uid,
            },
            "reason": status_event.reason,
            "message": status_event.message,
            "type": "Warning" if status_event.warning else "Normal",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": EVENT_COMPONENT},
            "reportingComponent": EVENT_COMPONENT,
            "reportingInstance": socket.gethostname(),
        }
        try:
            self._api.create_namespaced_event(self.namespace, event, _request_timeout=30)
        except (ApiException, HTTPError) as exc:
            status = getattr(exc, "status", None) or type(exc).__name__
            log_event(
                log,
                "outcome recorded, but its Kubernetes Event was not created",
                logging.WARNING,
                configmap=self.describe(),
                error=str(status),
            )

    def _explain(self, exc) -> str:
        reasons = {
            403: "forbidden: the job's ServiceAccount needs get/patch on this ConfigMap (chart RBAC)",
            404: "not found: create it (the Helm chart does) or set STREAMFLOW_STATUS_CONFIGMAP",
            409: f"still conflicting after {CONFLICT_RETRIES} attempts",
        }
        reason = reasons.get(exc.status, f"HTTP {exc.status} {exc.reason}")
        return f"cannot annotate {self.describe()}: {reason}"


def make_sink(settings: Settings) -> StatusSink:
    if settings.status_sink == "configmap":
        return KubernetesConfigMapSink.from_environment(settings.status_configmap, settings.status_namespace)
    assert settings.status_file is not None
    return FileConfigMapSink(settings.status_file, settings.status_configmap, settings.status_namespace or "default")
