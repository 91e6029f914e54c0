"""Dashboards, alert rules and the Pushgateway wiring of the chart, checked without a cluster:
Grafana's typed models, promtool's rule checks and unit tests, and the rendered objects.
(tests/integration/test_observability.py runs them on a real Prometheus.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard
from prometheus_client.utils import floatToGoString

from api.metrics import _BUCKET_LABELS, LATENCY_BUCKETS
from jobs.drift.push import PUSH_JOB
from streamflow.features import FEATURE_NAMES
from tests.support.chart import components_where, env_of
from tests.support.processes import REPO_ROOT
from tools import toolchain
from tools.api_process import free_port
from tools.monitoring import dashboards
from tools.monitoring.localstack import (
    relabel_configs,
    render_chart,
    rule_groups,
    scrape_configs,
    start_prometheus,
    start_pushgateway,
)

RELEASE = NAMESPACE = "streamflow"
ALERT_TESTS = REPO_ROOT / "tests" / "chart" / "alerts" / "streamflow-alerts.test.yaml"
RUNBOOKS = REPO_ROOT / "docs" / "runbooks.md"


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return render_chart(RELEASE, NAMESPACE)


def of_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def alerts_of(objects: list[dict]) -> dict[str, dict]:
    """Alert name -> its (last) rule; recording rules left out."""
    return {rule["alert"]: rule for rule in rules_of(objects) if "alert" in rule}


def rules_of(objects: list[dict]) -> list[dict]:
    return [rule for group in rule_groups(objects)["groups"] for rule in group["rules"]]


# --- dashboards ----------------------------------------------------------------------------------
def test_committed_dashboards_are_what_the_code_generates() -> None:
    assert dashboards.main(["--check"]) == 0
    assert set(dashboards.committed()) == set(dashboards.rendered()) == {"api.json", "drift.json"}


@pytest.mark.parametrize("name", ["api.json", "drift.json"])
def test_dashboard_is_a_valid_grafana_model(name: str) -> None:
    """Decoding into Grafana's typed model and encoding back loses nothing: every key is one
    Grafana knows, with the type it expects."""
    document = dashboards.committed()[name]
    typed = Dashboard.from_json(document)
    assert json.loads(json.dumps(typed, cls=JSONEncoder)) == document
    assert document["schemaVersion"] >= 39 and document["uid"].startswith("streamflow-")


def test_model_check_catches_a_misspelt_key() -> None:
    document = dashboards.committed()["api.json"]
    document["panels"][1]["gridPoss"] = document["panels"][1].pop("gridPos")
    assert json.loads(json.dumps(Dashboard.from_json(document), cls=JSONEncoder)) != document


@pytest.mark.parametrize("name", ["api.json", "drift.json"])
def test_dashboards_query_through_variables_not_someones_uids(name: str) -> None:
    document = dashboards.committed()[name]
    variables = {v["name"]: v for v in document["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["namespace"]["type"] == "query"
    panels = [p for p in document["panels"] if p["type"] != "row"]
    assert panels and all(p["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for p in panels)
    assert all(v.get("datasource", {}).get("uid", "${datasource}") == "${datasource}" for v in variables.values())
    for query in dashboards.panel_queries(document):
        assert 'namespace=~"$namespace"' in query.expr, (query.panel, query.expr)
    assert len({p["id"] for p in document["panels"]}) == len(document["panels"])


@pytest.mark.parametrize("name", ["api.json", "drift.json"])
def test_every_variable_offers_all_and_every_use_of_it_is_a_regex_match(name: str) -> None:
    document = dashboards.committed()[name]
    queried = [v for v in document["templating"]["list"] if v["type"] == "query"]
    assert queried
    for variable in queried:
        assert variable["includeAll"] is True and variable["allValue"] == ".*", variable["name"]
        assert variable["multi"] is True, variable["name"]
    texts = [q.expr for q in dashboards.panel_queries(document)] + [v["query"] for v in queried]
    for variable in queried:
        uses = [t for t in texts if f"${variable['name']}" in t]
        assert uses, variable["name"]
        # "All" is `.*` and several values are `(a|b)`: only =~ matches them
        assert not [t for t in uses if re.search(rf'[!=]="\${variable["name"]}"', t)], variable["name"]


def test_cluster_only_queries_are_exactly_the_kube_state_metrics_ones() -> None:
    """The panels no local stack can feed are listed by name (their data is checked on a cluster)."""
    on_ksm = {
        (q.dashboard, q.panel, q.ref_id)
        for document in dashboards.committed().values()
        for q in dashboards.panel_queries(document)
        if "kube_" in q.expr
    }
    assert on_ksm == dashboards.CLUSTER_ONLY_QUERIES


def test_no_drift_run_panel_maps_absence_to_the_hint_and_a_run_to_ok() -> None:
    panel = dashboards.panel(dashboards.committed()["drift.json"], "Drift runs")
    (target,) = panel["targets"]
    assert target["expr"].startswith("absent(streamflow_drift_last_success_timestamp_seconds")
    assert dashboards.mapped_text(panel, 1) == dashboards.NO_DRIFT_RUN_TEXT
    assert "make drift-now" in dashboards.NO_DRIFT_RUN_TEXT
    assert dashboards.mapped_text(panel, 0) == "ok"


def test_dashboards_cover_what_users_look_for() -> None:
    exprs = {
        name: " ".join(q.expr for q in dashboards.panel_queries(doc)) for name, doc in dashboards.committed().items()
    }
    api, drift = exprs["api.json"], exprs["drift.json"]
    for needle in (
        "rate(api_requests_total",
        'status=~"5.."',
        "histogram_quantile(0.99",
        "histogram_quantile(0.95",
        "histogram_quantile(0.5",
        "api_request_latency_seconds_sum",
        "api_request_latency_seconds_count",
        "api_requests_in_flight",
        "api_predictions_total",
        "api_feature_lookup_latency_seconds_bucket",
        "api_model_info",
        'api_prediction_cache_total{namespace=~"$namespace", job=~"$job", result="hit"}',
        "streamflow:slo_objective",
        "streamflow:slo_burn_rate{",
        "streamflow:slo_burn_rate_threshold",
        "and on (namespace, le) streamflow:slo_latency_threshold_seconds",
    ):
        assert needle in api, needle
    for needle in (
        "streamflow_drift_share",
        "streamflow_drift_threshold",
        "streamflow_drift_retraining_triggered",
        "streamflow_drift_feature_score",
        "streamflow_drift_target_score",
        "time() - max(streamflow_drift_last_success_timestamp_seconds",
        "streamflow_drift_feature_drifted",
        "push_time_seconds",
        "push_failure_time_seconds",
        "kube_cronjob_status_last_successful_time",
        "kube_cronjob_next_schedule_time",
        "kube_job_status_failed",
    ):
        assert needle in drift, needle
    heatmaps = [p for p in dashboards.committed()["api.json"]["panels"] if p["type"] == "heatmap"]
    assert [t["format"] for p in heatmaps for t in p["targets"]] == ["heatmap"]
    assert "api_request_latency_seconds_bucket" in heatmaps[0]["targets"][0]["expr"]


def test_substitution_is_grafanas_and_refuses_unknown_variables() -> None:
    expr = 'rate(x{namespace="$namespace", job="${job}", a="${job:regex}"}[$__rate_interval])'
    assert (
        dashboards.substitute(expr, {"namespace": "ns", "job": "j", "__rate_interval": "1m"})
        == 'rate(x{namespace="ns", job="j", a="j"}[1m])'
    )
    with pytest.raises(KeyError, match=r"\$job"):
        dashboards.substitute(expr, {"namespace": "ns", "__rate_interval": "1m"})


def test_dashboards_ship_as_configmaps_the_grafana_sidecar_loads(objects) -> None:
    maps = {name: cm for name, cm in of_kind(objects, "ConfigMap").items() if "dashboard" in name}
    assert set(maps) == {"streamflow-dashboard-api", "streamflow-dashboard-drift"}
    for cm in maps.values():
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"]["grafana_folder"] == "StreamFlow"
        ((key, text),) = cm["data"].items()
        assert json.loads(text) == dashboards.committed()[key]
    off = render_chart(RELEASE, NAMESPACE, {"dashboards": {"enabled": False}})
    assert not [n for n in of_kind(off, "ConfigMap") if "dashboard" in n]


# --- alert rules -------------------------------------------------------------------------------
EXPECTED_ALERTS = {
    "StreamFlowApiDown",
    "StreamFlowApiErrorRatioHigh",
    "StreamFlowApiLatencyP99High",
    "StreamFlowApiAvailabilityBudgetBurn",
    "StreamFlowApiLatencyBudgetBurn",
    "StreamFlowDriftDetected",
    "StreamFlowDriftJobFailed",
    "StreamFlowDriftJobStale",
    "StreamFlowPushgatewayDown",
    "StreamFlowModelAucLow",
    "StreamFlowModelCalibrationOff",
}


def test_every_alert_has_a_summary_a_description_and_a_runbook_section(objects) -> None:
    alerts = alerts_of(objects)
    assert set(alerts) == EXPECTED_ALERTS
    sections = {
        re.sub(r"[^a-z0-9-]", "", line[3:].strip().lower().replace(" ", "-"))
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }
    rule = of_kind(objects, "PrometheusRule")["streamflow"]
    assert rule["metadata"]["labels"]["release"] == "kps"
    for alert in (rule for rule in rules_of(objects) if "alert" in rule):  # every burn-rate pair too
        name = alert["alert"]
        notes = alert["annotations"]
        assert notes["summary"] and len(notes["description"]) > 40, name
        base, anchor = notes["runbook_url"].split("#")
        assert base.endswith("/docs/runbooks.md") and anchor == name.lower() and anchor in sections, name
        assert alert["labels"]["severity"] in {"critical", "warning"}


def test_promtool_checks_the_rendered_rules(objects, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule_groups(objects)))
    result = subprocess.run([str(toolchain.promtool()), "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0 and f"SUCCESS: {len(rules_of(objects))} rules found" in result.stdout, (
        result.stdout + result.stderr
    )


def promtool_unit_tests(groups: dict, workdir: Path) -> subprocess.CompletedProcess:
    """`promtool test rules` of tests/chart/alerts/ against `groups`, written where the tests expect them."""
    (workdir / "streamflow-rules.yaml").write_text(yaml.safe_dump(groups))
    shutil.copy(ALERT_TESTS, workdir)
    return subprocess.run(
        [str(toolchain.promtool()), "test", "rules", ALERT_TESTS.name], cwd=workdir, capture_output=True, text=True
    )


def test_promtool_unit_tests_fire_and_stay_silent_for_every_alert(objects, tmp_path: Path) -> None:
    cases = yaml.safe_load(ALERT_TESTS.read_text())
    tested = {t["alertname"] for case in cases["tests"] for t in case["alert_rule_test"]}
    firing = {t["alertname"] for case in cases["tests"] for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert tested == firing == EXPECTED_ALERTS
    result = promtool_unit_tests(rule_groups(objects), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_catch_a_broken_rule(objects, tmp_path: Path) -> None:
    groups = rule_groups(objects)
    for group in groups["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "StreamFlowApiErrorRatioHigh":
                rule["expr"] = rule["expr"].replace('status=~"5.."', 'status=~"4.."')
    result = promtool_unit_tests(groups, tmp_path)
    assert result.returncode != 0 and "StreamFlowApiErrorRatioHigh" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "alert, rule_key, old, new",
    [
        # a page needs the short window too: the alert stops once the burn stopped
        (
            "StreamFlowApiAvailabilityBudgetBurn",
            "StreamFlowApiAvailabilityBudgetBurn",
            "and on (namespace, slo)",
            "or on (namespace, slo)",
        ),
        # probes and scrapes are not the SLO's requests
        ("StreamFlowApiLatencyBudgetBurn", "latency", 'route=~"/predict"', 'route=~".+"'),
    ],
)
def test_promtool_unit_tests_catch_a_broken_burn_rate_rule(objects, tmp_path: Path, alert, rule_key, old, new) -> None:
    groups = rule_groups(objects)
    changed = 0
    for group in groups["groups"]:
        for rule in group["rules"]:
            if rule_key in (rule.get("alert"), rule.get("labels", {}).get("slo")) and old in rule["expr"]:
                changed += 1
                rule["expr"] = rule["expr"].replace(old, new)
    assert changed
    result = promtool_unit_tests(groups, tmp_path)
    assert result.returncode != 0 and alert in result.stdout + result.stderr


def test_slo_rules_record_what_the_dashboard_reads_and_alert_on_every_window_pair(objects) -> None:
    slo = yaml.safe_load((REPO_ROOT / "charts/streamflow/values.yaml").read_text())["prometheusRule"]["slo"]
    rules = rules_of(objects)
    recorded = {rule["record"] for rule in rules if "record" in rule}
    assert recorded == {
        "streamflow:slo_objective",
        "streamflow:slo_latency_threshold_seconds",
        "streamflow:slo_burn_rate_threshold",
        "streamflow:slo_error_ratio",
        "streamflow:slo_burn_rate",
    }
    # the dashboard queries only series the rules record
    api = " ".join(q.expr for q in dashboards.panel_queries(dashboards.committed()["api.json"]))
    assert set(re.findall(r"streamflow:\w+", api)) <= recorded
    windows = {w for pair in slo["burnRateAlerts"] for w in (pair["longWindow"], pair["shortWindow"])}
    ratios = [r for r in rules if r.get("record") == "streamflow:slo_error_ratio"]
    assert {(r["labels"]["slo"], r["labels"]["window"]) for r in ratios} == {
        (name, w) for name in ("availability", "latency") for w in windows
    }
    for name in ("StreamFlowApiAvailabilityBudgetBurn", "StreamFlowApiLatencyBudgetBurn"):
        pairs = [
            (r["labels"]["long_window"], r["labels"]["short_window"], r["labels"]["severity"], r["for"])
            for r in rules
            if r.get("alert") == name
        ]
        assert pairs == [(p["longWindow"], p["shortWindow"], p["severity"], p["for"]) for p in slo["burnRateAlerts"]]


def test_slo_latency_bound_is_a_bucket_of_the_api_histogram() -> None:
    """The schema accepts exactly the histogram's bucket boundaries, and the rules select the
    bucket with the `le` text prometheus_client writes (1.0 is "1.0", not Helm's "1")."""
    schema = json.loads((REPO_ROOT / "charts/streamflow/values.schema.json").read_text())
    bound = schema["properties"]["prometheusRule"]["properties"]["slo"]["properties"]["latency"]["properties"]
    assert bound["thresholdSeconds"]["enum"] == list(LATENCY_BUCKETS)
    for seconds in (1.0, 0.0005):
        tuned = render_chart(
            RELEASE, NAMESPACE, {"prometheusRule": {"slo": {"latency": {"thresholdSeconds": seconds}}}}
        )
        (threshold,) = [r for r in rules_of(tuned) if r.get("record") == "streamflow:slo_latency_threshold_seconds"]
        assert threshold["labels"]["le"] == floatToGoString(seconds) and threshold["labels"]["le"] in _BUCKET_LABELS
        latency = [r for r in rules_of(tuned) if r.get("record") == "streamflow:slo_error_ratio"]
        assert all(f'le="{floatToGoString(seconds)}"' in r["expr"] for r in latency if r["labels"]["slo"] == "latency")
    with pytest.raises(toolchain.ToolUnavailable, match="thresholdSeconds"):
        render_chart(RELEASE, NAMESPACE, {"prometheusRule": {"slo": {"latency": {"thresholdSeconds": 0.2}}}})


def test_thresholds_and_durations_are_values() -> None:
    tuned = render_chart(
        RELEASE,
        NAMESPACE,
        {
            "prometheusRule": {
                "apiErrorRatio": {"threshold": 0.2, "window": "10m", "for": "1m", "severity": "critical"},
                "apiLatencyP99": {"thresholdSeconds": 1.5, "window": "2m", "for": "3m", "severity": "warning"},
                "driftJobStale": {"maxAgeSeconds": 700000, "for": "0m", "severity": "warning"},
                "modelAucLow": {"threshold": 0.6, "for": "1h", "severity": "critical"},
                "modelCalibration": {"maxGap": 0.25, "for": "0m", "severity": "warning"},
                "runbookBaseUrl": "https://git.example.com/ml/streamflow/-/blob/main/docs/runbooks.md",
                "slo": {
                    "availability": {"objective": 0.999},
                    "latency": {"objective": 0.95, "thresholdSeconds": 0.25},
                    "burnRateAlerts": [
                        {"longWindow": "2h", "shortWindow": "10m", "factor": 10, "for": "5m", "severity": "warning"}
                    ],
                },
            }
        },
    )
    alerts = alerts_of(tuned)
    ratio = alerts["StreamFlowApiErrorRatioHigh"]
    assert ratio["expr"].rstrip().endswith("> 0.2") and "[10m]" in ratio["expr"] and ratio["for"] == "1m"
    assert ratio["labels"]["severity"] == "critical"
    assert (
        "> 1.5" in alerts["StreamFlowApiLatencyP99High"]["expr"]
        and "[2m]" in alerts["StreamFlowApiLatencyP99High"]["expr"]
    )
    assert alerts["StreamFlowDriftJobStale"]["expr"].count("> 700000") == 2
    auc = alerts["StreamFlowModelAucLow"]
    assert auc["expr"].endswith("< 0.6") and auc["for"] == "1h" and auc["labels"]["severity"] == "critical"
    assert alerts["StreamFlowModelCalibrationOff"]["expr"].endswith("> 0.25")
    assert ratio["annotations"]["runbook_url"].startswith("https://git.example.com/ml/streamflow/")
    objectives = {
        r["labels"]["slo"]: r["expr"] for r in rules_of(tuned) if r.get("record") == "streamflow:slo_objective"
    }
    assert objectives == {"availability": "vector(0.999)", "latency": "vector(0.95)"}
    burn = alerts["StreamFlowApiLatencyBudgetBurn"]
    assert burn["expr"].count("> 10") == 2 and 'window="2h"' in burn["expr"] and 'window="10m"' in burn["expr"]
    assert burn["for"] == "5m" and burn["labels"] == {"severity": "warning", "long_window": "2h", "short_window": "10m"}
    assert not [
        r
        for r in rules_of(render_chart(RELEASE, NAMESPACE, {"prometheusRule": {"slo": {"enabled": False}}}))
        if "slo" in r.get("record", r.get("alert", "")).lower()
    ]


def test_drift_alerts_follow_what_is_deployed() -> None:
    assert {"StreamFlowDriftDetected", "StreamFlowPushgatewayDown"}.isdisjoint(
        alerts_of(render_chart(RELEASE, NAMESPACE, {"pushgateway": {"enabled": False}}))
    )
    assert {"StreamFlowDriftJobFailed", "StreamFlowDriftJobStale"}.isdisjoint(
        alerts_of(render_chart(RELEASE, NAMESPACE, {"drift": {"enabled": False}, "retrain": {"enabled": False}}))
    )
    model_alerts = {"StreamFlowModelAucLow", "StreamFlowModelCalibrationOff"}
    assert model_alerts.isdisjoint(alerts_of(render_chart(RELEASE, NAMESPACE, {"performance": {"enabled": False}})))
    assert model_alerts.isdisjoint(alerts_of(render_chart(RELEASE, NAMESPACE, {"pushgateway": {"enabled": False}})))


# --- the Pushgateway in the chart ----------------------------------------------------------------
def test_drift_job_pushes_to_the_charts_pushgateway_which_prometheus_scrapes_with_honor_labels(objects) -> None:
    cronjob = of_kind(objects, "CronJob")["streamflow-drift"]
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    url = {e["name"]: e.get("value") for e in container["env"]}["STREAMFLOW_PUSHGATEWAY_URL"]
    service = of_kind(objects, "Service")["streamflow-pushgateway"]
    assert url == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    monitor = of_kind(objects, "ServiceMonitor")["streamflow-pushgateway"]
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
    assert monitor["metadata"]["labels"]["release"] == "kps"
    # the local scrape configuration carries the same decision
    configs = {
        c["job_name"]: c for c in scrape_configs(objects, {"api": ["127.0.0.1:1"], "pushgateway": ["127.0.0.1:2"]})
    }
    assert configs["serviceMonitor/streamflow/streamflow-pushgateway/0"]["honor_labels"] is True
    assert configs["serviceMonitor/streamflow/streamflow-api/0"]["honor_labels"] is False
    labels = configs["serviceMonitor/streamflow/streamflow-api/0"]["static_configs"][0]["labels"]
    # the target labels the operator attaches (the __meta_ ones are for relabeling only)
    assert {k: v for k, v in labels.items() if not k.startswith("__")} == {
        "job": "streamflow-api",
        "namespace": "streamflow",
        "service": "streamflow-api",
        "endpoint": "http",
        "pod": "streamflow-api-local-0",
        "container": "api",
    }


def test_only_the_pushing_jobs_and_prometheus_reach_the_pushgateway(objects) -> None:
    policy = of_kind(objects, "NetworkPolicy")["streamflow-pushgateway"]
    peers = policy["spec"]["ingress"][0]["from"]
    assert peers[0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    jobs = peers[1]["podSelector"]
    assert jobs["matchLabels"] == {"app.kubernetes.io/name": "streamflow", "app.kubernetes.io/instance": RELEASE}
    # exactly the workloads told where the Pushgateway is
    pushers = components_where(
        objects, lambda spec: any("STREAMFLOW_PUSHGATEWAY_URL" in env_of(c) for c in spec["containers"])
    )
    assert set(jobs["matchExpressions"][0]["values"]) == pushers == {"drift", "retrain", "performance"}
    assert len(peers) == 2


def test_pushgateway_off_means_no_push_url() -> None:
    objects = render_chart(RELEASE, NAMESPACE, {"pushgateway": {"enabled": False}})
    cronjob = of_kind(objects, "CronJob")["streamflow-drift"]
    env = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "STREAMFLOW_PUSHGATEWAY_URL" not in {e["name"] for e in env}
    assert "streamflow-pushgateway" not in of_kind(objects, "Deployment")


def test_push_registry_holds_the_fourteen_features_and_the_decision() -> None:
    from datetime import date

    from prometheus_client import generate_latest

    from jobs.drift.decision import Decision
    from jobs.drift.push import build_registry
    from jobs.drift.report import ColumnDrift, DriftResult
    from streamflow.drift import Action

    features = tuple(
        ColumnDrift(name, "wasserstein", 0.1, 0.05 * i, 0.05 * i >= 0.1) for i, name in enumerate(FEATURE_NAMES)
    )
    result = DriftResult(
        drift_share=12 / 14,
        drifted_count=12,
        features=features,
        target=ColumnDrift("churn_label", "jensenshannon", 0.1, 0.2, True),
    )
    decision = Decision(
        Action.RETRAIN,
        12 / 14,
        0.3,
        0.2,
        True,
        tuple(f.column for f in features if f.drifted),
        date(2024, 2, 29),
        date(2024, 3, 31),
        "r.html",
        "r.json",
        "now",
        "0.1.0",
    )
    text = generate_latest(
        build_registry(decision, result, {"reference": 10, "current": 11}, 3.5, 1700000000.0)
    ).decode()
    scores = re.findall(r'^streamflow_drift_feature_score\{feature="(\w+)"\} (\S+)$', text, re.M)
    assert [name for name, _ in scores] == list(FEATURE_NAMES)
    assert float(dict(scores)["months_active"]) == 0.0 and float(dict(scores)["monthly_fee"]) == pytest.approx(0.05)
    assert "streamflow_drift_retraining_triggered 1.0" in text and "streamflow_drift_drifted_features 12.0" in text
    assert 'streamflow_drift_rows{dataset="current"} 11.0' in text
    assert "streamflow_drift_last_success_timestamp_seconds 1.7e+09" in text
    assert f'decision="{Action.RETRAIN}"' in text and PUSH_JOB == "streamflow-drift"


# --- ServiceMonitor relabelings on the local Prometheus (make observe) ----------------------------
LOCAL = {"api": ["127.0.0.1:1"], "pushgateway": ["127.0.0.1:2"]}


def test_relabelings_translate_to_prometheus_relabel_configs() -> None:
    relabelings: list[dict[str, Any]] = [
        {"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"], "targetLabel": "component"},
        {"sourceLabels": ["a", "b"], "separator": ";", "regex": "(.+);(.+)", "replacement": "$1", "action": "Replace"},
        {"sourceLabels": ["pod"], "modulus": 4, "targetLabel": "shard", "action": "HashMod"},
    ]
    assert relabel_configs(relabelings, "job", targets=True) == [
        {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"], "target_label": "component"},
        {"source_labels": ["a", "b"], "separator": ";", "regex": "(.+);(.+)", "replacement": "$1", "action": "replace"},
        {"source_labels": ["pod"], "modulus": 4, "target_label": "shard", "action": "hashmod"},
    ]


@pytest.mark.parametrize(
    "endpoint_values, error",
    [
        # in a cluster this label has a value; here no target has it: refused, not silently empty
        ({"relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}]}, "node_name"),
        ({"relabelings": [{"sourceLabels": ["a"], "targetLabel": "b", "unknownField": 1}]}, "unknownField"),
    ],
)
def test_what_the_local_translation_cannot_honour_is_an_error(endpoint_values: dict, error: str) -> None:
    objects = render_chart(RELEASE, NAMESPACE)
    for monitor in of_kind(objects, "ServiceMonitor").values():
        monitor["spec"]["endpoints"][0].update(endpoint_values)
    with pytest.raises(ValueError, match=error):
        scrape_configs(objects, LOCAL)


def test_the_local_prometheus_applies_the_servicemonitors_relabelings(tmp_path: Path) -> None:
    """Chart values -> ServiceMonitor -> the local Prometheus of `make observe`, scraping a real
    Pushgateway: a pod label becomes a target label on the pod that has it (the API's) and on no
    other, and a dropped series is never stored while its neighbours are."""
    objects = render_chart(
        RELEASE,
        NAMESPACE,
        {
            "api": {"podLabels": {"example.com/team": "ml"}},
            "serviceMonitor": {
                "interval": "1s",
                "scrapeTimeout": "1s",
                "relabelings": [
                    {"sourceLabels": ["__meta_kubernetes_pod_label_example_com_team"], "targetLabel": "team"},
                ],
                "metricRelabelings": [{"sourceLabels": ["__name__"], "regex": "go_goroutines", "action": "Drop"}],
            },
        },
    )
    pushgateway = start_pushgateway(tmp_path, free_port())
    address = pushgateway.url.removeprefix("http://")
    try:
        # both ServiceMonitors' jobs scrape the one Pushgateway: it serves go_* and pushgateway_* series
        prometheus = start_prometheus(tmp_path, free_port(), objects, {"api": [address], "pushgateway": [address]})
        try:
            series = prometheus.wait_for(
                "both jobs scraped",
                lambda: len(found := prometheus.query("go_threads")) == 2 and found,
                timeout=60,
            )
            teams = {s["metric"]["job"]: s["metric"].get("team") for s in series}
            assert teams == {"streamflow-api": "ml", "streamflow-pushgateway": None}
            assert not any(k.startswith("__meta") for s in series for k in s["metric"])
            assert prometheus.query("go_goroutines") == []
            assert len(prometheus.query('{__name__=~"go_.+"}')) > 2, "only go_goroutines is dropped"
        finally:
            prometheus.stop()
    finally:
        pushgateway.stop()
