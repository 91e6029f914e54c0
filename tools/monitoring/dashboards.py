"""StreamFlow's Grafana dashboards, generated as code with Grafana's own typed builders.

    python -m tools.monitoring.dashboards           # (re)write charts/streamflow/dashboards/*.json
    python -m tools.monitoring.dashboards --check   # exit 1 if a committed file differs

The chart ships each JSON file as a ConfigMap for the Grafana sidecar. Panels query through a
`datasource` variable (no data source UID from anyone's Grafana) and select one `namespace`
(and for the API, one scrape `job`), each with "All", so several releases share a Grafana. Values
the dashboards must agree with come from their source: the per-feature drift distance threshold
from the drift job, the routes left out of user-facing ratios, the SLO routes and the drift run's
allowed age from the chart's default values (`make dashboards` after changing those defaults).
The SLO objectives, the latency bound and the burn-rate thresholds are read live from the series
the chart's PrometheusRule records (`streamflow:slo_*`), so an override at install time shows too.

`panel_queries()` and `substitute()` read the queries back out of the JSON as Grafana would
run them: `make observe` prints their values and the tests run each one on a real Prometheus.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import heatmap as model_heatmap
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from jobs.drift.push import PUSH_JOB as DRIFT_PUSH_GROUP
from streamflow.drift import DISTANCE_THRESHOLD, Action

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "streamflow"
DASHBOARD_DIR = CHART_DIR / "dashboards"

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"


NO_DRIFT_RUN_TEXT = "no drift run yet — run `make drift-now`"

# Panels on kube-state-metrics series (kube-prometheus-stack runs it in the cluster). No local stack
# has them: the tests run these queries on a real Prometheus (they must parse and evaluate) but
# their data is checked on a cluster only. (dashboard, panel, refId); a test keeps it complete.
CLUSTER_ONLY_QUERIES = frozenset(
    {
        ("StreamFlow / Drift", "Since last successful drift Job (CronJob)", "A"),
        ("StreamFlow / Drift", "Next scheduled drift run (CronJob)", "A"),
        ("StreamFlow / Drift", "Failed drift Jobs (kube-state-metrics)", "A"),
        ("StreamFlow / Drift", "Failed drift Jobs (kube-state-metrics)", "B"),
    }
)


def _rule_values() -> dict[str, Any]:
    """The chart's default `prometheusRule` values."""
    return yaml.safe_load((CHART_DIR / "values.yaml").read_text())["prometheusRule"]


def _excluded_routes() -> str:
    """The routes the chart's alerts leave out of user traffic (probes, scrapes), as a regex."""
    return "|".join(_rule_values()["excludedRoutes"])


def _slo_routes() -> str:
    """The routes the chart's SLOs measure, as a regex."""
    return "|".join(_rule_values()["slo"]["routes"])


def _drift_max_age_seconds() -> int:
    """Age of the last successful drift run past which StreamFlowDriftJobStale fires: a run is late."""
    return int(_rule_values()["driftJobStale"]["maxAgeSeconds"])


# --- building blocks -----------------------------------------------------------------------
def _query(
    expr: str,
    legend: str = "",
    ref_id: str = "A",
    *,
    instant: bool = False,
    table_format: bool = False,
    query_format: PromQueryFormat | None = None,
) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref_id)
    if legend:
        query = query.legend_format(legend)
    if instant:
        query = query.instant()
    if table_format:
        query = query.format(PromQueryFormat.TABLE)
    if query_format:
        query = query.format(query_format)
    return query


def _targets(panel, *queries: prometheus.Dataquery):
    for query in queries:
        panel = panel.with_target(query)
    return panel.datasource(DATASOURCE)


def _timeseries(title: str, description: str, unit: str, *queries: prometheus.Dataquery, width: int = 12):
    panel = timeseries.Panel().title(title).description(description).unit(unit).height(8).span(width)
    return _targets(panel, *queries)


def _stat(title: str, description: str, unit: str, *queries: prometheus.Dataquery, width: int = 6):
    panel = stat.Panel().title(title).description(description).unit(unit).height(4).span(width)
    return _targets(panel, *queries)


