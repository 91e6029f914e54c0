"""StreamFlow's Grafana dashboards, generated as code with Grafana's own typed builders.

    python -m tools.monitoring.dashboards           # (re)write charts/streamflow/dashboards/*.json
    python -m tools.monitoring.dashboards --check   # exit 1 if a committed file differs

The chart ships each JSON file as a ConfigMap for the Grafana sidecar. Panels query through a
`datasource` variable (no data source UID from anyone's Grafana) and select one `namespace`
(and for the API, one scrape `job`), so several releases share a Grafana. Values the
dashboards must agree with come from their source: the per-feature drift distance threshold
from the drift job, the routes left out of user-facing ratios from the chart's alert values.

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
from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from streamflow.drift import DISTANCE_THRESHOLD, Action

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "streamflow"
DASHBOARD_DIR = CHART_DIR / "dashboards"

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"


def _excluded_routes() -> str:
    """The routes the chart's alerts leave out of user traffic (probes, scrapes), as a regex."""
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    return "|".join(values["prometheusRule"]["excludedRoutes"])


# --- building blocks -----------------------------------------------------------------------
def _query(
    expr: str, legend: str = "", ref_id: str = "A", *, instant: bool = False, table_format: bool = False
) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref_id)
    if legend:
        query = query.legend_format(legend)
    if instant:
        query = query.instant()
    if table_format:
        query = query.format(PromQueryFormat.TABLE)
    return query


def _targets(panel, *queries: prometheus.Dataquery):
    for query in queries:
        panel = panel.with_target(query)
    return panel.datasource(DATASOURCE)


def _timeseries(title: str, description: str, unit: str, *queries: prometheus.Dataquery, width: int = 12):
    panel = timeseries.Panel().title(title).description(description).unit(unit).height(8).span(width)
    return _targets(panel, *queries)


def _stat(title: str, description: str, unit: str, query: prometheus.Dataquery, width: int = 6):
    panel = stat.Panel().title(title).description(description).unit(unit).height(4).span(width)
    return _targets(panel, query)


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


def _query_variable(name: str, label: str, query: str) -> builder.QueryVariable:
    return (
        builder.QueryVariable(name)
        .label(label)
        .query(query)
        .datasource(DATASOURCE)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
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
    api = 'namespace="$namespace", job="$job"'
    user = f'{api}, route!~"{_excluded_routes()}"'
    requests = f"sum(rate(api_requests_total{{{user}}}[{RATE}]))"
    errors = f'(sum(rate(api_requests_total{{{user}, status=~"5.."}}[{RATE}])) or vector(0))'
    error_ratio = f"{errors} / {requests}"

    def quantile(q: float, metric: str, selector: str, ref_id: str) -> prometheus.Dataquery:
        expr = f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{selector}}}[{RATE}])))"
        return _query(expr, f"p{round(q * 100)}", ref_id)

    dash = (
        _dashboard(
            "streamflow-api",
            "StreamFlow / API",
            "The churn-prediction API: traffic, errors, latency, predictions, feature store, model.",
        )
        .with_variable(_datasource_variable())
        .with_variable(_query_variable("namespace", "Namespace", "label_values(api_requests_total, namespace)"))
        .with_variable(_query_variable("job", "Job", 'label_values(api_requests_total{namespace="$namespace"}, job)'))
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
    )
    return dash.build()


def drift_dashboard() -> model.Dashboard:
    ns = 'namespace="$namespace"'
    decision = f"max(streamflow_drift_retraining_triggered{{{ns}}})"
    feature_score = f"max by (feature) (streamflow_drift_feature_score{{{ns}}})"
    drifted_color = _thresholds((None, "green"), (DISTANCE_THRESHOLD, "red"))
    dash = (
        _dashboard(
            "streamflow-drift",
            "StreamFlow / Drift",
            "The drift job's outcome as pushed to the Pushgateway: the decision, drift_share against "
            "its threshold, per-feature distances, target drift and run freshness; then the served "
            "model's performance on labelled months and the guarded retrain's last attempt.",
        )
        .with_variable(_datasource_variable())
        .with_variable(_query_variable("namespace", "Namespace", "label_values(streamflow_drift_share, namespace)"))
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
            _targets(
                table.Panel()
                .title("Per-feature drift (last run)")
                .description(f"Distance per feature; a feature drifts at {DISTANCE_THRESHOLD}.")
                .height(12)
                .span(12)
                .thresholds(drifted_color),
                _query(feature_score, instant=True, table_format=True),
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
