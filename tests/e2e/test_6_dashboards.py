"""Issue 20's dashboards on live series: every panel query of both dashboards, as Grafana would send
it for this release and for "All", returns data from the in-cluster Prometheus, the
kube-state-metrics ones (CronJob and Job series, which no local stack has) included.

Before the check, the cluster gets what those panels show: a run of the retrain and performance
CronJobs, and a drift run that fails (bad arguments), which must leave the last good status intact.
"""

from __future__ import annotations

import math
import time
from functools import partial

import httpx
import pytest

from tests.e2e.conftest import FULLNAME, NAMESPACE
from tests.support.kube import eventually
from tools.monitoring import dashboards, observe

RATE_INTERVAL = "1m"  # Grafana's $__rate_interval for a 15 s scrape interval: 4 x 15 s
STATUS_PREFIX = "drift.streamflow.io/"


def _finished(kube, name: str) -> str:
    status = kube.json("-n", NAMESPACE, "get", "job", name)["status"]
    return "succeeded" if status.get("succeeded") else "failed" if status.get("failed") else ""


def _decision(kube) -> dict[str, str]:
    """The last drift decision's annotations (the retrain job writes its own retrain-* beside them)."""
    found = kube.json("-n", NAMESPACE, "get", "configmap", f"{FULLNAME}-drift-status")["metadata"]["annotations"]
    return {k: v for k, v in found.items() if k.startswith(STATUS_PREFIX) and "/retrain-" not in k}


def _run(kube, *names: str) -> dict[str, str]:
    outcomes = {}
    for name in names:
        outcomes[name] = eventually(f"job {name} to finish", partial(_finished, kube, name), timeout=600, interval=5)
    return outcomes


@pytest.fixture(scope="module")
def loop_ran(kube, api_url) -> dict[str, str]:
    for cronjob in ("retrain", "performance"):
        kube.job_from_cronjob(NAMESPACE, f"{FULLNAME}-{cronjob}", f"{FULLNAME}-{cronjob}-e2e")
    outcomes = _run(kube, f"{FULLNAME}-retrain-e2e", f"{FULLNAME}-performance-e2e")
    before = _decision(kube)
    failing = f"{FULLNAME}-drift-e2e-failing"
    kube.job_from_cronjob(NAMESPACE, f"{FULLNAME}-drift", failing, ["--reference", "not-a-date"])
    outcomes |= _run(kube, failing)
    outcomes["status kept"] = str(before == _decision(kube) and bool(before))
    # test_3 suspended the schedule; kube-state-metrics has no next run time for a suspended CronJob
    kube.run(
        "-n", NAMESPACE, "patch", "cronjob", f"{FULLNAME}-drift", "--type=merge", "-p", '{"spec":{"suspend":false}}'
    )
    with httpx.Client(base_url=api_url, timeout=30) as client:  # fresh rates for the API panels
        for index in range(40):
            client.post("/predict", json={"user_id": f"U{index % 20:04d}" if index % 20 else "4686-GEFRM"})
    time.sleep(35)  # two scrapes of 15 s, and a kube-state-metrics refresh
    return outcomes


def test_the_loop_jobs_ran_and_a_failed_drift_run_kept_the_last_status(loop_ran):
    assert loop_ran[f"{FULLNAME}-retrain-e2e"] == "succeeded"
    assert loop_ran[f"{FULLNAME}-performance-e2e"] == "succeeded"
    assert loop_ran[f"{FULLNAME}-drift-e2e-failing"] == "failed"
    assert loop_ran["status kept"] == "True"


@pytest.mark.parametrize("choice", ["release", "All"])
def test_every_panel_query_returns_data_from_live_series(prometheus, loop_ran, choice):
    variables = {
        "namespace": NAMESPACE if choice == "release" else ".*",
        "job": f"{FULLNAME}-api" if choice == "release" else ".*",
        "__rate_interval": RATE_INTERVAL,
        "__interval": RATE_INTERVAL,
        "__range": "1h",
        "datasource": "prometheus",
    }
    panels = observe.panel_values(prometheus, variables)
    assert len(panels) == sum(len(dashboards.panel_queries(d)) for d in dashboards.committed().values())
    empty = [f"{p.query.dashboard} › {p.query.panel} [{p.query.ref_id}]: {p.expr}" for p in panels if not p.result]
    assert not empty, "\n".join(empty)
    not_finite = [f"{p.query.panel}: {p.values}" for p in panels if not all(math.isfinite(v) for v in p.values)]
    assert not not_finite, not_finite
    by_title = {(p.query.panel, p.query.ref_id): p for p in panels}
    # the kube-state-metrics panels, on this cluster's CronJob and Jobs
    failed = {s["metric"]["job_name"] for s in by_title[("Failed drift Jobs (kube-state-metrics)", "B")].result}
    assert f"{FULLNAME}-drift-e2e-failing" in failed
    assert by_title[("Since last successful drift Job (CronJob)", "A")].values[0] >= 0
    assert by_title[("Drift runs", "A")].values == [0.0]  # a run exists now: the stat says "ok"
