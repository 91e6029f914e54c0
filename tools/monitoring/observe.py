"""`make observe`: the monitoring of a cluster install, on this machine, with no cluster.

    python -m tools.monitoring.observe [--prometheus-port 9090] [--requests 600] [--seconds N]

Starts the real API, a real Pushgateway and a real Prometheus (Debian's packages) whose scrape
jobs and rules come from the rendered chart (tools.monitoring.localstack), runs the drift
job twice pushing its outcome (the demo's months: no drift, then drift), sends bounded traffic,
then prints every dashboard panel's query with its current value and the active alerts.
Prometheus' own UI stays up at http://127.0.0.1:<port> until Ctrl-C (or --seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from streamflow.settings import Settings
from tools import traffic
from tools.api_process import free_port, running_api
from tools.monitoring import dashboards
from tools.monitoring.localstack import (
    COMPONENT_LABEL,
    Prometheus,
    labels_of,
    of_kind,
    render_chart,
    rule_groups,
    start_prometheus,
    start_pushgateway,
)

RELEASE = NAMESPACE = "streamflow"  # what `make deploy` installs: the labels the dashboards select
DEMO_RUNS = (("2024-01-31", "2024-02-29"), ("2024-02-29", "2024-03-31"))  # no drift, then drift
SLO_BURN_RATE = "streamflow:slo_burn_rate"  # recorded by the chart's PrometheusRule (prometheusRule.slo)


def chart_objects(scrape_interval: str, rule_values: Mapping | None = None) -> list[dict]:
    """The chart as `make deploy` renders it, with a local scrape interval (and rule tweaks)."""
    values = {"serviceMonitor": {"interval": scrape_interval, "scrapeTimeout": scrape_interval}}
    if rule_values:
        values["prometheusRule"] = dict(rule_values)
    return render_chart(RELEASE, NAMESPACE, values)


def api_job(objects: list[dict]) -> str:
    """The `job` label of the API's targets: the name of the Service its ServiceMonitor selects."""
    for service in of_kind(objects, "Service"):
        if labels_of(service).get(COMPONENT_LABEL) == "api":
            return service["metadata"]["name"]
    raise ValueError("the rendered chart has no API Service")


def grafana_variables(objects: list[dict], rate_interval: str) -> dict[str, str]:
    """Dashboard variables as Grafana would set them for this release."""
    return {
        "namespace": NAMESPACE,
        "job": api_job(objects),
        "__rate_interval": rate_interval,
        "__interval": rate_interval,
        "__range": rate_interval,
        "datasource": "prometheus",
    }


@dataclass(frozen=True)
class PanelValue:
    query: dashboards.PanelQuery
    expr: str  # after variable substitution
    result: list[dict]

    @property
    def values(self) -> list[float]:
        return [float(sample["value"][1]) for sample in self.result]


def panel_values(prometheus: Prometheus, variables: dict[str, str]) -> list[PanelValue]:
    """Every panel query of every shipped dashboard, run now."""
    found = []
    for dashboard in dashboards.committed().values():
        for query in dashboards.panel_queries(dashboard):
            expr = dashboards.substitute(query.expr, variables)
            found.append(PanelValue(query, expr, prometheus.query(expr)))
    return found


def is_cluster_only(query: dashboards.PanelQuery) -> bool:
    """A query on kube-state-metrics series, which only a cluster has."""
    return (query.dashboard, query.panel, query.ref_id) in dashboards.CLUSTER_ONLY_QUERIES


def format_panel(panel: PanelValue) -> str:
    head = f"{panel.query.dashboard} › {panel.query.panel} [{panel.query.ref_id}]\n    {panel.expr}\n"
    if not panel.result and is_cluster_only(panel.query):
        return head + "    (evaluated; kube-state-metrics series exist in a cluster only)"
    if not panel.result:
        return head + "    (no data)"
    shown = []
    for sample in panel.result[:16]:
        labels = ",".join(f"{k}={v}" for k, v in sorted(sample["metric"].items()))
        shown.append(f"    {labels or 'value'} = {float(sample['value'][1]):.4g}")
    return head + "\n".join(shown)


# After the drift runs, what the chart's other CronJobs run: the guarded retrain and the served
# model's performance on labelled months (both push to the Pushgateway too)
LOOP_JOBS = ("jobs.retrain", "jobs.performance")


def run_job(data_env: Mapping[str, str], pushgateway_url: str, module: str, *args: str) -> int:
    """One of the real batch jobs, pushing to the Pushgateway; its last lines go to our stdout."""
    env = {**os.environ, **data_env, "STREAMFLOW_PUSHGATEWAY_URL": pushgateway_url}
    return subprocess.run([sys.executable, "-m", module, *args], env=env, check=False).returncode


def run_drift(data_env: Mapping[str, str], pushgateway_url: str, reference: str, current: str) -> int:
    """The real drift job, pushing to the Pushgateway; its decision line goes to our stdout."""
    return run_job(data_env, pushgateway_url, "jobs.drift", "--reference", reference, "--current", current)