def _text_mappings(*texts: tuple[int, str, str]) -> list[model.ValueMapping]:
    """Value -> (text, colour) mappings, as Grafana's value maps."""
    return [
        model.ValueMap(
            options={
                str(value): model.ValueMappingResult(text=text, color=color, index=index)
                for index, (value, text, color) in enumerate(texts)
            }
        )
    ]


def _merged_table(title: str, description: str, columns: dict[str, str], *queries: prometheus.Dataquery):
    """A table of instant queries joined on their labels (Grafana's merge transformation), the
    value columns renamed: `columns` maps "Value #<refId>" to a name; Time is hidden."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize", options={"excludeByName": {"Time": True}, "renameByName": columns}
            )
        )
    )
    return _targets(panel, *queries)


def _decision_mappings() -> list[model.ValueMapping]:
    return [
        model.ValueMap(
            options={
                "0": model.ValueMappingResult(text=Action.NO_ACTION, color="green", index=0),
                "1": model.ValueMappingResult(text=Action.RETRAIN, color="red", index=1),
            }
        )
    ]


def _thresholds(*steps: tuple[float | None, str]) -> builder.ThresholdsConfig:
    return (
        builder.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def _datasource_variable() -> builder.DatasourceVariable:
    return builder.DatasourceVariable("datasource").label("Data source").type("prometheus")


ALL_VALUE = ".*"  # "All" of a variable: the panels match variables with =~


def _query_variable(name: str, label: str, query: str) -> builder.QueryVariable:
    return (
        builder.QueryVariable(name)
        .label(label)
        .query(query)
        .datasource(DATASOURCE)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ALL_VALUE)
    )


def _dashboard(uid: str, title: str, description: str) -> builder.Dashboard:
    return (
        builder.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["streamflow"])
        .editable()
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )


# --- the dashboards --------------------------------------------------------------------------
def api_dashboard() -> model.Dashboard:
    ns = 'namespace=~"$namespace"'
    api = f'{ns}, job=~"$job"'
    user = f'{api}, route!~"{_excluded_routes()}"'
    slo_routes = f'{api}, route=~"{_slo_routes()}"'
    requests = f"sum(rate(api_requests_total{{{user}}}[{RATE}]))"
    errors = f'(sum(rate(api_requests_total{{{user}, status=~"5.."}}[{RATE}])) or vector(0))'
    error_ratio = f"{errors} / {requests}"

    def quantile(q: float, metric: str, selector: str, ref_id: str) -> prometheus.Dataquery:
        expr = f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{selector}}}[{RATE}])))"
        return _query(expr, f"p{round(q * 100)}", ref_id)

    def availability(window: str) -> str:
        good = f'sum(rate(api_requests_total{{{slo_routes}, status!~"5.."}}[{window}]))'
        return f"{good} / sum(rate(api_requests_total{{{slo_routes}}}[{window}]))"

    def latency_sli(window: str) -> str:
        # the bucket whose `le` is the recorded bound: the threshold is the chart's value, read live
        good = (
            f"sum(rate(api_request_latency_seconds_bucket{{{slo_routes}}}[{window}])"
            f" and on (namespace, le) streamflow:slo_latency_threshold_seconds{{{ns}}})"
        )
        return f"{good} / sum(rate(api_request_latency_seconds_count{{{slo_routes}}}[{window}]))"

    def sli_vs_objective(slo: str, good: str, sli: str, legend: str):
        return _timeseries(
            f"{slo.capitalize()} SLI vs objective",
            f"Share of {_slo_routes()} requests {good}, and the objective.",
            "percentunit",
            _query(sli, legend, "A"),
            _query(f'max(streamflow:slo_objective{{{ns}, slo="{slo}"}})', "objective", "B"),
        )

    def burn_rate_panel(slo: str):
        return _timeseries(
            f"{slo.capitalize()} error budget burn rate",
            f"How many times faster than sustainable (spent exactly over 30 days) the {slo} error budget "
            "burns, over each window the alerts use; a burn-rate alert fires when both its long and short "
            "window are above its threshold (dashed).",
            "none",
            _query(f'max by (window) (streamflow:slo_burn_rate{{{ns}, slo="{slo}"}})', "{{window}}", "A"),
            _query(
                f"max by (long_window, short_window, severity) (streamflow:slo_burn_rate_threshold{{{ns}}})",
                "{{severity}}: {{long_window}} and {{short_window}} above this",
                "B",
            ),
        ).override_by_query(
            "B",
            [model.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]})],
        )

    dash = (
        _dashboard(
            "streamflow-api",
            "StreamFlow / API",
            "The churn-prediction API: traffic, errors, latency, predictions, feature store, model.",
        )
        .with_variable(_datasource_variable())
        .with_variable(_query_variable("namespace", "Namespace", "label_values(api_requests_total, namespace)"))
        .with_variable(_query_variable("job", "Job", 'label_values(api_requests_total{namespace=~"$namespace"}, job)'))
        .with_row(builder.Row("Now"))
        .with_panel(
            _stat(
                "Requests per second", "User-facing requests (probes and scrapes excluded).", "reqps", _query(requests)
            )
        )
        .with_panel(
            _stat(
                "5xx error ratio", "Share of user-facing requests answered 5xx.", "percentunit", _query(error_ratio)
            ).thresholds(_thresholds((None, "green"), (0.05, "red")))
        )
        .with_panel(
            _stat(
                "Ready pods",
                "Pods whose model is verified and whose online store answers (api_ready).",
                "none",
                _query(f"sum(api_ready{{{api}}})"),
            )
        )
        .with_panel(
            _stat(
                "Model version",
                "The model each pod serves and its runtime (api_model_info): "
                "sklearn instead of treelite means the compiled trees were refused (API log).",
                "none",
                _query(
                    f"max by (version, runtime) (api_model_info{{{api}}})", "{{version}} ({{runtime}})", instant=True
                ),
            ).text_mode(common.BigValueTextMode.NAME)
        )
        .with_row(builder.Row("Traffic"))
        .with_panel(
            _timeseries(
                "Requests per second by route and status",
                "rate(api_requests_total), every route.",
                "reqps",
                _query(f"sum by (route, status) (rate(api_requests_total{{{api}}}[{RATE}]))", "{{route}} {{status}}"),
            )
        )
        .with_panel(
            _timeseries(
                "Error ratio (5xx)",
                "5xx / all user-facing requests; the alert fires above 5 %.",
                "percentunit",
                _query(error_ratio, "5xx ratio"),
            )
        )
        .with_panel(
            _timeseries(
                "Requests in flight",
                "Requests being handled right now, all pods.",
                "none",
                _query(f"sum(api_requests_in_flight{{{api}}})", "in flight"),
            )
        )
        .with_panel(
            _timeseries(
                "Predictions by outcome",
                "Predictions per second, churn vs stay.",
                "reqps",
                _query(f"sum by (outcome) (rate(api_predictions_total{{{api}}}[{RATE}]))", "{{outcome}}"),
            )
        )
        .with_panel(
            _timeseries(
                "Prediction cache hit ratio",
                "Share of predictions each worker answered from its cache (api_prediction_cache_total).",
                "percentunit",
                _query(
                    f'sum(rate(api_prediction_cache_total{{{api}, result="hit"}}[{RATE}]))'
                    f" / sum(rate(api_prediction_cache_total{{{api}}}[{RATE}]))",
                    "hit ratio",
                ),
            )
        )
        .with_panel(
            _timeseries(
                "Prediction cache hits and misses",
                "Cache lookups per second by result; a miss reads the online store.",
                "reqps",
                _query(f"sum by (result) (rate(api_prediction_cache_total{{{api}}}[{RATE}]))", "{{result}}"),
            )
        )
        .with_row(builder.Row("Latency"))
        .with_panel(
            _timeseries(
                "Latency p50 / p95 / p99",
                "From api_request_latency_seconds_bucket, user-facing routes.",
                "s",
                *(
                    quantile(q, "api_request_latency_seconds", user, ref)
                    for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
                ),
            )
        )
        .with_panel(
            _timeseries(
                "Mean latency",
                "The seed's formula: latency _sum / _count, user-facing routes.",
                "s",
                _query(
                    f"sum(rate(api_request_latency_seconds_sum{{{user}}}[{RATE}]))"
                    f" / sum(rate(api_request_latency_seconds_count{{{user}}}[{RATE}]))",
                    "mean",
                ),
            )
        )
        .with_panel(
            _timeseries(
                "Feature lookup latency",
                "Feast online store lookup per prediction.",
                "s",
                quantile(0.5, "api_feature_lookup_latency_seconds", api, "A"),
                quantile(0.99, "api_feature_lookup_latency_seconds", api, "B"),
            )
        )
        .with_panel(
            _timeseries(
                "Feature lookup errors",
                "Lookups that failed: the online store is unreachable.",
                "reqps",
                _query(f"sum(rate(api_feature_lookup_errors_total{{{api}}}[{RATE}]))", "errors"),
            )
        )
        .with_panel(
            _targets(
                heatmap.Panel()
                .title("Latency heatmap")
                .description("Requests per second in each api_request_latency_seconds bucket, user-facing routes.")
                .height(8)
                .span(24)
                .calculate(False)
                .y_axis(heatmap.YAxisConfig().unit("s"))
                .color(heatmap.HeatmapColorOptions().mode(model_heatmap.HeatmapColorMode.SCHEME).scheme("Oranges"))
                .cell_values(heatmap.CellValues().unit("reqps")),
                _query(
                    f"sum by (le) (rate(api_request_latency_seconds_bucket{{{user}}}[{RATE}]))",
                    "{{le}}",
                    query_format=PromQueryFormat.HEATMAP,
                ),
            )
        )
        .with_row(builder.Row("Service level objectives"))
        .with_panel(
            _stat(
                "SLO objectives",
                "The objectives the burn-rate alerts use (chart values prometheusRule.slo.*, recorded as "
                "streamflow:slo_objective by the PrometheusRule).",
                "percentunit",
                _query(f"max by (slo) (streamflow:slo_objective{{{ns}}})", "{{slo}}"),
                width=8,
            ).decimals(2)
        )
        .with_panel(
            _stat(
                "Latency SLO bound",
                "A request within this bound is good for the latency SLO "
                "(prometheusRule.slo.latency.thresholdSeconds).",
                "s",
                _query(f"max(streamflow:slo_latency_threshold_seconds{{{ns}}})"),
                width=4,
            )
        )
        .with_panel(
            _stat(
                "SLIs over the time range",
                f"Share of {_slo_routes()} requests not answered 5xx (availability) and answered within the "
                "bound (latency), over the dashboard's time range.",
                "percentunit",
                _query(availability("$__range"), "availability", "A"),
                _query(latency_sli("$__range"), "latency", "B"),
                width=12,
            ).decimals(3)
        )
        .with_panel(sli_vs_objective("availability", "not answered 5xx", availability(RATE), "availability"))
        .with_panel(
            sli_vs_objective("latency", "answered within the latency bound", latency_sli(RATE), "within the bound")
        )
        .with_panel(burn_rate_panel("availability"))
        .with_panel(burn_rate_panel("latency"))
    )
    return dash.build()


def drift_dashboard() -> model.Dashboard:
    ns = 'namespace=~"$namespace"'
    decision = f"max(streamflow_drift_retraining_triggered{{{ns}}})"
    feature_score = f"max by (feature) (streamflow_drift_feature_score{{{ns}}})"
    drifted_color = _thresholds((None, "green"), (DISTANCE_THRESHOLD, "red"))
    max_age = _drift_max_age_seconds()
    late_color = _thresholds((None, "green"), (max_age, "red"))
    pushed = f'{ns}, job="{DRIFT_PUSH_GROUP}"'  # the drift job's Pushgateway group
    # kube-state-metrics: the chart's drift CronJob is <fullname>-drift, its Jobs <fullname>-drift-<n>
    # (make drift-now: <fullname>-drift-now-<time>)
    cronjob = f'{ns}, cronjob=~".+-drift"'
    jobs = f'{ns}, job_name=~".+-drift-.+"'

    def per_run(metric: str) -> str:
        """Per feature and run (its compared snapshots) over the time range: every run Prometheus
        saw, each series joined with the run_info pushed beside it."""
        joined = (
            f"{metric}{{{ns}}} * on (namespace, job) group_left (reference, current) streamflow_drift_run_info{{{ns}}}"
        )
        return f"max by (namespace, reference, current, feature) (max_over_time(({joined})[$__range:]))"

    dash = (
        _dashboard(
            "streamflow-drift",
            "StreamFlow / Drift",
            "The drift job's outcome as pushed to the Pushgateway: the decision, drift_share against "
            "its threshold, per-feature distances, target drift and run freshness; then the served "
            "model's performance on labelled months and the guarded retrain's last attempt.",
        )
        .with_variable(_datasource_variable())
        # every namespace with a StreamFlow Pushgateway, a drift run or not (the drift job pushes to its own)
        .with_variable(_query_variable("namespace", "Namespace", "label_values(pushgateway_build_info, namespace)"))
        .with_row(builder.Row("Runs: recorded, late, failed"))
        .with_panel(
            _stat(
                "Drift runs",
                "Whether the Pushgateway holds a successful drift run: none until the CronJob's first "
                "run (daily), or after the Pushgateway lost its store; `make drift-now` runs one now.",
                "none",
                _query(f"absent(streamflow_drift_last_success_timestamp_seconds{{{ns}}}) or vector(0)"),
            ).mappings(_text_mappings((1, NO_DRIFT_RUN_TEXT, "orange"), (0, "ok", "green")))
        )
        .with_panel(
            _stat(
                "Since last drift push (Pushgateway)",
                f"Time since the drift job last pushed its outcome (push_time_seconds of group "
                f"{DRIFT_PUSH_GROUP}); red past {max_age} s (prometheusRule.driftJobStale.maxAgeSeconds): late.",
                "s",
                _query(f"time() - max(push_time_seconds{{{pushed}}})"),
            ).thresholds(late_color)
        )
        .with_panel(
            _stat(
                "Last drift push rejected (Pushgateway)",
                "Whether the Pushgateway refused the drift job's newest push (push_failure_time_seconds after "
                "push_time_seconds); a push that never arrived shows as a late run instead.",
                "none",
                _query(
                    f"max(push_failure_time_seconds{{{pushed}}}) > bool max(push_time_seconds{{{pushed}}})",
                ),
            ).mappings(_text_mappings((0, "no", "green"), (1, "rejected", "red")))
        )
        .with_panel(
            _stat(
                "Since last successful drift Job (CronJob)",
                "kube-state-metrics: time since the drift CronJob's last successful Job "
                f"(kube_cronjob_status_last_successful_time); red past {max_age} s: late.",
                "s",
                _query(f"time() - max(kube_cronjob_status_last_successful_time{{{cronjob}}})"),
            ).thresholds(late_color)
        )
        .with_panel(
            _stat(
                "Next scheduled drift run (CronJob)",
                "kube-state-metrics: time until the CronJob's next scheduled run "
                "(kube_cronjob_next_schedule_time); negative (red) means a run is overdue.",
                "s",
                _query(f"max(kube_cronjob_next_schedule_time{{{cronjob}}}) - time()"),
            ).thresholds(_thresholds((None, "red"), (0, "green")))
        )
        .with_panel(
            _merged_table(
                "Failed drift Jobs (kube-state-metrics)",
                "Drift Jobs still in the CronJob's history that failed (condition Failed; start time), and "
                "every Job whose pods failed (retried attempts, kube_job_status_failed).",
                {"Value #A": "failed run started", "Value #B": "failed pods"},
                _query(
                    f"max by (namespace, job_name) (kube_job_status_start_time{{{jobs}}}"
                    f' * on (namespace, job_name) (kube_job_failed{{{jobs}, condition="true"}} == 1))',
                    ref_id="A",
                    instant=True,
                    table_format=True,
                ),
                _query(
                    f"max by (namespace, job_name) (kube_job_status_failed{{{jobs}}}) > 0",
                    ref_id="B",
                    instant=True,
                    table_format=True,
                ),
            )
            .height(4)
            .span(12)
            .override_by_name("failed run started", [model.DynamicConfigValue(id_val="unit", value="dateTimeAsIso")])
        )
        .with_row(builder.Row("Last run"))
        .with_panel(
            _stat(
                "Decision", "RETRAINING_TRIGGERED when drift_share reaches the threshold.", "none", _query(decision)
            ).mappings(_decision_mappings())
        )
        .with_panel(
            _stat(
                "Drift share",
                "Drifted features / 14 (target excluded).",
                "percentunit",
                _query(f"max(streamflow_drift_share{{{ns}}})"),
            )
        )
        .with_panel(
            _stat(
                "Target drift (churn_label)",
                f"Jensen-Shannon distance of the label; drifted at {DISTANCE_THRESHOLD}.",
                "none",
                _query(f"max(streamflow_drift_target_score{{{ns}}})"),
            ).thresholds(drifted_color)
        )
        .with_panel(
            _stat(
                "Since last successful run",
                "Time since the last run that recorded a decision.",
                "s",
                _query(f"time() - max(streamflow_drift_last_success_timestamp_seconds{{{ns}}})"),
            )
        )
        .with_row(builder.Row("History"))
        .with_panel(
            _timeseries(
                "Drift share vs threshold",
                "drift_share of each run and the threshold it is judged against (both pushed by the job).",
                "percentunit",
                _query(f"max(streamflow_drift_share{{{ns}}})", "drift_share", "A"),
                _query(f"max(streamflow_drift_threshold{{{ns}}})", "threshold", "B"),
            )
        )
        .with_panel(
            _targets(
                statetimeline.Panel()
                .title("Decision history")
                .description("The decision of the latest run at each point in time.")
                .height(8)
                .span(12)
                .mappings(_decision_mappings()),
                _query(decision, "decision"),
            )
        )
        .with_panel(
            _timeseries(
                "Target drift over time",
                "Distance of churn_label between the compared months.",
                "none",
                _query(f"max(streamflow_drift_target_score{{{ns}}})", "churn_label"),
            )
        )
        .with_panel(
            _timeseries(
                "Feature drift over time",
                "Per-feature distance of each run.",
                "none",
                _query(feature_score, "{{feature}}"),
            )
        )
        .with_row(builder.Row("Features"))
        .with_panel(
            _stat(
                "Drifted features",
                "Features whose distance reached the threshold.",
                "none",
                _query(f"max(streamflow_drift_drifted_features{{{ns}}})"),
                width=8,
            )
        )
        .with_panel(
            _stat(
                "Rows compared",
                "Subscribers in each compared snapshot.",
                "none",
                _query(f"max by (dataset) (streamflow_drift_rows{{{ns}}})", "{{dataset}}"),
                width=8,
            )
        )
        .with_panel(
            _stat(
                "Run duration",
                "Wall time of the last successful run.",
                "s",
                _query(f"max(streamflow_drift_run_duration_seconds{{{ns}}})"),
                width=8,
            )
        )
        .with_panel(
            _merged_table(
                "Per-feature drift per run",
                f"Each run in the time range (the snapshots it compared), each feature's drift distance and "
                f"whether it drifted (at {DISTANCE_THRESHOLD}); newest run first.",
                {"Value #A": "drift score", "Value #B": "drifted"},
                _query(per_run("streamflow_drift_feature_score"), ref_id="A", instant=True, table_format=True),
                _query(per_run("streamflow_drift_feature_drifted"), ref_id="B", instant=True, table_format=True),
            )
            .height(12)
            .span(12)
            .sort_by([common_builder.TableSortByFieldState().display_name("current").desc(True)])
            .override_by_name(
                "drift score", [model.DynamicConfigValue(id_val="thresholds", value=drifted_color.build())]
            )
            .override_by_name(
                "drifted",
                [
                    model.DynamicConfigValue(
                        id_val="mappings", value=_text_mappings((0, "no", "green"), (1, "drifted", "red"))
                    )
                ],
            )
        )
        .with_panel(
            _targets(
                table.Panel().title("Last run").description("Compared snapshots and decision.").height(12).span(12),
                _query(
                    f"max by (reference, current, decision, version) (streamflow_drift_run_info{{{ns}}})",
                    instant=True,
                    table_format=True,
                ),
            )
        )
        .with_row(builder.Row("Served model on labelled months, and retraining"))
        .with_panel(
            _targets(
                table.Panel()
                .title("Served model per labelled month")
                .description(
                    "The performance job: ROC AUC, and the calibration gap (mean predicted churn probability "
                    "minus the observed churn rate), per model version and month whose labels have arrived."
                )
                .height(8)
                .span(12),
                _query(
                    f"max by (model_version, month) (streamflow_model_auc{{{ns}}})",
                    "AUC",
                    "A",
                    instant=True,
                    table_format=True,
                ),
                _query(
                    f"max by (model_version, month) (streamflow_model_calibration_gap{{{ns}}})",
                    "gap",
                    "B",
                    instant=True,
                    table_format=True,
                ),
            )
        )
        .with_panel(
            _timeseries(
                "Served model: AUC and calibration gap",
                "Per labelled month; the alerts fire below the AUC floor and beyond the gap.",
                "none",
                _query(f"min by (month) (streamflow_model_auc{{{ns}}})", "AUC {{month}}", "A"),
                _query(f"max by (month) (streamflow_model_calibration_gap{{{ns}}})", "gap {{month}}", "B"),
            )
        )
        .with_panel(
            _targets(
                table.Panel()
                .title("Last retrain attempt")
                .description(
                    "The guarded retrain job: outcome (waiting, cooldown, kept-champion, would-promote, promoted), "
                    "mode, champion and challenger."
                )
                .height(6)
                .span(12),
                _query(
                    f"max by (outcome, mode, champion, challenger) (streamflow_retrain_attempt_info{{{ns}}})",
                    instant=True,
                    table_format=True,
                ),
            )
        )
        .with_panel(
            _stat(
                "Drift breaches in a row",
                "RETRAINING_TRIGGERED runs in a row, as the retrain guard counted them.",
                "none",
                _query(f"max(streamflow_retrain_breaches_in_row{{{ns}}})"),
                width=12,
            ).height(6)
        )
    )
    return dash.build()


DASHBOARDS = {"api": api_dashboard, "drift": drift_dashboard}


def render(dashboard: model.Dashboard) -> str:
    for number, panel in enumerate(dashboard.panels or [], start=1):
        panel.id_val = number  # stable ids: Grafana links to a panel by its id
    return json.dumps(dashboard, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def rendered() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {f"{name}.json": render(build()) for name, build in DASHBOARDS.items()}


def committed() -> dict[str, dict]:
    """File name -> dashboard of the JSON files the chart ships."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


