"""tools.doctor: label selection decided as prometheus-operator decides it, and the verdict table."""

from __future__ import annotations

import pytest

from streamflow import drift
from tools import doctor


def _prometheus(namespace: str = "monitoring", **spec) -> dict:
    return {"metadata": {"name": "kps-prometheus", "namespace": namespace}, "spec": spec}


def _monitor(labels: dict[str, str], namespace: str = "streamflow") -> dict:
    return {"metadata": {"name": "streamflow-api", "namespace": namespace, "labels": labels}}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {"a": "1"}, True),  # {} selects everything
        (None, {"a": "1"}, False),  # nil selects nothing
        ({"matchLabels": {"release": "kps"}}, {"release": "kps", "x": "y"}, True),
        ({"matchLabels": {"release": "kps"}}, {"release": "prom"}, False),
        ({"matchExpressions": [{"key": "release", "operator": "In", "values": ["kps", "p"]}]}, {"release": "p"}, True),
        ({"matchExpressions": [{"key": "release", "operator": "NotIn", "values": ["kps"]}]}, {"release": "kps"}, False),
        ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, {"release": "kps"}, False),
        ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, {"release": "kps"}, True),
    ],
)
def test_label_selectors(selector, labels, expected):
    assert doctor.matches(selector, labels) is expected


def test_kps_prometheus_selects_by_release_label_in_every_namespace():
    kps = _prometheus(serviceMonitorSelector={"matchLabels": {"release": "kps"}}, serviceMonitorNamespaceSelector={})
    assert doctor.selects(kps, "serviceMonitor", _monitor({"release": "kps"}), {})
    assert not doctor.selects(kps, "serviceMonitor", _monitor({"release": "wrong"}), {})


def test_a_nil_namespace_selector_means_the_prometheus_namespace_only():
    own = _prometheus(ruleSelector={})
    assert doctor.selects(own, "rule", _monitor({}, namespace="monitoring"), {})
    assert not doctor.selects(own, "rule", _monitor({}, namespace="streamflow"), {})


def test_fullname_follows_the_chart_helper():
    assert doctor.fullname("streamflow") == "streamflow"
    assert doctor.fullname("prod") == "prod-streamflow"


def test_annotation_prefix_is_the_drift_jobs():
    # tools.doctor is standard library only (runs without the venv), so it keeps its own copy
    assert doctor.ANNOTATION_PREFIX == drift.ANNOTATION_PREFIX


def test_table_shows_a_fix_only_for_what_is_not_ok():
    text = doctor.table([doctor.Check("crds", doctor.OK, "present", "never shown"),
                         doctor.Check("targets", doctor.FAIL, "api: down", "look at the NetworkPolicy")])  # fmt: skip
    assert "never shown" not in text
    assert "FAIL  targets  api: down" in text and "fix: look at the NetworkPolicy" in text
