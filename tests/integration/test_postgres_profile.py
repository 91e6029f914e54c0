"""PostgreSQL profile end to end: generator -> Feast (PostgreSQL offline store, online store,
SQL registry) -> model -> drift job, against a real PostgreSQL started for this test; the database
password stays out of every output; the drift job survives its database going down mid-run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobs.drift.sinks import make_sink
from streamflow import db
from streamflow.drift import ANNOTATION_PREFIX
from streamflow.settings import Settings
from tests.support.drift import DriftRun, assert_failed_cleanly, read_status
from tests.support.postgres import PostgresServer
from tests.support.processes import (
    data_env,
    finish,
    must_succeed,
    run_module,
    start_module,
    wait_for_output,
)
from tools.api_process import running_api

pytestmark = pytest.mark.postgres
PG_USERS = 800
# Distinctive, so a leak cannot hide behind a common word (trust auth accepts any password).
PASSWORD = "Zq7-leak-canary-4vX9"


def assert_no_password(outputs: dict[str, str], data_dir: Path) -> None:
    """Neither the captured outputs nor any file the run left (reports, status, logs) hold it."""
    files = {str(f): f.read_bytes().decode(errors="replace") for f in data_dir.rglob("*") if f.is_file()}
    assert files, "nothing written: the check would be vacuous"
    leaks = [name for name, text in {**outputs, **files}.items() if PASSWORD in text]
    assert not leaks, f"database password found in {leaks}"


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer.start()
    yield server
    server.stop()


def test_postgres_profile_end_to_end(postgres: PostgresServer, tmp_path: Path) -> None:
    env = data_env(
        tmp_path,
        database_url=postgres.url("streamflow", PASSWORD),
        feast_profile="postgres",
        model_store="database",
        n_users=PG_USERS,
    )
    # Like the chart's bootstrap Job, start before the database exists: it waits, then proceeds.
    bootstrap = start_module("jobs.bootstrap", "--wait-for-database", "120", env=env)
    waited = wait_for_output(bootstrap, "waiting for the database", timeout=60)
    assert '"attempt": 1' in waited and "does not exist" in waited
    postgres.create_database("streamflow")
    bootstrapped = must_succeed(finish(bootstrap, timeout=600))
    # the chart's configuration: nothing on local disk, so API replicas need no shared volume
    assert not (tmp_path / "feast").exists() and not (tmp_path / "model").exists()
    with running_api(env, log_path=str(tmp_path / "api.log")) as api, api.client() as client:
        response = client.post("/predict", json={"user_id": "U0001"})
        assert response.status_code == 200, response.text
        ready = client.get("/ready")
        assert response.json()["model_version"] == ready.json()["model_version"]
        metrics = client.get("/metrics").text
    assert "api_requests_total" in metrics and (tmp_path / "api.log").stat().st_size > 0

    no_action = must_succeed(run_module("jobs.drift", "--reference", "2024-01-31", "--current", "2024-02-29", env=env))
    assert "-> NO_ACTION" in no_action.stdout.strip().splitlines()[-1]
    retrain = must_succeed(run_module("jobs.drift", env=env))
    last = retrain.stdout.strip().splitlines()[-1]
    # 2024-02-29 must be read as February even though the server's TimeZone is not UTC
    assert "-> RETRAINING_TRIGGERED (SIMULÉ)" in last and "drift_2024-02-29_vs_2024-03-31" in last
    status = json.loads((tmp_path / "status" / "streamflow-drift-status.json").read_text())
    assert status["metadata"]["annotations"]["drift.streamflow.io/decision"] == "RETRAINING_TRIGGERED"
    summary = json.loads((tmp_path / "reports" / "drift" / "drift_2024-02-29_vs_2024-03-31.json").read_text())
    assert summary["streamflow"]["rows"] == {"reference": PG_USERS, "current": PG_USERS}
    assert list((tmp_path / "reports" / "drift").glob("*.html")), "the HTML reports are scanned too"
    assert_no_password(
        {
            "bootstrap": bootstrapped.stdout + bootstrapped.stderr,
            "ready": ready.text,
            "metrics": metrics,
            "drift": no_action.stdout + no_action.stderr,
            "drift latest": retrain.stdout + retrain.stderr,
        },
        tmp_path,
    )


def wait_until(check, timeout: float, what: str) -> None:
    """Poll a condition on real state (not a guess at how long something takes)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not {what} within {timeout}s"
        time.sleep(0.1)


def test_database_down_mid_run_fails_with_exit_3_and_keeps_status(postgres: PostgresServer, tmp_path: Path) -> None:
    postgres.create_database("outage")
    url = postgres.url("outage", PASSWORD)
    env = data_env(tmp_path, database_url=url, n_users=300)
    must_succeed(run_module("jobs.datagen", env=env))  # the snapshot tables are all the drift job reads
    settings = Settings(data_dir=tmp_path, database_url=url)
    make_sink(settings).annotate({ANNOTATION_PREFIX + "decision": "NO_ACTION"})  # a previous run's status
    before = read_status(settings)
    engine = db.make_engine(settings)
    # Deterministic timing: a transaction of ours holds `labels`, which the job reads only after
    # "drift run started" (row counts, then the Arrow reads); once the job waits on that lock, it is
    # mid-run with a query in flight, and the server goes down under it.
    holder = engine.connect()
    holder.execute(sa.text("LOCK TABLE labels IN ACCESS EXCLUSIVE MODE"))
    job = start_module("jobs.drift", env=env)
    try:
        wait_for_output(job, "drift run started", timeout=120)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
            waiting = sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = 'outage' AND wait_event_type = 'Lock'"
            )
            wait_until(lambda: watcher.execute(waiting).scalar_one() > 0, 60, "blocked on the lock")
        postgres.halt()
        holder.invalidate()  # only now: closing it earlier would release the lock
        result = finish(job, timeout=120)
        # the job's other path to the database, its Arrow reader, fails as clearly
        masked = r"connecting to postgresql\+psycopg://postgres:\*\*\*@"
        with pytest.raises(db.BulkReadError, match=masked) as failed, db.arrow_reader(engine):
            pass
    finally:
        if job.process.poll() is None:
            job.process.kill()
        if not (postgres.data_dir / "postmaster.pid").exists():
            postgres.resume()  # the server is shared by this module's tests
    run = DriftRun(result.returncode, result.stdout, result.stderr, read_status(settings))
    reason = assert_failed_cleanly(run, before, 3, "(data)", "database", f"127.0.0.1:{postgres.port}/outage", "***")
    assert "terminating connection due to administrator command" in reason, reason  # cut mid-query
    assert not list((tmp_path / "reports").rglob("drift_*")), "no report for a failed run"
    assert_no_password({"drift": result.stdout + result.stderr, "arrow reader": str(failed.value)}, tmp_path)
    engine.dispose()
    assert db.count_rows(engine, db.labels) == 3 * 300  # the server is back with its data