# --- reading the queries back, as Grafana runs them ------------------------------------------
@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str
    instant: bool


def panel_queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    found = []
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            found.append(
                PanelQuery(
                    dashboard["title"],
                    panel["title"],
                    target.get("refId", ""),
                    target["expr"],
                    bool(target.get("instant")),
                )
            )
    return found


def panel(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    (found,) = (p for p in dashboard.get("panels", []) if p.get("title") == title)
    return found


def mapped_text(panel: dict[str, Any], value: float) -> str | None:
    """The text a panel's value mappings show for `value` (Grafana's "value" mappings), if any."""
    for mapping in panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
        if mapping["type"] == "value":
            for key, result in mapping["options"].items():
                if float(key) == value:
                    return result.get("text")
    return None


VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace $name, ${name}, ${name:format} and [[name]] as Grafana does; unknown names raise."""

    def value(match: re.Match) -> str:
        name = next(group for group in match.groups() if group)
        if name not in variables:
            raise KeyError(f"query uses ${name}, which has no value: {expr}")
        return variables[name]

    return VARIABLE.sub(value, expr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.monitoring.dashboards", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if a committed dashboard is not what the code generates"
    )
    args = parser.parse_args(argv)
    stale = []
    for name, text in rendered().items():
        path = DASHBOARD_DIR / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(REPO_ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    if stale:
        print(
            f"dashboards out of date: {', '.join(stale)}; run `python -m tools.monitoring.dashboards`", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
