"""PostgreSQL profile end to end: generator -> Feast (PostgreSQL offline store, online store,
SQL registry) -> model -> drift job, against a real PostgreSQL started for this test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.process import running_api
from tests.support.postgres import PostgresServer
from tests.support.processes import (
    data_env,
    finish,
    must_succeed,
    run_module,
    start_module,
    wait_for_output,
)

pytestmark = pytest.mark.postgres
PG_USERS = 800


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer.start()
    yield server
    server.stop()


def test_postgres_profile_end_to_end(postgres: PostgresServer, tmp_path: Path) -> None:
    env = data_env(tmp_path, database_url=postgres.url("streamflow"), feast_profile="postgres",
                   model_store="database", n_users=PG_USERS)
    # Like the chart's bootstrap Job, start before the database exists: it waits, then proceeds.
    bootstrap = start_module("jobs.bootstrap", "--wait-for-database", "120", env=env)
    waited = wait_for_output(bootstrap, "waiting for the database", timeout=60)
    assert '"attempt": 1' in waited and "does not exist" in waited
    postgres.create_database("streamflow")
    must_succeed(finish(bootstrap, timeout=600))
    # the chart's configuration: nothing on local disk, so API replicas need no shared volume
    assert not (tmp_path / "feast").exists() and not (tmp_path / "model").exists()
    with running_api(env) as api, api.client() as client:
        response = client.post("/predict", json={"user_id": "U0001"})
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] == client.get("/ready").json()["model_version"]

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
