"""The dashboards and alert rules on a real Prometheus and Pushgateway (Debian's packages), with
the real API and the real drift job, scrape jobs and rules derived from the rendered chart.

The rules are rendered with short `for` durations and windows (chart values) and scraped every
second, so alerts go pending and firing within seconds; their expressions are the chart's.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Summary

from jobs.drift.push import PUSH_JOB, push
from streamflow.drift import Action
from streamflow.features import FEATURE_NAMES
from tests.support.processes import TEST_USERS, data_env, run_module
from tools.api_process import ApiProcess, free_port, running_api
from tools.monitoring import dashboards, observe
from tools.monitoring.localstack import CHART_DIR, Prometheus, Server, start_prometheus, start_pushgateway

SCRAPE = "1s"
SLO = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["prometheusRule"]["slo"]
FAST_RULES = {
    "apiDown": {"for": "3s", "severity": "critical"},
    "apiErrorRatio": {"threshold": 0.05, "window": "15s", "for": "3s", "severity": "warning"},
    # the chart's windows and factors; only `for` shortened
    "slo": {"burnRateAlerts": [{**pair, "for": "3s"} for pair in SLO["burnRateAlerts"]]},
}
RATE_INTERVAL = "1m"  # what Grafana's $__rate_interval is at least: 4 scrapes, here bounded below by 1m


@dataclass
class Stack:
    objects: list[dict]
    prometheus: Prometheus
    pushgateway: Server
    api: ApiProcess
    spare_api_port: int  # a second API target, started only by the 5xx test
    env: dict[str, str]
    workdir: Path
    seen: dict[str, set[str]] = field(default_factory=dict)  # alertname -> states observed while watching


def address(url: str) -> str:
    return url.removeprefix("http://")


@pytest.fixture(scope="module")
def stack(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("observability")
    objects = observe.chart_objects(SCRAPE, FAST_RULES)
    pushgateway = start_pushgateway(workdir, free_port())
    env = data_env(demo_dir)
    spare = free_port()
    prometheus = None
    try:
        with running_api(env, log_path=str(workdir / "api.log")) as api:
            prometheus = start_prometheus(
                workdir,
                free_port(),
                objects,
                {"api": [address(api.base_url), f"127.0.0.1:{spare}"], "pushgateway": [address(pushgateway.url)]},
                evaluation_interval="1s",
            )
            yield Stack(objects, prometheus, pushgateway, api, spare, env, workdir)
    finally:
        if prometheus is not None:
            prometheus.stop()
        pushgateway.stop()


def watch(stack: Stack, seconds: float) -> dict[str, set[str]]:
    """Alert states seen, polling every 0.25 s for `seconds`."""
    seen: dict[str, set[str]] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, state in stack.prometheus.alerts().items():
            seen.setdefault(name, set()).add(state)
        time.sleep(0.25)
    return seen


def wait_for_alert(stack: Stack, name: str, state: str, timeout: float) -> set[str]:
    """Poll until `name` is in `state`; returns every state it was seen in on the way."""
    seen: set[str] = set()

    def check() -> bool:
        current = stack.prometheus.alerts().get(name)
        if current:
            seen.add(current)
        return current == state

    stack.prometheus.wait_for(f"alert {name} {state}", check, timeout, every=0.25)
    return seen


class BackgroundTraffic:
    """Bounded /predict load from a thread (count and time both capped)."""

    def __init__(self, url: str, seconds: float, requests: int = 20_000) -> None:
        self.statuses: dict[str, int] = {}
        self.thread = threading.Thread(target=self._run, args=(url, seconds, requests), daemon=True)
        self.thread.start()

    def _run(self, url: str, seconds: float, requests: int) -> None:
        self.statuses = observe.send_traffic(url, requests, TEST_USERS // 2, max_seconds=seconds, concurrency=2)

    def join(self) -> dict[str, int]:
        self.thread.join(timeout=120)
        return self.statuses


def variables(stack: Stack, **chosen: str) -> dict[str, str]:
    """Grafana's variables for this release (or other choices, e.g. "All": `.*`)."""
    return {**observe.grafana_variables(stack.objects, RATE_INTERVAL), **chosen}


