"""The chart and the drift job against a real Kubernetes API server (etcd + kube-apiserver on
127.0.0.1, tests/support/apiserver.py): Kubernetes' own code decides, not a copy of its rules.

- every object of every rendering is admitted by a server-side dry-run create (strict field
  validation, prometheus-operator CRD schemas, admission plugins);
- Pod Security "restricted": a Pod built from every pod template is admitted by the PodSecurity
  admission of a namespace that enforces it, and a root, privileged pod is refused;
- RBAC: the real drift job, with its ServiceAccount's token, annotates the status ConfigMap and
  records an Event; the same token is refused every other ConfigMap, Secrets and pods;
- a token without rights: the job exits with the sink's code, says why in one line, and the
  ConfigMap is untouched; a missing ConfigMap is a one-line "not found".
The ConfigMap patch carries no resourceVersion (a merge of our annotations only), so a real
server never answers it 409: conflict retries and 5xx stay tested in tests/unit/test_status_sinks.py.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError

from jobs.drift.sinks import KubernetesConfigMapSink, SinkError
from streamflow.drift import ANNOTATION_PREFIX, ExitCode
from tests.support.apiserver import ApiServer, local_apiserver, service_account_token
from tests.support.chart import POD_KINDS, VARIANTS, drift_cronjob, env_of, find, one, pod_spec, pod_template, render
from tests.support.processes import data_env, must_succeed, run_module
from tools import toolchain

PSS_VERSION = "v" + ".".join(toolchain.KUBERNETES_VERSION.split(".")[:2])
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": PSS_VERSION,
}
EVENT_REASONS = {"RETRAINING_TRIGGERED": "RetrainingTriggered", "NO_ACTION": "NoDriftAction"}


class Cluster:
    """The admin's view of the API server: create any object from its manifest."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.api = server.client()
        self.core = client.CoreV1Api(self.api)
        self.dynamic = DynamicClient(self.api, cache_file=str(server.workdir / "discovery.json"))

    def create(self, obj: dict, dry_run: bool = False):
        resource = self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        # Strict: an unknown or duplicate field is an error, as with `kubectl apply`, not a warning
        return self.dynamic.create(
            resource,
            body=obj,
            namespace=obj["metadata"].get("namespace"),
            dry_run="All" if dry_run else None,
            query_params=[("fieldValidation", "Strict")],
        )

    def refusal(self, obj: dict) -> str | None:
        """Why a server-side dry-run create of `obj` is refused; None when it is admitted."""
        try:
            self.create(obj, dry_run=True)
        except DynamicApiError as exc:
            message = json.loads(exc.body or "{}").get("message")
            return f"{obj['kind']} {obj['metadata']['name']}: HTTP {exc.status} {message}"
        return None

    def create_namespace(self, name: str) -> None:
        """A namespace that enforces Pod Security "restricted", as the chart's users should run it."""
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=RESTRICTED)))

    def wait_for_kind(self, api_version: str, kind: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.dynamic.resources.get(api_version=api_version, kind=kind)
                return
            except ResourceNotFoundError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with local_apiserver() as server:
        cluster = Cluster(server)
        crds = toolchain.prometheus_operator_crds()
        for crd in crds.values():
            cluster.create(crd)
        for kind, crd in crds.items():
            cluster.wait_for_kind(f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}", kind)
        yield cluster


def pod_from(obj: dict) -> dict:
    """The Pod a workload (Deployment, StatefulSet, Job, CronJob) would have created."""
    template = copy.deepcopy(pod_template(obj))
    name = f"{obj['metadata']['name']}-{obj['kind'].lower()}"
    metadata = {**template.get("metadata", {}), "name": name, "namespace": obj["metadata"]["namespace"]}
    # a StatefulSet's controller adds a volume per claim template (claim <template>-<pod name>)
    for claim in obj["spec"].get("volumeClaimTemplates", []) if obj["kind"] == "StatefulSet" else []:
        claim_name = claim["metadata"]["name"]
        template["spec"].setdefault("volumes", []).append(
            {"name": claim_name, "persistentVolumeClaim": {"claimName": f"{claim_name}-{name}"}}
        )
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


# --- every rendering, dry-run ------------------------------------------------------------------


@pytest.fixture(scope="module")
def variant_objects(cluster: Cluster) -> dict[str, list[dict]]:
    """Each rendering in a namespace of its own (restricted), with its ServiceAccounts really
    created: the ServiceAccount admission plugin refuses a Pod whose account does not exist. So
    are the PriorityClasses its pods name (a cluster's admin creates those; the Priority
    admission plugin refuses a pod whose class does not exist)."""
    objects = {}
    priority_classes: set[str] = set()
    for variant in VARIANTS:
        namespace = f"dryrun-{variant}"
        cluster.create_namespace(namespace)
        objects[variant] = render(variant, namespace=namespace)
        for account in find(objects[variant], "ServiceAccount"):
            cluster.create(account)
        for obj in objects[variant]:
            name = pod_template(obj)["spec"].get("priorityClassName") if obj["kind"] in POD_KINDS else None
            if name and name not in priority_classes:
                cluster.create(
                    {
                        "apiVersion": "scheduling.k8s.io/v1",
                        "kind": "PriorityClass",
                        "metadata": {"name": name},
                        "value": 1000,
                    }
                )
                priority_classes.add(name)
    return objects


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_rendered_object_is_admitted_by_the_api_server(variant: str, cluster, variant_objects) -> None:
    objects = [o for o in variant_objects[variant] if o["kind"] != "ServiceAccount"]  # created already
    assert len(objects) >= 10
    assert [refusal for obj in objects if (refusal := cluster.refusal(obj))] == []


def test_the_dry_run_refuses_unknown_fields_in_builtin_kinds_and_custom_resources(cluster, variant_objects) -> None:
    objects = variant_objects["default"]
    deployment = copy.deepcopy(one(objects, "Deployment", "streamflow-api"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = []
    refusal = cluster.refusal(deployment)
    assert refusal is not None and "unknown field" in refusal and "readinessProbes" in refusal
    monitor = copy.deepcopy(one(objects, "ServiceMonitor", "streamflow-api"))
    monitor["spec"]["endpoints"][0]["portName"] = "http"
    refusal = cluster.refusal(monitor)
    assert refusal is not None and "portName" in refusal


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pod_template_is_admitted_under_pod_security_restricted(variant: str, cluster, variant_objects) -> None:
    pods = [
        pod_from(o) for o in variant_objects[variant] if o["kind"] in {"Deployment", "StatefulSet", "Job", "CronJob"}
    ]
    pods += find(variant_objects[variant], "Pod")  # Helm's test pod
    assert len(pods) >= 3
    assert [refusal for pod in pods if (refusal := cluster.refusal(pod))] == []


def test_pod_security_admission_refuses_a_root_privileged_pod(cluster, variant_objects) -> None:
    pod = pod_from(one(variant_objects["default"], "Deployment", "streamflow-api"))
    assert cluster.refusal(pod) is None
    pod["spec"]["securityContext"].update(runAsUser=0, runAsNonRoot=False)
    pod["spec"]["containers"][0]["securityContext"].update(privileged=True, allowPrivilegeEscalation=True)
    refusal = cluster.refusal(pod)
    assert refusal is not None and "HTTP 403" in refusal
    assert f'violates PodSecurity "restricted:{PSS_VERSION}"' in refusal
    assert "privileged" in refusal and "runAsNonRoot" in refusal


# --- the drift job's RBAC, for real ---------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    namespace: str
    objects: list[dict]
    job_account: str  # the drift CronJob's ServiceAccount
    status_configmap: str
    job_env: dict[str, str]  # the chart's STREAMFLOW_STATUS_* settings, as the pod gets them


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> Release:
    """The default rendering in namespace streamflow, with what the drift job touches really
    created: ServiceAccounts, Role, RoleBinding, ConfigMaps (status and dashboards), Secret."""
    objects = render("default")
    namespace = drift_cronjob(objects)["metadata"]["namespace"]
    cluster.create_namespace(namespace)
    for obj in objects:
        if obj["kind"] in {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Secret"}:
            cluster.create(obj)
    spec = pod_spec(drift_cronjob(objects))
    job_env = {}
    for name, entry in env_of(spec["containers"][0]).items():
        if name.startswith("STREAMFLOW_STATUS_"):
            from_field = entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            job_env[name] = namespace if from_field == "metadata.namespace" else entry["value"]
    return Release(namespace, objects, spec["serviceAccountName"], job_env["STREAMFLOW_STATUS_CONFIGMAP"], job_env)


@pytest.fixture(scope="module")
def job_token(cluster: Cluster, release: Release) -> str:
    return service_account_token(cluster.api, release.namespace, release.job_account)


def run_drift_job(cluster: Cluster, release: Release, token: str, demo_dir: Path, tmp_path: Path):
    """`python -m jobs.drift` configured as the chart configures it, with `token` in a kubeconfig
    whose own namespace is another one: the namespace must come from the chart's setting."""
    kubeconfig = cluster.server.write_kubeconfig(tmp_path / "kubeconfig", token, "default")
    env = data_env(demo_dir, reports_dir=tmp_path / "reports") | release.job_env | {"KUBECONFIG": str(kubeconfig)}
    return run_module("jobs.drift", env=env)


def status_events(cluster: Cluster, release: Release) -> list:
    selector = f"involvedObject.name={release.status_configmap}"
    return cluster.core.list_namespaced_event(release.namespace, field_selector=selector).items


def test_the_drift_job_records_its_decision_with_its_own_token(cluster, release, job_token, demo_dir, tmp_path) -> None:
    events_before = {e.metadata.name for e in status_events(cluster, release)}
    result = must_succeed(run_drift_job(cluster, release, job_token, demo_dir, tmp_path))
    configmap = cluster.core.read_namespaced_config_map(release.status_configmap, release.namespace)
    recorded = {
        k.removeprefix(ANNOTATION_PREFIX): v
        for k, v in configmap.metadata.annotations.items()
        if k.startswith(ANNOTATION_PREFIX)
    }
    # what the job decided, per its own JSON report and its last stdout line
    report = json.loads(Path(recorded["report-json"]).read_text())["streamflow"]
    assert recorded["decision"] == report["decision"] and f"-> {report['decision']}" in result.stdout.splitlines()[-1]
    assert float(recorded["drift-share"]) == pytest.approx(report["drift_share"], abs=5e-5)
    assert (recorded["reference"], recorded["current"]) == (report["reference"], report["current"])
    # the patch merged into the chart's object: its own annotation and data are still there
    chart_configmap = one(release.objects, "ConfigMap", release.status_configmap)
    assert configmap.metadata.annotations["helm.sh/resource-policy"] == "keep"
    assert configmap.data == chart_configmap["data"]
    new_events = [e for e in status_events(cluster, release) if e.metadata.name not in events_before]
    assert len(new_events) == 1
    event = new_events[0]
    assert event.involved_object.kind == "ConfigMap" and event.involved_object.uid == configmap.metadata.uid
    assert event.reason == EVENT_REASONS[recorded["decision"]]
    assert f"decision={recorded['decision']}" in event.message


# Writes are dry-run: RBAC is decided before that, and a chart that wrongly allowed one would
# fail its test without changing the objects the other tests use.
OTHER_REQUESTS: dict[str, Callable[[client.CoreV1Api, Release], object]] = {
    "patch another ConfigMap": lambda core, r: core.patch_namespaced_config_map(
        next(
            c["metadata"]["name"] for c in find(r.objects, "ConfigMap") if c["metadata"]["name"] != r.status_configmap
        ),
        r.namespace,
        {"metadata": {"annotations": {ANNOTATION_PREFIX + "decision": "NO_ACTION"}}},
        dry_run="All",
    ),
    "replace the status ConfigMap": lambda core, r: core.replace_namespaced_config_map(
        r.status_configmap, r.namespace, core.read_namespaced_config_map(r.status_configmap, r.namespace), dry_run="All"
    ),
    "delete the status ConfigMap": lambda core, r: core.delete_namespaced_config_map(
        r.status_configmap, r.namespace, dry_run="All"
    ),
    "list ConfigMaps": lambda core, r: core.list_namespaced_config_map(r.namespace),
    "patch a same-name ConfigMap elsewhere": lambda core, r: core.patch_namespaced_config_map(
        r.status_configmap, "default", {"metadata": {"annotations": {"a": "b"}}}, dry_run="All"
    ),
    "read a Secret": lambda core, r: core.read_namespaced_secret(
        one(r.objects, "Secret")["metadata"]["name"], r.namespace
    ),
    "list Secrets": lambda core, r: core.list_namespaced_secret(r.namespace),
    "list pods": lambda core, r: core.list_namespaced_pod(r.namespace),
    "read a pod": lambda core, r: core.read_namespaced_pod("streamflow-api", r.namespace),
}


@pytest.mark.parametrize("request_name", OTHER_REQUESTS)
def test_the_job_token_is_refused_everything_else(request_name: str, cluster, release, job_token) -> None:
    core = client.CoreV1Api(cluster.server.client(job_token))
    # the token authenticates and reads its own ConfigMap: a 403 below is RBAC, not a bad token
    configmap = core.read_namespaced_config_map(release.status_configmap, release.namespace)
    assert configmap.metadata is not None and configmap.metadata.name
    with pytest.raises(ApiException) as refused:
        OTHER_REQUESTS[request_name](core, release)
    assert refused.value.status == 403, refused.value.body


def test_a_token_without_rights_fails_the_job_in_one_line_and_changes_nothing(
    cluster, release, demo_dir, tmp_path
) -> None:
    cluster.core.create_namespaced_service_account(release.namespace, {"metadata": {"name": "no-rights"}})
    token = service_account_token(cluster.api, release.namespace, "no-rights")
    # a previous decision the failed run must leave as it is
    cluster.core.patch_namespaced_config_map(
        release.status_configmap,
        release.namespace,
        {
            "metadata": {
                "annotations": {
                    ANNOTATION_PREFIX + "decision": "NO_ACTION",
                    ANNOTATION_PREFIX + "finished-at": "before",
                }
            }
        },
    )
    before = cluster.core.read_namespaced_config_map(release.status_configmap, release.namespace)
    events_before = len(status_events(cluster, release))
    result = run_drift_job(cluster, release, token, demo_dir, tmp_path)
    assert result.returncode == ExitCode.SINK, result.stderr[-2000:]
    failures = [line for line in result.stderr.splitlines() if line.startswith("drift job failed")]
    assert len(failures) == 1 and failures[0].startswith(
        f"drift job failed (status not recorded): cannot annotate configmap:{release.namespace}/"
        f"{release.status_configmap}: forbidden"
    ), failures
    after = cluster.core.read_namespaced_config_map(release.status_configmap, release.namespace)
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.metadata.annotations == before.metadata.annotations
    assert len(status_events(cluster, release)) == events_before


def test_a_missing_status_configmap_is_a_one_line_not_found(cluster, release) -> None:
    sink = KubernetesConfigMapSink("absent-status", release.namespace, cluster.core)
    with pytest.raises(SinkError) as caught:
        sink.annotate({ANNOTATION_PREFIX + "decision": "NO_ACTION"})
    message = str(caught.value)
    assert "not found" in message and "\n" not in message and f"{release.namespace}/absent-status" in message
    selector = "involvedObject.name=absent-status"
    assert cluster.core.list_namespaced_event(release.namespace, field_selector=selector).items == []
