"""What users set on this chart the way they set it on the charts they know (kube-prometheus-stack,
prometheus-pushgateway): images as registry / repository / tag / digest, the same pod options on
every workload, their own database Secret, and the chart's metadata. Rendered by the real Helm
CLI (tests/support/chart.py); tests/chart/test_apiserver.py admits the ci/ scenarios on a real
API server."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.support.chart import (
    CHART,
    POD_KINDS,
    assert_database_url_from_secret,
    env_of,
    find,
    one,
    pod_spec,
    pod_template,
    render,
)
from tests.support.processes import REPO_ROOT
from tools import toolchain

CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
DIGEST = "sha256:" + "0123456789abcdef" * 4

# values path -> the object whose pod those values shape
WORKLOADS = {
    "api": ("Deployment", "streamflow-api"),
    "drift": ("CronJob", "streamflow-drift"),
    "bootstrap": ("Job", "streamflow-bootstrap-1"),  # one Job per release revision
    "database.postgresql": ("StatefulSet", "streamflow-postgresql"),
    "pushgateway": ("Deployment", "streamflow-pushgateway"),
    "tests": ("Pod", "streamflow-test-api"),
    "retrain": ("CronJob", "streamflow-retrain"),
    "performance": ("CronJob", "streamflow-performance"),
}
# the test pod runs api.image; the retrain and performance jobs run drift.image (the jobs image)
IMAGES = [path for path in WORKLOADS if path not in ("tests", "retrain", "performance")]
POD_OPTIONS: dict[str, Any] = {
    "podAnnotations": {"example.com/owner": "churn-team"},
    "podLabels": {"example.com/team": "ml"},
    "nodeSelector": {"kubernetes.io/arch": "arm64"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ml"]}]}]
            }
        }
    },
    "priorityClassName": "streamflow-high",
    "extraEnv": [{"name": "EXTRA_SETTING", "value": "on"}],
}


def at(path: str, value: Any) -> dict:
    """{"database": {"postgresql": value}} for "database.postgresql"."""
    for key in reversed(path.split(".")):
        value = {key: value}
    return value


def lookup(values: dict, path: str) -> Any:
    for key in path.split("."):
        values = values[key]
    return values


def workload(objects: list[dict], path: str) -> dict:
    return one(objects, *WORKLOADS[path])


def selectors(objects: list[dict]) -> list:
    """Every label selector of the rendering: what must never see a user's podLabels."""
    found: list = []
    for obj in objects:
        spec = obj.get("spec", {})
        if obj["kind"] in {"Deployment", "StatefulSet", "PodDisruptionBudget", "ServiceMonitor", "Service"}:
            found.append(spec["selector"])
        elif obj["kind"] == "NetworkPolicy":
            found += [spec["podSelector"], *(peer for rule in spec.get("ingress", []) for peer in rule["from"])]
    return found


@pytest.fixture(scope="module")
def default_objects() -> list[dict]:
    return render("default")


# --- images ------------------------------------------------------------------------------------------


def image_of(objects: list[dict], path: str) -> tuple[str, str]:
    container = pod_spec(workload(objects, path))["containers"][0]
    return container["image"], container["imagePullPolicy"]


def test_default_images_are_streamflows_at_the_app_version_and_pinned_third_party_ones(default_objects) -> None:
    version = CHART_META["appVersion"]
    assert image_of(default_objects, "api") == (f"streamflow-api:{version}", "IfNotPresent")
    assert image_of(default_objects, "tests") == image_of(default_objects, "api")
    assert image_of(default_objects, "drift") == image_of(default_objects, "bootstrap")
    assert image_of(default_objects, "drift") == (f"streamflow-jobs:{version}", "IfNotPresent")
    assert image_of(default_objects, "database.postgresql") == ("postgres:17.6-alpine", "IfNotPresent")
    assert image_of(default_objects, "pushgateway") == ("quay.io/prometheus/pushgateway:v1.11.1", "Always")