def drift_runs_panel_text(stack: Stack, **chosen: str) -> str | None:
    """What the drift dashboard's "Drift runs" stat shows now: its query, then its value mappings."""
    panel = dashboards.panel(dashboards.committed()["drift.json"], "Drift runs")
    (target,) = panel["targets"]
    (sample,) = stack.prometheus.query(dashboards.substitute(target["expr"], variables(stack, **chosen)))
    return dashboards.mapped_text(panel, float(sample["value"][1]))


@pytest.fixture(scope="module")
def scenario(stack: Stack) -> dict:
    """The demo's two drift runs pushed to the Pushgateway while clean traffic flows, with the
    alert states seen after each; then a fresh traffic burst and every dashboard panel's value."""
    observed: dict = {"pushgateway_before_runs": httpx.get(f"{stack.pushgateway.url}/metrics").text}
    observed["runs_panel_before"] = {
        choice: drift_runs_panel_text(stack, namespace=namespace)
        for choice, namespace in (("release", "streamflow"), ("All", ".*"))
    }
    clean = BackgroundTraffic(stack.api.base_url, seconds=25)
    for key, (reference, current) in zip(("no_drift", "drift"), observe.DEMO_RUNS, strict=True):
        observed[f"{key}_exit"] = observe.run_drift(stack.env, stack.pushgateway.url, reference, current)
        observe.wait_for_drift_metrics(stack.prometheus, current)
        if key == "no_drift":
            observed["no_drift_alerts"] = watch(stack, 3)
        else:
            observed["drift_states"] = wait_for_alert(stack, "StreamFlowDriftDetected", "firing", 20)
        observed[f"{key}_decision"] = stack.prometheus.query(
            'max by (decision) (streamflow_drift_run_info{namespace="streamflow"})'
        )[0]["metric"]["decision"]
    observed["loop_exit"] = observe.run_loop_jobs(stack.env, stack.pushgateway.url, stack.prometheus)
    observed["model_states"] = wait_for_alert(stack, "StreamFlowModelCalibrationOff", "firing", 20)
    observed["clean_traffic"] = clean.join()
    observed["alerts_after_clean_traffic"] = watch(stack, 2)
    observe.send_traffic(stack.api.base_url, 300, TEST_USERS // 2)
    time.sleep(3)  # two scrapes
    observed["panels"] = observe.panel_values(stack.prometheus, variables(stack))
    observed["panels_all"] = observe.panel_values(stack.prometheus, variables(stack, namespace=".*", job=".*"))
    observed["runs_panel_after"] = {
        choice: drift_runs_panel_text(stack, namespace=namespace)
        for choice, namespace in (("release", "streamflow"), ("All", ".*"))
    }
    return observed


def test_drift_detected_stays_silent_after_no_drift_and_fires_after_drift(scenario) -> None:
    # a fresh Pushgateway holds no earlier run (Debian's default persistence file is machine-wide)
    assert "streamflow_drift_" not in scenario["pushgateway_before_runs"]
    assert scenario["no_drift_exit"] == 0 and scenario["no_drift_decision"] == Action.NO_ACTION
    assert "StreamFlowDriftDetected" not in scenario["no_drift_alerts"]
    assert scenario["drift_exit"] == 0 and scenario["drift_decision"] == Action.RETRAIN
    assert "firing" in scenario["drift_states"]


def test_the_served_models_calibration_alert_fires_after_the_march_labels(scenario) -> None:
    # the demo's March: a price rise doubles churn, the January model under-predicts it
    assert scenario["loop_exit"] == 0 and "firing" in scenario["model_states"]
    assert "StreamFlowModelAucLow" not in scenario["alerts_after_clean_traffic"]  # it still ranks well


def test_error_ratio_alert_stays_silent_under_clean_traffic(scenario) -> None:
    statuses = scenario["clean_traffic"]
    assert statuses.get("200", 0) > 100 and not any(s.startswith("5") for s in statuses), statuses
    assert "StreamFlowApiErrorRatioHigh" not in scenario["alerts_after_clean_traffic"]
    assert "StreamFlowApiAvailabilityBudgetBurn" not in scenario["alerts_after_clean_traffic"]
    assert "StreamFlowApiDown" not in scenario["alerts_after_clean_traffic"]


@pytest.mark.parametrize("choice", ["panels", "panels_all"])
def test_every_dashboard_panel_query_returns_data(scenario, choice: str) -> None:
    """Every panel query, with this release's namespace and job selected and with "All", returns
    finite data from the live series, but for the kube-state-metrics ones (no local stack has
    them): Prometheus evaluated those without an error, their data is checked on a cluster."""
    panels = scenario[choice]
    assert len(panels) == sum(len(observe.dashboards.panel_queries(d)) for d in observe.dashboards.committed().values())
    cluster_only = [p for p in panels if observe.is_cluster_only(p.query)]
    assert len(cluster_only) == len(dashboards.CLUSTER_ONLY_QUERIES)
    local = [p for p in panels if not observe.is_cluster_only(p.query)]
    empty = [f"{p.query.dashboard} › {p.query.panel} [{p.query.ref_id}]: {p.expr}" for p in local if not p.result]
    assert not empty, "\n".join(empty)
    not_finite = [f"{p.query.panel}: {p.values}" for p in panels if not all(math.isfinite(v) for v in p.values)]
    assert not not_finite, not_finite
    by_title = {(p.query.panel, p.query.ref_id): p for p in panels}
    assert by_title[("Decision", "A")].values == [1.0]
    assert by_title[("5xx error ratio", "A")].values == [0.0]
    assert len(by_title[("Feature drift over time", "A")].result) == 14
    assert by_title[("Requests per second", "A")].values[0] > 0
    # the new SLO, cache and drift-run panels: what the chart's values and the pushed runs say
    objectives = {s["metric"]["slo"]: float(s["value"][1]) for s in by_title[("SLO objectives", "A")].result}
    assert objectives == {"availability": SLO["availability"]["objective"], "latency": SLO["latency"]["objective"]}
    assert by_title[("Latency SLO bound", "A")].values == [SLO["latency"]["thresholdSeconds"]]
    assert by_title[("Availability SLI vs objective", "A")].values == [1.0]  # clean traffic: no 5xx
    windows = {w for pair in SLO["burnRateAlerts"] for w in (pair["longWindow"], pair["shortWindow"])}
    for slo in ("Availability", "Latency"):
        burn = by_title[(f"{slo} error budget burn rate", "A")].result
        assert {s["metric"]["window"] for s in burn} == windows
        assert len(by_title[(f"{slo} error budget burn rate", "B")].result) == len(SLO["burnRateAlerts"])
    assert 0 <= by_title[("Prediction cache hit ratio", "A")].values[0] <= 1
    assert {s["metric"]["result"] for s in by_title[("Prediction cache hits and misses", "A")].result} == {
        "hit",
        "miss",
    }
    assert {s["metric"]["le"] for s in by_title[("Latency heatmap", "A")].result} >= {"0.1", "+Inf"}
    assert by_title[("Last drift push rejected (Pushgateway)", "A")].values == [0.0]
    assert by_title[("Since last drift push (Pushgateway)", "A")].values[0] >= 0


def test_no_drift_run_panel_says_so_until_the_first_run(scenario) -> None:
    for choice in ("release", "All"):
        assert scenario["runs_panel_before"][choice] == dashboards.NO_DRIFT_RUN_TEXT, choice
        assert scenario["runs_panel_after"][choice] == "ok", choice


def test_per_feature_table_has_every_run_in_the_range_with_its_drifted_flags(stack: Stack, scenario) -> None:
    """Over a range holding both demo runs: one row per run and feature, the drifted flags of the
    newest run adding up to the drifted-feature count that run pushed."""
    panel = dashboards.panel(dashboards.committed()["drift.json"], "Per-feature drift per run")
    chosen = variables(stack, __range="1h")
    rows = {
        target["refId"]: stack.prometheus.query(dashboards.substitute(target["expr"], chosen))
        for target in panel["targets"]
    }
    runs = {(s["metric"]["reference"], s["metric"]["current"]) for s in rows["A"]}
    assert runs == set(observe.DEMO_RUNS)
    for ref_id in ("A", "B"):
        for run in runs:
            features = [
                s["metric"]["feature"]
                for s in rows[ref_id]
                if (s["metric"]["reference"], s["metric"]["current"]) == run
            ]
            assert sorted(features) == sorted(FEATURE_NAMES), (ref_id, run)
    newest = observe.DEMO_RUNS[-1]
    flags = [float(s["value"][1]) for s in rows["B"] if (s["metric"]["reference"], s["metric"]["current"]) == newest]
    (pushed,) = stack.prometheus.query('streamflow_drift_drifted_features{namespace="streamflow"}')
    assert set(flags) <= {0.0, 1.0} and sum(flags) == float(pushed["value"][1]) > 0


def test_a_push_the_pushgateway_rejects_shows_on_the_drift_dashboard(stack: Stack, scenario) -> None:
    """A push into the drift group that the Pushgateway refuses (a summary where the performance
    job pushed a gauge of that name) sets its push_failure_time_seconds: the panel says rejected."""
    registry = CollectorRegistry()
    Summary("streamflow_model_auc", "Conflicts with the performance job's gauge.", registry=registry).observe(1)
    assert push(stack.pushgateway.url, registry, job=PUSH_JOB) is False
    panel = dashboards.panel(dashboards.committed()["drift.json"], "Last drift push rejected (Pushgateway)")
    expr = dashboards.substitute(panel["targets"][0]["expr"], variables(stack))

    def shown() -> str | None:
        result = stack.prometheus.query(expr)
        return dashboards.mapped_text(panel, float(result[0]["value"][1])) if result else None

    assert stack.prometheus.wait_for("the rejected push scraped", lambda: shown() == "rejected", timeout=30)


def test_dashboard_variables_resolve_to_this_release(stack: Stack, scenario) -> None:
    for dashboard in observe.dashboards.committed().values():
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            metric_selector, label = variable["query"].removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
            selector = observe.dashboards.substitute(metric_selector, {"namespace": "streamflow"})
            expected = {"namespace": "streamflow", "job": "streamflow-api"}[label]
            assert expected in stack.prometheus.label_values(label, selector), variable["name"]


def test_error_ratio_alert_fires_when_a_replica_answers_503(stack: Stack, scenario, tmp_path: Path) -> None:
    """A second API replica without its model (an empty model directory) answers 503 to every
    prediction: the ratio of 5xx crosses the threshold and the alert fires."""
    broken_env = {**stack.env, "STREAMFLOW_MODEL_DIR": str(tmp_path / "no-model")}
    with running_api(
        broken_env, port=stack.spare_api_port, ready_path="/health", log_path=str(tmp_path / "broken-api.log")
    ) as broken:
        load = BackgroundTraffic(broken.base_url, seconds=30, requests=3000)
        states = wait_for_alert(stack, "StreamFlowApiErrorRatioHigh", "firing", 45)
        # every window now holds far more than 14.4 x the 0.5 % budget of 5xx: the page fires
        burn_states = wait_for_alert(stack, "StreamFlowApiAvailabilityBudgetBurn", "firing", 45)
        statuses = load.join()
    assert "firing" in states and "firing" in burn_states
    assert statuses.get("503", 0) > 0 and "500" not in statuses, statuses
    ratio = next(
        p
        for p in observe.panel_values(stack.prometheus, observe.grafana_variables(stack.objects, "15s"))
        if p.query.panel == "5xx error ratio"
    )
    assert ratio.values[0] > 0.05


def test_api_down_alert_goes_pending_then_firing_when_the_api_stops(stack: Stack, scenario) -> None:
    assert "StreamFlowApiDown" not in stack.prometheus.alerts()
    stack.api.process.terminate()
    stack.api.process.wait(timeout=30)
    states = wait_for_alert(stack, "StreamFlowApiDown", "firing", 30)
    assert states == {"pending", "firing"}


def test_make_observe_prints_every_panel_with_a_value(demo_dir: Path) -> None:
    """The `make observe` entry point end to end (its own Prometheus on a free port)."""
    result = run_module(
        "tools.monitoring.observe",
        "--seconds",
        "0",
        "--requests",
        "200",
        "--prometheus-port",
        str(free_port()),
        env=data_env(demo_dir),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for dashboard in observe.dashboards.committed().values():
        for query in observe.dashboards.panel_queries(dashboard):
            assert f"{query.dashboard} › {query.panel} [{query.ref_id}]" in out
    assert "(no data)" not in out
    assert "StreamFlowDriftDetected: firing" in out and "RETRAINING_TRIGGERED" in out
