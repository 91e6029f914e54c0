"""Fault injection on the real API (uvicorn on 127.0.0.1): the test breaks real components.

Each test serves a private copy of the session's data (the destructive steps never touch it):
the online store's SQLite file is moved away / deleted while serving, or the model artifact is
missing / corrupt at start. The API must answer 503 with a reason (never a 500), stay alive in
the same process, and recover by itself once the component is back.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from streamflow.feature_repo import online_store_path
from streamflow.settings import Settings
from tests.support.processes import data_env
from tools.api_process import ApiProcess, running_api

RETRY_SECONDS = 0.5  # the API's retry interval for a missing model or store, short for the tests
USER = {"user_id": "U0001"}


def private_copy(demo_dir: Path, tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    shutil.copytree(demo_dir, data_dir, ignore=shutil.ignore_patterns("reports", "prometheus-multiproc"))
    return data_dir


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        time.sleep(0.2)


def log_records(log_path: Path) -> list[dict]:
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]


def assert_same_live_server(api: ApiProcess, log_path: Path) -> None:
    """Alive, and never restarted: uvicorn announced exactly one server process, this one."""
    assert api.process.poll() is None
    started = [r["message"] for r in log_records(log_path) if r["message"].startswith("Started server process")]
    assert started == [f"Started server process [{api.process.pid}]"]
    assert not [r for r in log_records(log_path) if r["message"].startswith("unhandled error")]


def assert_store_down(client: httpx.Client, reason: str) -> None:
    predict = client.post("/predict", json=USER)
    assert predict.status_code == 503, predict.text
    assert "feature store not available" in predict.json()["detail"] and reason in predict.json()["detail"]
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert ready.json()["checks"]["model"] == "ok" and reason in ready.json()["checks"]["feature_store"]
    assert client.get("/health").status_code == 200


def assert_recovers(client: httpx.Client) -> None:
    wait_for("/predict answers 200 again", lambda: client.post("/predict", json=USER).status_code == 200)
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True


def test_online_store_file_gone_while_serving_gives_503_then_recovers(demo_dir: Path, tmp_path: Path) -> None:
    data_dir = private_copy(demo_dir, tmp_path)
    store_file = online_store_path(Settings(data_dir=data_dir))
    assert store_file is not None and store_file.exists()
    log_path = tmp_path / "api.log"
    env = data_env(data_dir, ready_retry_seconds=RETRY_SECONDS)
    with running_api(env, log_path=str(log_path)) as api, api.client() as client:
        assert client.post("/predict", json=USER).status_code == 200

        # 1. moved away (the open connection could still read it: the API must notice anyway)
        moved = store_file.with_name("moved-away.db")
        store_file.rename(moved)
        assert_store_down(client, "is missing")
        assert not store_file.exists(), "the API must not create an empty store in its place"
        moved.rename(store_file)
        assert_recovers(client)

        # 2. deleted, then restored from a backup (a new file: the old connection is stale)
        backup = shutil.copy2(store_file, tmp_path / "backup.db")
        store_file.unlink()
        assert_store_down(client, "is missing")
        shutil.copy2(backup, store_file)
        assert_recovers(client)

        metrics = client.get("/metrics").text
        assert_same_live_server(api, log_path)
    assert "api_ready 1.0" in metrics
    lookup_errors = [line for line in metrics.splitlines() if line.startswith("api_feature_lookup_errors_total ")]
    assert lookup_errors and float(lookup_errors[0].split()[1]) >= 2
    dropped = [r for r in log_records(log_path) if r["message"] == "feature store dropped"]
    assert len(dropped) == 2 and all(str(store_file) in r["reason"] for r in dropped)


@pytest.mark.parametrize("fault", ["missing", "checksum"])
def test_broken_model_at_start_is_not_ready_and_503_with_a_log_line(demo_dir: Path, tmp_path: Path, fault: str) -> None:
    data_dir = private_copy(demo_dir, tmp_path)
    artifact = next((data_dir / "model").glob("model-*.joblib"))
    good = artifact.read_bytes()
    if fault == "missing":
        artifact.unlink()
        expected = f"{artifact.name} is missing"
    else:
        corrupt = bytearray(good)
        corrupt[len(corrupt) // 2] ^= 0xFF
        artifact.write_bytes(bytes(corrupt))
        expected = f"{artifact.name} fails its checksum"
    log_path = tmp_path / "api.log"
    env = data_env(data_dir, ready_retry_seconds=RETRY_SECONDS)
    # ready_path=/health: the API serves (and says why it is not ready) without a model
    with running_api(env, log_path=str(log_path), ready_path="/health") as api, api.client() as client:
        predict = client.post("/predict", json=USER)
        assert predict.status_code == 503, predict.text
        assert "model not loaded" in predict.json()["detail"] and expected in predict.json()["detail"]
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert expected in ready.json()["checks"]["model"] and ready.json()["checks"]["feature_store"] == "ok"
        assert client.get("/health").status_code == 200
        logged = [r for r in log_records(log_path) if r["message"] == "model not loaded"]
        assert logged and logged[0]["level"] == "error" and expected in logged[0]["reason"]

        artifact.write_bytes(good)  # the good artifact arrives: no restart needed
        assert_recovers(client)
        assert_same_live_server(api, log_path)