@pytest.mark.parametrize("path", IMAGES)
def test_each_image_is_registry_repository_tag_and_a_digest_wins(path: str) -> None:
    repository = lookup(VALUES, path)["image"]["repository"]
    tagged = render("default", at(path, {"image": {"registry": "mirror.example.com/ml/", "tag": "9.9.9"}}))
    assert image_of(tagged, path)[0] == f"mirror.example.com/ml/{repository}:9.9.9"
    pinned = render(
        "default", at(path, {"image": {"registry": "mirror.example.com", "tag": "9.9.9", "digest": DIGEST}})
    )
    assert image_of(pinned, path)[0] == f"mirror.example.com/{repository}@{DIGEST}"
    never = render("default", at(path, {"image": {"pullPolicy": "Never"}}))
    assert image_of(never, path)[1] == "Never"


def test_make_deploy_tags_every_streamflow_image_with_the_project_version() -> None:
    result = subprocess.run(
        ["make", "-n", "deploy"], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    settings = dict(
        pair.split("=", 1)
        for flag in re.findall(r"--set (\S+)", result.stdout)
        for pair in flag.split(",")
        if ".image.tag=" in pair
    )
    own = {path for path in IMAGES if lookup(VALUES, path)["image"]["repository"].startswith("streamflow-")}
    assert set(settings) == {f"{path}.image.tag" for path in own}
    # rendered with those keys set to another version, every StreamFlow container runs it
    values: dict = {}
    for key in settings:
        values = _merge(values, at(key, "7.7.7"))
    objects = render("default", values)
    images = {c["image"] for o in objects if o["kind"] in POD_KINDS for c in pod_spec(o)["containers"]}
    assert {i for i in images if i.startswith("streamflow-")} == {"streamflow-api:7.7.7", "streamflow-jobs:7.7.7"}


def _merge(left: dict, right: dict) -> dict:
    merged = dict(left)
    for key, value in right.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and key in merged else value
    return merged


# --- pod options -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", WORKLOADS)
def test_each_workload_takes_the_pod_options_on_its_own_pod_only(path: str, default_objects) -> None:
    objects = render("default", at(path, POD_OPTIONS))
    pod = pod_template(workload(objects, path))
    spec = pod["spec"]
    assert pod["metadata"]["labels"]["example.com/team"] == "ml"
    assert pod["metadata"]["annotations"]["example.com/owner"] == "churn-team"
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
        assert spec[key] == POD_OPTIONS[key], key
    # extra variables come after the chart's own, which stay as they were
    before = [e["name"] for e in pod_spec(workload(default_objects, path))["containers"][0].get("env", [])]
    assert [e["name"] for e in spec["containers"][0]["env"]] == [*before, "EXTRA_SETTING"]
    assert env_of(spec["containers"][0])["EXTRA_SETTING"] == {"name": "EXTRA_SETTING", "value": "on"}
    # the chart's labels are all still there, and the user's label never reaches a selector
    default_pod = pod_template(workload(default_objects, path))
    assert default_pod["metadata"]["labels"].items() <= pod["metadata"]["labels"].items()
    assert "example.com/team" not in json.dumps(selectors(objects))
    assert selectors(objects) == selectors(default_objects)
    # no other workload's pod changed: each template reads its own values
    for other in WORKLOADS.keys() - {path}:
        assert pod_template(workload(objects, other)) == pod_template(workload(default_objects, other)), other


def test_default_pods_carry_none_of_the_options(default_objects) -> None:
    for path in WORKLOADS:
        spec = pod_spec(workload(default_objects, path))
        assert not {"nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets"} & set(spec)


def test_pull_secrets_reach_every_pod() -> None:
    objects = render("default", {"imagePullSecrets": [{"name": "registry-credentials"}]})
    pods = [o for o in objects if o["kind"] in POD_KINDS]
    assert {(o["kind"], o["metadata"]["name"]) for o in pods} == set(WORKLOADS.values())
    for obj in pods:
        assert pod_spec(obj)["imagePullSecrets"] == [{"name": "registry-credentials"}], obj["metadata"]["name"]


@pytest.mark.parametrize("label", ["app.kubernetes.io/component", "helm.sh/chart"])
def test_a_pod_label_may_not_replace_one_of_the_charts(label: str) -> None:
    with pytest.raises(toolchain.ToolUnavailable, match=f"drift.podLabels: {re.escape(label)} is one of the chart's"):
        render("default", {"drift": {"podLabels": {label: "mine"}}})


# --- database credentials ----------------------------------------------------------------------------


def test_bundled_postgresql_with_the_users_secret_creates_none_and_renders_the_same_each_time() -> None:
    objects = render("existing-secret-values")
    assert not find(objects, "Secret")
    assert objects == render("existing-secret-values"), "nothing random left: GitOps diffs stay quiet"
    statefulset = one(objects, "StatefulSet")
    (password,) = [v["secret"] for v in pod_spec(statefulset)["volumes"] if "secret" in v]
    assert password["secretName"] == "streamflow-db-credentials"
    assert password["items"] == [{"key": "password", "path": "postgres-password"}]
    assert env_of(pod_spec(statefulset)["containers"][0])["POSTGRES_PASSWORD_FILE"]["value"].endswith(
        "/" + password["items"][0]["path"]
    )
    assert_database_url_from_secret(objects, "streamflow-db-credentials", "url")


def test_the_generated_secret_uses_the_configured_keys() -> None:
    objects = render("default", {"database": {"postgresql": {"passwordKey": "pw", "urlKey": "url"}}})
    secret = one(objects, "Secret", "streamflow-postgresql")
    assert set(secret["data"]) == {"pw", "url"}
    password = [v["secret"] for v in pod_spec(one(objects, "StatefulSet"))["volumes"] if "secret" in v]
    assert password[0]["items"][0]["key"] == "pw"
    assert_database_url_from_secret(objects, "streamflow-postgresql", "url")


def test_the_external_database_wins_over_the_bundled_ones_secret() -> None:
    objects = render(
        "external-database-values", {"database": {"postgresql": {"existingSecret": "unused", "urlKey": "unused"}}}
    )
    assert not find(objects, "StatefulSet") and not find(objects, "Secret")
    assert_database_url_from_secret(objects, "streamflow-database", "url")


# --- metadata --------------------------------------------------------------------------------------------


def test_chart_metadata_names_one_project_address() -> None:
    home = CHART_META["home"]
    assert home.startswith("https://") and CHART_META["sources"] == [home]
    # the alerts' runbooks live in the same project: the two addresses move together
    assert VALUES["prometheusRule"]["runbookBaseUrl"].startswith(home + "/")
    links = {link["name"]: link["url"] for link in yaml.safe_load(CHART_META["annotations"]["artifacthub.io/links"])}
    assert links == {"source": home, "runbooks": VALUES["prometheusRule"]["runbookBaseUrl"]}
    assert CHART_META["annotations"]["artifacthub.io/containsSecurityUpdates"] in {"true", "false"}
    assert CHART_META["maintainers"] and {"evidently", "feast", "prometheus"} <= set(CHART_META["keywords"])


def test_artifacthub_images_are_the_images_the_chart_runs(default_objects) -> None:
    listed = {entry["image"] for entry in yaml.safe_load(CHART_META["annotations"]["artifacthub.io/images"])}
    running = {c["image"] for o in default_objects if o["kind"] in POD_KINDS for c in pod_spec(o)["containers"]}
    assert listed == running


@pytest.mark.parametrize("kube_version, admitted", [(toolchain.KUBERNETES_VERSION, True), ("1.26.0", False)])
def test_kube_version_constraint(kube_version: str, admitted: bool) -> None:
    """1.27 is the oldest Kubernetes with CronJob timeZone GA and podFailurePolicy on by default."""
    result = subprocess.run(
        [str(toolchain.helm()), "template", "streamflow", str(CHART), "--kube-version", kube_version],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert (result.returncode == 0) is admitted, result.stderr
    if not admitted:
        assert "kubeVersion" in result.stderr or "incompatible" in result.stderr
