"""The Helm chart, rendered by the real Helm CLI and checked the way a cluster would.

Every rendering (default values and each charts/streamflow/ci/*.yaml) is validated strictly
against the Kubernetes 1.33 schemas (kubernetes-validate) and the prometheus-operator CRD
schemas, scanned by checkov, and checked for the wiring that only shows at run time: the
ServiceMonitor selects the API Service's port, the Role names the ConfigMap the job annotates,
the CronJob runs the real module, every pod is hardened beyond Pod Security "restricted" (which
tests/chart/test_apiserver.py checks with Kubernetes' own admission, with the RBAC on a real API server).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from streamflow import __version__
from streamflow.drift import NOT_RETRYABLE, ExitCode
from tests.support.chart import (
    CHART,
    NAMESPACE,
    POD_KINDS,
    RELEASE,
    VARIANTS,
    assert_database_url_from_secret,
    components_where,
    drift_cronjob,
    env_of,
    find,
    one,
    pod_spec,
    pod_template,
    render,
    value_files,
)
from tests.support.processes import REPO_ROOT
from tools import toolchain

KUBE_VERSION_FLAG = ["--kube-version", toolchain.KUBERNETES_VERSION]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(toolchain.helm()), *args], capture_output=True, text=True, check=False, timeout=120)
    if check:
        assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr}"
    return result


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {variant: render(variant) for variant in VARIANTS}


@pytest.fixture(scope="module")
def manifests(rendered, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rendered")
    paths = {}
    for variant, objects in rendered.items():
        paths[variant] = root / f"{variant}.yaml"
        paths[variant].write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return paths


# --- Helm itself ----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_strict(variant: str) -> None:
    files = [arg for path in value_files(variant) for arg in ("-f", str(path))]
    result = helm("lint", "--strict", str(CHART), *KUBE_VERSION_FLAG, *files)
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_chart_version_is_the_project_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == chart["version"] == project == __version__


@pytest.mark.parametrize(
    "setting, path",
    [
        (["--set", "drift.threshold=high"], "/drift/threshold"),
        (["--set", "api.workers=two"], "/api/workers"),
        (["--set-string", "api.replicas=1"], "/api/replicas"),
        (["--set", "api.workers=0"], "/api/workers"),
        (["--set-string", "prometheusRule.enabled=yes"], "/prometheusRule/enabled"),
        (["--set", "serviceMonitor.additionalLabels=release"], "/serviceMonitor/additionalLabels"),
        (["--set", "drift.schedule=daily"], "/drift/schedule"),
        (["--set", "drift.threshold=1.5"], "/drift/threshold"),
        (["--set", "api.worker=2"], "/api"),  # a typo is refused, not silently ignored
        (["--set", "drift.sampleRows=10"], "/drift/sampleRows"),  # too few to judge drift by
        (["--set", "api.predictionCache.size=-1"], "/api/predictionCache/size"),
        (["--set", "api.modelRuntime=onnx"], "/api/modelRuntime"),
        (["--set", "image.tag=0.1.0"], ""),  # the former image.prefix/image.tag: refused, not ignored
        (["--set", "api.image.digest=sha256:abc"], "/api/image/digest"),
        (["--set", "pushgateway.image.tag="], "/pushgateway/image/tag"),  # neither a tag nor a digest
        (["--set", "drift.tolerations[0].operator=Maybe"], "/drift/tolerations/0/operator"),
        (["--set", "bootstrap.extraEnv[0].value=x"], "/bootstrap/extraEnv/0"),  # an EnvVar needs its name
        (["--set", "serviceMonitor.relabelings[0].action=rename"], "/serviceMonitor/relabelings/0/action"),
        (["--set", "tests.priorityClassName=High"], "/tests/priorityClassName"),
    ],
)
def test_values_schema_rejects_wrong_types(setting: list[str], path: str) -> None:
    result = helm("template", RELEASE, str(CHART), *KUBE_VERSION_FLAG, *setting, check=False)
    assert result.returncode != 0
    assert f"at '{path}'" in result.stderr, result.stderr


CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")  # scheme://user:password@


def test_no_default_password_and_no_secret_in_the_environment(rendered) -> None:
    first = one(rendered["default"], "Secret")["data"]["postgres-password"]
    second = one(render("default"), "Secret")["data"]["postgres-password"]
    assert first != second, "the password is generated per install, not a chart default"
    for variant, objects in rendered.items():
        # the one Secret the chart must create: the bundled database's (none with an external one)
        secrets = find(objects, "Secret")
        assert [s["metadata"]["name"] for s in secrets] in ([], ["streamflow-postgresql"]), variant
        secret_values = [base64.b64decode(v).decode() for s in secrets for v in s["data"].values()]
        for obj in objects:
            if obj["kind"] == "Secret":
                continue
            text = json.dumps(obj)
            where = f"{variant} {obj['kind']} {obj['metadata']['name']}"
            assert not CREDENTIALS_IN_URL.search(text), f"{where}: a URL with credentials"
            assert not [v for v in secret_values if v in text], f"{where}: holds a value of the Secret"
            if obj["kind"] in POD_KINDS:
                for container in pod_spec(obj)["containers"]:
                    for name, entry in env_of(container).items():
                        assert "secretKeyRef" not in entry.get("valueFrom", {}), f"{variant} {obj['kind']} env {name}"
                        assert not re.search("PASSWORD|TOKEN", name) or name.endswith("_FILE"), (
                            f"{variant}: {name} in env"
                        )


def test_grafana_admin_password_comes_from_a_secret_make_monitoring_generates() -> None:
    values = yaml.safe_load((REPO_ROOT / "k8s" / "kube-prometheus-stack.values.yaml").read_text())
    admin = values["grafana"]["admin"]
    assert admin == {"existingSecret": "grafana-admin", "userKey": "admin-user", "passwordKey": "admin-password"}
    assert "adminPassword" not in values["grafana"], "kps's chart default password must not be set or kept"
    result = subprocess.run(
        ["make", "-n", "monitoring"], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    commands = result.stdout.replace("\\\n", " ").splitlines()  # join continued lines
    create = next(line for line in commands if "create secret generic grafana-admin" in line)
    # random per cluster, never a literal; and an existing Secret is kept (`get ... ||`)
    assert '--from-literal=admin-password="$(head -c 24 /dev/urandom' in create
    assert "get secret grafana-admin" in create.split("||")[0]


# --- schemas -----------------------------------------------------------------------------------


def kubernetes_validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(toolchain.lint_venv() / "kubernetes-validate"), "-k", toolchain.KUBERNETES_VERSION, "--strict", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_builtin_object_passes_the_kubernetes_schemas_strictly(variant: str, rendered, manifests) -> None:
    result = kubernetes_validate(manifests[variant])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    builtin = [o for o in rendered[variant] if "monitoring.coreos.com" not in o["apiVersion"]]
    assert output.count(" passed for resource ") == len(builtin), output


def test_strict_schema_validation_catches_an_unknown_field(rendered, tmp_path: Path) -> None:
    deployment = copy.deepcopy(one(rendered["default"], "Deployment", "streamflow-api"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = []
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(deployment))
    result = kubernetes_validate(path)
    assert result.returncode != 0 and "readinessProbes" in result.stdout + result.stderr


def _closed(schema):
    """The CRD schema with additionalProperties: false wherever it lists properties, so an
    unknown field fails as it does on a real API server (CRDs prune/reject unknown fields)."""
    if isinstance(schema, dict):
        schema = {k: _closed(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def crd_errors(obj: dict) -> list[str]:
    crd = toolchain.prometheus_operator_crds()[obj["kind"]]
    version = next(v for v in crd["spec"]["versions"] if v["name"] == obj["apiVersion"].split("/")[1])
    schema = _closed(version["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


def test_custom_resources_match_the_prometheus_operator_crds(rendered) -> None:
    checked = 0
    for variant, objects in rendered.items():
        for obj in objects:
            if obj["apiVersion"].startswith("monitoring.coreos.com/"):
                assert crd_errors(obj) == [], f"{variant} {obj['kind']}"
                checked += 1
    assert checked >= 2 * (len(VARIANTS) - 1)  # ServiceMonitor + PrometheusRule except in "minimal"


def test_crd_validation_catches_an_unknown_field_and_a_wrong_type(rendered) -> None:
    monitor = copy.deepcopy(one(rendered["default"], "ServiceMonitor", "streamflow-api"))
    monitor["spec"]["endpoints"][0]["portName"] = "http"
    assert any("portName" in e for e in crd_errors(monitor))
    rule = copy.deepcopy(one(rendered["default"], "PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0]["for"] = 120
    assert crd_errors(rule)


# --- wiring --------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "minimal-values"])
def test_servicemonitor_selects_the_api_service_and_its_named_port(variant: str, rendered) -> None:
    objects = rendered[variant]
    monitor = one(objects, "ServiceMonitor", "streamflow-api")
    service = one(objects, "Service", "streamflow-api")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http"] and "http" in port_names
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    # and the Service reaches the API container's named port
    deployment = one(objects, "Deployment", "streamflow-api")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    container_ports = {p["name"] for p in pod_spec(deployment)["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports
    expected = {"release": "kps"} if variant != "hpa-values" else {"release": "monitoring", "team": "ml"}
    assert expected.items() <= monitor["metadata"]["labels"].items()
    assert one(objects, "PrometheusRule")["metadata"]["labels"]["release"] == expected["release"]


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "minimal-values"])
def test_drift_role_grants_exactly_the_configmap_the_job_annotates(variant: str, rendered) -> None:
    objects = rendered[variant]
    cronjob = drift_cronjob(objects)
    spec = pod_spec(cronjob)
    env = env_of(spec["containers"][0])
    target = env["STREAMFLOW_STATUS_CONFIGMAP"]["value"]
    assert env["STREAMFLOW_STATUS_SINK"]["value"] == "configmap"
    assert env["STREAMFLOW_STATUS_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert one(objects, "ConfigMap", target)["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    role = one(objects, "Role")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [target], "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    ]
    binding = one(objects, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": spec["serviceAccountName"], "namespace": NAMESPACE}
    ]
    assert not find(objects, "ClusterRole") and not find(objects, "ClusterRoleBinding")
    # every other pod runs without an API token, but the retrain job's: it annotates the same
    # ConfigMap, as the same ServiceAccount (one Role, one binding: nothing more to grant)
    for obj in objects:
        component = (
            pod_template(obj)["metadata"]["labels"]["app.kubernetes.io/component"] if obj["kind"] in POD_KINDS else ""
        )
        if component == "retrain":
            assert pod_spec(obj)["serviceAccountName"] == spec["serviceAccountName"]
        elif obj["kind"] in POD_KINDS and obj is not cronjob:
            assert pod_spec(obj)["automountServiceAccountToken"] is False, obj["metadata"]["name"]
            assert pod_spec(obj)["serviceAccountName"] != spec["serviceAccountName"]


def test_status_configmap_name_is_configurable(rendered) -> None:
    objects = render("default", {"status": {"configMapName": "churn-drift"}})
    assert one(objects, "Role")["rules"][0]["resourceNames"] == ["churn-drift"]
    assert (
        env_of(pod_spec(drift_cronjob(objects))["containers"][0])["STREAMFLOW_STATUS_CONFIGMAP"]["value"]
        == "churn-drift"
    )
    assert find(objects, "ConfigMap", "churn-drift")


def test_cronjob_and_bootstrap_run_the_real_modules(rendered) -> None:
    objects = rendered["default"]
    cronjob = drift_cronjob(objects)
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["schedule"] == "0 6 * * *" and cronjob["spec"]["timeZone"] == "Etc/UTC"
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        assert isinstance(cronjob["spec"][key], int)
    job_spec = cronjob["spec"]["jobTemplate"]["spec"]
    assert job_spec["activeDeadlineSeconds"] > 0 and job_spec["backoffLimit"] >= 0
    drift = pod_spec(cronjob)["containers"][0]
    assert "args" not in drift, "default: the two latest snapshots"
    assert env_of(drift)["STREAMFLOW_DRIFT_THRESHOLD"]["value"] == "0.3"
    bootstrap = one(objects, "Job")
    # not a hook: Helm's --wait runs post-install hooks only after the API is Ready, which needs
    # this Job's model (a deadlock ct install met); one Job per revision instead
    assert "helm.sh/hook" not in bootstrap["metadata"].get("annotations", {})
    assert bootstrap["metadata"]["name"] == "streamflow-bootstrap-1"
    for container in (drift, pod_spec(bootstrap)["containers"][0]):
        python, flag, module, *args = container["command"] + container.get("args", [])
        assert (python, flag) == ("python", "-m")
        # the module exists and parses the chart's arguments
        result = subprocess.run(
            [sys.executable, "-m", module, *args, "--help"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0 and "usage: python -m " + module in result.stdout, result.stderr


def test_pod_failure_policy_fails_the_job_at_once_on_the_drift_clis_not_retryable_codes(rendered) -> None:
    cronjob = drift_cronjob(rendered["default"])
    (rule,) = cronjob["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    on_exit = rule["onExitCodes"]
    assert on_exit["containerName"] == pod_spec(cronjob)["containers"][0]["name"]
    assert on_exit["operator"] == "In"
    # the CLI's own list (streamflow/drift.py): a code added there or renumbered fails here
    assert on_exit["values"] == sorted(NOT_RETRYABLE)
    assert ExitCode.OK not in on_exit["values"]


def test_bad_settings_fail_the_bootstrap_job_at_once(rendered) -> None:
    bootstrap = one(rendered["default"], "Job")
    (rule,) = bootstrap["spec"]["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"] == {
        "containerName": pod_spec(bootstrap)["containers"][0]["name"],
        "operator": "In",
        "values": [ExitCode.USAGE],  # what settings_or_exit() exits with
    }


def test_explicit_months_and_schedule_reach_the_cronjob(rendered) -> None:
    cronjob = drift_cronjob(rendered["external-database-values"])
    assert cronjob["spec"]["schedule"] == "30 2 1 * *" and cronjob["spec"]["timeZone"] == "Europe/Paris"
    drift = pod_spec(cronjob)["containers"][0]
    assert drift["args"] == ["--reference", "2024-01-31", "--current", "2024-02-29"]
    assert env_of(drift)["STREAMFLOW_DRIFT_THRESHOLD"]["value"] == "0.25"
    assert env_of(drift)["STREAMFLOW_DRIFT_SAMPLE_ROWS"]["value"] == "200000"
    default_drift = pod_spec(drift_cronjob(rendered["default"]))["containers"][0]
    assert "STREAMFLOW_DRIFT_SAMPLE_ROWS" not in env_of(default_drift)  # all users unless asked
    api_deployment = next(d for d in find(rendered["default"], "Deployment") if d["metadata"]["name"].endswith("-api"))
    api = env_of(pod_spec(api_deployment)["containers"][0])
    assert api["STREAMFLOW_PREDICTION_CACHE_SIZE"]["value"] == "50000"
    assert api["STREAMFLOW_PREDICTION_CACHE_CHECK_SECONDS"]["value"] == "10"
    assert api["STREAMFLOW_MODEL_RUNTIME"]["value"] == "treelite"
    reports = next(v for v in pod_spec(cronjob)["volumes"] if v["name"] == "reports")
    assert "emptyDir" in reports and not find(rendered["external-database-values"], "PersistentVolumeClaim")


def test_external_database_comes_from_the_users_secret(rendered) -> None:
    objects = rendered["external-database-values"]
    assert not find(objects, "StatefulSet") and not find(objects, "Secret")
    assert_database_url_from_secret(objects, "streamflow-database", "url")


def test_bundled_database_url_points_at_the_bundled_postgresql(rendered) -> None:
    objects = rendered["default"]
    secret = one(objects, "Secret")
    password = base64.b64decode(secret["data"]["postgres-password"]).decode()
    url = base64.b64decode(secret["data"]["database-url"]).decode()
    service = one(objects, "Service", "streamflow-postgresql")
    assert url == f"postgresql://streamflow:{password}@{service['metadata']['name']}:5432/streamflow"
    assert len(password) >= 32 and password.isalnum()
    assert_database_url_from_secret(objects, secret["metadata"]["name"], "database-url")
    statefulset = one(objects, "StatefulSet")
    env = env_of(pod_spec(statefulset)["containers"][0])
    assert env["POSTGRES_USER"]["value"] == "streamflow" and env["POSTGRES_DB"]["value"] == "streamflow"


def test_workers_switch_on_multiprocess_metrics_on_a_memory_volume(rendered) -> None:
    for variant, expected in (("default", False), ("workers-values", True)):
        spec = pod_spec(one(rendered[variant], "Deployment", "streamflow-api"))
        container = spec["containers"][0]
        env = env_of(container)
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert ("STREAMFLOW_PROMETHEUS_MULTIPROC_DIR" in env) is expected
        if expected:
            assert env["STREAMFLOW_API_WORKERS"]["value"] == "3"
            assert mounts["metrics"] == env["STREAMFLOW_PROMETHEUS_MULTIPROC_DIR"]["value"]
            volume = next(v for v in spec["volumes"] if v["name"] == "metrics")
            assert volume["emptyDir"]["medium"] == "Memory"
    workers = rendered["workers-values"]
    assert one(workers, "Deployment", "streamflow-api")["spec"]["replicas"] == 2
    assert (
        one(workers, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items()
        <= one(workers, "Deployment", "streamflow-api")["spec"]["template"]["metadata"]["labels"].items()
    )


def test_autoscaling_hands_replicas_to_the_hpa(rendered) -> None:
    objects = rendered["hpa-values"]
    hpa = one(objects, "HorizontalPodAutoscaler")
    deployment = one(objects, "Deployment", "streamflow-api")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"]
    assert pod_spec(deployment)["containers"][0]["resources"]["requests"]["cpu"], "the HPA needs a CPU request"


def test_probes_hit_health_and_ready(rendered) -> None:
    container = pod_spec(one(rendered["default"], "Deployment", "streamflow-api"))["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    test_pod = one(rendered["default"], "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert test_pod["spec"]["containers"][0]["command"][:3] == ["python", "-m", "api.smoke"]


def test_network_policies_admit_prometheus_and_clients_only(rendered) -> None:
    objects = rendered["default"]
    api_policy = one(objects, "NetworkPolicy", "streamflow-api")
    sources = api_policy["spec"]["ingress"][0]["from"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    } in sources
    database = one(objects, "NetworkPolicy", "streamflow-postgresql")
    allowed = database["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"]

    # exactly the workloads that mount the database URL reach the database
    def mounts_database_url(spec: dict) -> bool:
        items = [item for v in spec.get("volumes", []) for item in v.get("secret", {}).get("items", [])]
        return any(item["path"] == "streamflow_database_url" for item in items)

    reads_database = components_where(objects, mounts_database_url)
    assert set(allowed) == reads_database == {"api", "bootstrap", "drift", "retrain", "performance"}
    jobs = one(objects, "NetworkPolicy", "streamflow-jobs")
    assert jobs["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in jobs["spec"]
    # every pod that serves nothing (all but the API, the database and the Pushgateway) takes no ingress
    no_ingress = jobs["spec"]["podSelector"]["matchExpressions"][0]["values"]
    serves = {"api", "database", "pushgateway"}
    assert set(no_ingress) == components_where(objects, lambda spec: True) - serves
    assert not find(rendered["minimal-values"], "NetworkPolicy")


# --- security ------------------------------------------------------------------------------------


# Pod Security "restricted" itself is checked by Kubernetes' own PodSecurity admission
# (tests/chart/test_apiserver.py); these are the chart's requirements beyond it.
def hardening_violations(spec: dict) -> list[str]:
    """What Pod Security "restricted" does not require but the chart promises: a read-only root
    filesystem, resource limits, and a fixed numeric UID (the kubelet can only verify
    runAsNonRoot for a numeric user)."""
    found = []
    pod_ctx = spec.get("securityContext", {})
    for container in spec.get("initContainers", []) + spec["containers"]:
        ctx = container.get("securityContext", {})
        name = container["name"]
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) is None:
            found.append(f"{name}: runAsUser not a fixed UID")
        if ctx.get("readOnlyRootFilesystem") is not True:
            found.append(f"{name}: readOnlyRootFilesystem")
        if "limits" not in container.get("resources", {}):
            found.append(f"{name}: no resource limits")
    return found


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pod_is_hardened_beyond_pod_security_restricted(variant: str, rendered) -> None:
    pods = [o for o in rendered[variant] if o["kind"] in POD_KINDS]
    assert len(pods) >= 3
    for obj in pods:
        assert hardening_violations(pod_spec(obj)) == [], f"{variant} {obj['kind']} {obj['metadata']['name']}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_pod_gets_service_link_variables(variant: str, rendered) -> None:
    # Found on the first real install: the Service streamflow-api made the kubelet set
    # STREAMFLOW_API_PORT=tcp://10.96.x.y:8000 in the bootstrap pod, which the settings refused.
    for obj in (o for o in rendered[variant] if o["kind"] in POD_KINDS):
        assert pod_spec(obj)["enableServiceLinks"] is False, f"{variant} {obj['kind']} {obj['metadata']['name']}"


def test_hardening_check_catches_a_writable_root_filesystem_and_missing_limits(rendered) -> None:
    spec = copy.deepcopy(pod_spec(one(rendered["default"], "Deployment", "streamflow-api")))
    spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    del spec["containers"][0]["resources"]["limits"]
    assert hardening_violations(spec) == ["api: readOnlyRootFilesystem", "api: no resource limits"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_checkov_finds_nothing_unjustified(variant: str, manifests) -> None:
    result = subprocess.run(
        [
            str(toolchain.lint_venv() / "checkov"),
            "--framework",
            "kubernetes",
            "-f",
            str(manifests[variant]),
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    report = json.loads(result.stdout)
    failed = {(c["check_id"], c["resource"].split(".")[0]) for c in report["results"]["failed_checks"]}
    if variant == "minimal-values":
        # NetworkPolicy switched off by the user: exactly the "pods without a NetworkPolicy" check fails
        assert failed and {check for check, _ in failed} == {"CKV2_K8S_6"}
    else:
        assert failed == set(), failed
    skipped = report["results"]["skipped_checks"]
    assert skipped and all(len(c["check_result"]["suppress_comment"]) > 30 for c in skipped), (
        "every skip carries its reason"
    )


def test_dockerfile_passes_hadolint_and_runs_as_non_root() -> None:
    dockerfile = REPO_ROOT / "Dockerfile"
    result = subprocess.run(
        [str(toolchain.lint_venv() / "hadolint"), str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    stages = {name: base for base, name in re.findall(r"(?m)^FROM (\S+) AS (\w+)$", text)}
    assert stages["api"] == stages["jobs"] == "runtime", "both images build on the non-root runtime stage"
    runtime = text.split("AS runtime", 1)[1].split("\nFROM ", 1)[0]
    assert re.search(r"(?m)^USER 10001:10001$", runtime)
    assert re.search(r"(?m)^ARG PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+$", text), "pinned slim base"
    # the chart's own image repositories (streamflow-<target>) are the Dockerfile's targets
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    repositories = {values[workload]["image"]["repository"] for workload in ("api", "drift", "bootstrap")}
    assert repositories == {f"streamflow-{target}" for target in re.findall(r"--target (\w+)", text)}
    assert repositories == {"streamflow-api", "streamflow-jobs"}


# --- the commands users run ---------------------------------------------------------------------------


def test_make_targets_use_the_names_the_chart_renders(rendered) -> None:
    objects = rendered["default"]
    result = subprocess.run(
        ["make", "-n", "deploy", "drift-now", "status", "traffic", "grafana", "prometheus"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    commands = result.stdout
    assert f"upgrade --install {RELEASE} charts/streamflow -n {NAMESPACE}" in commands
    api = one(objects, "Deployment", "streamflow-api")
    assert (
        f"--selector app.kubernetes.io/instance={api['metadata']['labels']['app.kubernetes.io/instance']}" in commands
    )
    assert f"cronjob/{drift_cronjob(objects)['metadata']['name']}" in commands
    assert f"service/{one(objects, 'Service', 'streamflow-api')['metadata']['name']}" in commands
    status_configmap = env_of(pod_spec(drift_cronjob(objects))["containers"][0])["STREAMFLOW_STATUS_CONFIGMAP"]["value"]
    assert f"configmap {status_configmap}" in commands
    assert "port-forward service/prometheus-operated 9090:9090" in commands


def test_the_loop_jobs_run_what_their_values_say() -> None:
    objects = render("default", {"retrain": {"mode": "promote", "breachesInRow": 3, "aucMargin": 0.01}})
    retrain = one(objects, "CronJob", "streamflow-retrain")
    spec = pod_spec(retrain)
    [container] = spec["containers"]
    env = {name: entry.get("value") for name, entry in env_of(container).items()}
    assert container["command"] == ["python", "-m", "jobs.retrain"] and retrain["spec"]["concurrencyPolicy"] == "Forbid"
    assert (env["STREAMFLOW_RETRAIN_MODE"], env["STREAMFLOW_RETRAIN_BREACHES_IN_ROW"]) == ("promote", "3")
    assert env["STREAMFLOW_RETRAIN_AUC_MARGIN"] == "0.01" and env["STREAMFLOW_STATUS_SINK"] == "configmap"
    # it annotates the status ConfigMap: the drift job's ServiceAccount and Role, nothing new
    assert spec["serviceAccountName"] == "streamflow-drift" and spec["automountServiceAccountToken"] is True
    performance = pod_spec(one(objects, "CronJob", "streamflow-performance"))
    assert performance["containers"][0]["command"] == ["python", "-m", "jobs.performance"]
    assert performance["automountServiceAccountToken"] is False  # database and Pushgateway only
    assert "STREAMFLOW_PUSHGATEWAY_URL" in env_of(performance["containers"][0])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"retrain": {"mode": "always"}}, "mode"),
        ({"retrain": {"breachesInRow": 0}}, "breachesInRow"),
        ({"drift": {"enabled": False}}, "retrain.enabled needs drift.enabled"),
    ],
)
def test_loop_values_that_cannot_work_are_refused(values: dict, message: str, tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = helm("template", "streamflow", str(CHART), "-f", str(path), *KUBE_VERSION_FLAG, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr
