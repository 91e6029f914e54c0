"""The Helm chart's renderings and how to find things in them, shared by the chart tests
(tests/chart/test_chart.py: static checks) and the API server tests (tests/chart/test_apiserver.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tools.monitoring.localstack import CHART_DIR as CHART
from tools.monitoring.localstack import render_chart

VARIANTS = ["default", *sorted(p.stem for p in (CHART / "ci").glob("*.yaml"))]
RELEASE = NAMESPACE = "streamflow"  # what `make deploy` uses
POD_KINDS = {"Deployment", "StatefulSet", "Job", "CronJob", "Pod"}


def value_files(variant: str) -> list[Path]:
    return [] if variant == "default" else [CHART / "ci" / f"{variant}.yaml"]


def render(variant: str, values: dict | None = None, namespace: str = NAMESPACE) -> list[dict]:
    return render_chart(RELEASE, namespace, values, value_files=value_files(variant))


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_template(obj: dict) -> dict:
    """The pod (metadata + spec) a workload object would create; a Pod is its own."""
    if obj["kind"] == "Pod":
        return obj
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    return obj["spec"]["template"]


def pod_spec(obj: dict) -> dict:
    return pod_template(obj)["spec"]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def assert_database_url_from_secret(objects: list[dict], secret: str, key: str) -> None:
    """Every StreamFlow workload reads the database URL from that Secret key, mounted as a file."""
    for obj in objects:
        # the helm test pod, the Pushgateway and PostgreSQL itself need no URL
        if obj["kind"] in POD_KINDS - {"Pod", "StatefulSet"} and obj["metadata"]["name"] != "streamflow-pushgateway":
            secrets = [v["secret"] for v in pod_spec(obj)["volumes"] if "secret" in v]
            assert secrets == [
                {"secretName": secret, "defaultMode": 0o440, "items": [{"key": key, "path": "streamflow_database_url"}]}
            ], obj["metadata"]["name"]


def components_where(objects: list[dict], wants: Callable[[dict], bool]) -> set[str]:
    """The `app.kubernetes.io/component` of every workload whose pod spec satisfies `wants`."""
    return {
        pod_template(obj)["metadata"]["labels"]["app.kubernetes.io/component"]
        for obj in objects
        if obj["kind"] in POD_KINDS and wants(pod_spec(obj))
    }


def drift_cronjob(objects: list[dict]) -> dict:
    """The drift CronJob (the chart has others: retrain, performance)."""
    found = [o for o in find(objects, "CronJob") if o["metadata"]["labels"]["app.kubernetes.io/component"] == "drift"]
    assert len(found) == 1, f"expected one drift CronJob, found {len(found)}"
    return found[0]
