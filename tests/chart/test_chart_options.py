"""What users set on this chart the way they set it on the charts they know (kube-prometheus-stack,
prometheus-pushgateway): images as registry / repository / tag / digest. Rendered by the real
Helm CLI (tests/support/chart.py)."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.support.chart import (
    CHART,
    POD_KINDS,
    one,
    pod_spec,
    render,
)
from tests.support.processes import REPO_ROOT

CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
DIGEST = "sha256:" + "0123456789abcdef" * 4

# values path -> the object whose pod those values shape
WORKLOADS = {
    "api": ("Deployment", "streamflow-api"),
    "drift": ("CronJob", "streamflow-drift"),
    "bootstrap": ("Job", "streamflow-bootstrap"),
    "database.postgresql": ("StatefulSet", "streamflow-postgresql"),
    "pushgateway": ("Deployment", "streamflow-pushgateway"),
    "tests": ("Pod", "streamflow-test-api"),
}
IMAGES = [path for path in WORKLOADS if path != "tests"]  # the test pod runs api.image


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