def run_loop_jobs(data_env: Mapping[str, str], pushgateway_url: str, prometheus: Prometheus) -> int:
    """The retrain and performance jobs, then wait until Prometheus has scraped what they pushed."""
    for module in LOOP_JOBS:
        code = run_job(data_env, pushgateway_url, module)
        if code != 0:
            return code
    for metric in ("streamflow_retrain_attempt_info", "streamflow_model_auc"):
        prometheus.wait_for(f"the pushed {metric}", partial(prometheus.query, metric), 60.0)
    return 0


def send_traffic(
    url: str, requests: int, known_users: int, max_seconds: float = 60.0, concurrency: int = 4
) -> dict[str, int]:
    """Bounded /predict load (tools.traffic); the count of each status seen."""
    statuses, _ = asyncio.run(
        traffic.run(url, requests, concurrency=concurrency, max_seconds=max_seconds, known_users=known_users, seed=11)
    )
    return dict(statuses)


def wait_for_drift_metrics(prometheus: Prometheus, current: str, timeout: float = 60.0) -> None:
    prometheus.wait_for(
        f"the pushed drift run for {current}",
        lambda: prometheus.query(f'streamflow_drift_run_info{{current="{current}"}}'),
        timeout,
    )


def wait_for_slo_rules(prometheus: Prometheus, objects: list[dict], timeout: float = 60.0) -> None:
    """The /predict series appear with the first prediction; the SLO burn rates need two scrapes
    of them and then a rule evaluation: wait for those (when the chart records them)."""
    recorded = {rule.get("record") for group in rule_groups(objects)["groups"] for rule in group["rules"]}
    if SLO_BURN_RATE in recorded:
        for slo in ("availability", "latency"):
            query = f'{SLO_BURN_RATE}{{slo="{slo}"}}'
            prometheus.wait_for(f"the recorded {query}", partial(prometheus.query, query), timeout)


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.monitoring.observe", description=__doc__.split("\n")[0])
    parser.add_argument("--prometheus-port", type=int, default=9090)
    parser.add_argument("--scrape-seconds", type=int, default=5, help="the ServiceMonitors' interval for this run")
    parser.add_argument("--requests", type=int, default=600, help="bounded /predict traffic to send")
    parser.add_argument("--seconds", type=float, default=None, help="stay up this long (default: until Ctrl-C)")
    args = parser.parse_args(argv)
    settings = Settings()
    data_env = {k: v for k, v in os.environ.items() if k.startswith("STREAMFLOW_")}
    workdir = Path(tempfile.mkdtemp(prefix="streamflow-observe-"))

    step(f"rendering charts/streamflow (release {RELEASE}, namespace {NAMESPACE}); logs in {workdir}")
    scrape_interval = f"{args.scrape_seconds}s"
    objects = chart_objects(scrape_interval)
    rate_interval = f"{max(4 * args.scrape_seconds, 60)}s"
    pushgateway = start_pushgateway(workdir, free_port())
    prometheus = None
    try:
        step("starting the API (Feast import takes ~15 s)")
        with running_api(data_env, log_path=str(workdir / "api.log")) as api:
            address = api.base_url.removeprefix("http://")
            prometheus = start_prometheus(
                workdir,
                args.prometheus_port,
                objects,
                {"api": [address], "pushgateway": [pushgateway.url.removeprefix("http://")]},
                evaluation_interval=scrape_interval,
            )
            print(f"API {api.base_url} · Pushgateway {pushgateway.url} · Prometheus {prometheus.url}")
            for reference, current in DEMO_RUNS:
                step(f"drift job {reference} vs {current}, pushing to {pushgateway.url}")
                code = run_drift(data_env, pushgateway.url, reference, current)
                if code != 0:
                    print(f"observe: the drift job failed (exit {code}); see its last line above", file=sys.stderr)
                    return code
            step(f"{' and '.join(LOOP_JOBS)}, pushing to {pushgateway.url}")
            code = run_loop_jobs(data_env, pushgateway.url, prometheus)
            if code != 0:
                print(f"observe: a job failed (exit {code}); see its last line above", file=sys.stderr)
                return code
            step(f"sending at most {args.requests} /predict requests")
            statuses = send_traffic(api.base_url, args.requests, settings.n_users)
            print(", ".join(f"{status}={count}" for status, count in sorted(statuses.items())))
            step("waiting for Prometheus to scrape it all")
            wait_for_drift_metrics(prometheus, DEMO_RUNS[-1][1])
            time.sleep(2 * args.scrape_seconds)
            wait_for_slo_rules(prometheus, objects)
            step("dashboard panels (instant queries, Grafana variables substituted)")
            for panel in panel_values(prometheus, grafana_variables(objects, rate_interval)):
                print(format_panel(panel))
            step("alerts active now (rules from the rendered PrometheusRule)")
            active = prometheus.alerts()
            print("\n".join(f"    {name}: {state}" for name, state in sorted(active.items())) or "    none")
            step(f"Prometheus UI: {prometheus.url}  (Ctrl-C to stop)")
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(args.seconds if args.seconds is not None else 10**9)
    finally:
        if prometheus is not None:
            prometheus.stop()
        pushgateway.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
