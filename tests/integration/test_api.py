"""The API, in process (TestClient) and over real HTTP on uvicorn (one and two workers)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from api import smoke
from api.main import create_app
from api.metrics import LATENCY_BUCKETS
from api.online_features import OnlineFeatureReader
from streamflow import db, feature_repo, model
from streamflow.datasets import snapshot_frame
from streamflow.feature_repo import open_store
from streamflow.features import FEATURE_NAMES, FEATURE_REFS, encode_frame, encode_row
from streamflow.settings import Settings
from tests.support.processes import data_env
from tools import traffic
from tools.api_process import free_port, running_api


@pytest.fixture(scope="module")
def app_client(demo_settings: Settings):
    registry = CollectorRegistry()
    with TestClient(create_app(demo_settings, registry), raise_server_exceptions=False) as client:
        yield client, registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_predict_known_user_returns_the_contract(app_client) -> None:
    client, _ = app_client
    response = client.post("/predict", json={"user_id": "4686-GEFRM"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"user_id", "prediction", "probability", "model_version", "features_used"}
    assert body["user_id"] == "4686-GEFRM" and body["prediction"] in (0, 1)
    assert 0.0 <= body["probability"] <= 1.0
    assert body["prediction"] == int(body["probability"] >= 0.5)
    assert list(body["features_used"]) == list(FEATURE_NAMES)
    assert body["features_used"]["net_service"] in ("none", "dsl", "fiber")


def test_prediction_equals_the_model_on_the_same_features(app_client, demo_settings: Settings) -> None:
    client, _ = app_client
    body = client.post("/predict", json={"user_id": "U0001"}).json()
    loaded = model.load(demo_settings)
    expected = loaded.churn_probability(encode_row(body["features_used"]))[0]
    assert body["probability"] == pytest.approx(expected, abs=1e-12)
    assert body["model_version"] == loaded.version


def test_unknown_user_is_404_with_a_message(app_client) -> None:
    client, _ = app_client
    response = client.post("/predict", json={"user_id": "NO-SUCH-USER"})
    assert response.status_code == 404
    assert "NO-SUCH-USER" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"user_id": ""},
        {"user_id": 42},
        {"user_id": "x" * 65},
        {"user_id": "a b"},
        {"user_id": "U0001", "extra": 1},
        [],
        "U0001",
    ],
)
def test_malformed_body_is_422(app_client, body) -> None:
    client, _ = app_client
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    assert response.json()["detail"]


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        # found by the fuzzer (test_api_fuzz.py): FastAPI answered these two with an undocumented 400
        b'{"user_id": "U0\xf0\x28\x8c"}',  # not UTF-8
        b"[" * 100_000 + b"]" * 100_000,
    ],  # deeper than json's recursion limit
    ids=["not-json", "not-utf8", "too-deep"],
)
def test_invalid_json_is_422_not_500(app_client, content: bytes) -> None:
    client, _ = app_client
    response = client.post("/predict", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "json_invalid" and error["loc"][0] == "body"


def test_health_and_ready(app_client) -> None:
    client, _ = app_client
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True and ready.json()["checks"] == {"model": "ok", "feature_store": "ok"}


def test_counters_and_histogram_move_by_exactly_the_requests_sent(app_client) -> None:
    client, registry = app_client
    labels_ok = {"method": "POST", "route": "/predict", "status": "200"}
    labels_404 = {"method": "POST", "route": "/predict", "status": "404"}
    before_ok = sample(registry, "api_requests_total", **labels_ok)
    before_404 = sample(registry, "api_requests_total", **labels_404)
    before_count = sample(registry, "api_request_latency_seconds_count", method="POST", route="/predict")
    before_predictions = sum(sample(registry, "api_predictions_total", outcome=o) for o in ("churn", "stay"))
    before_lookups = sample(registry, "api_feature_lookup_latency_seconds_count")
    before_hits, before_misses = (sample(registry, "api_prediction_cache_total", result=r) for r in ("hit", "miss"))
    users = [f"U{i:04d}" for i in range(101, 108)]  # used by no other test of this module
    for user in users + users:  # the second round is served from the prediction cache
        assert client.post("/predict", json={"user_id": user}).status_code == 200
    for _ in range(3):
        client.post("/predict", json={"user_id": "GHOST"})  # unknown users are never cached
    assert sample(registry, "api_requests_total", **labels_ok) - before_ok == 14
    assert sample(registry, "api_requests_total", **labels_404) - before_404 == 3
    assert sample(registry, "api_request_latency_seconds_count", method="POST", route="/predict") - before_count == 17
    assert (
        sum(sample(registry, "api_predictions_total", outcome=o) for o in ("churn", "stay")) - before_predictions == 14
    )
    assert sample(registry, "api_prediction_cache_total", result="miss") - before_misses == 7
    assert sample(registry, "api_prediction_cache_total", result="hit") - before_hits == 7
    assert sample(registry, "api_feature_lookup_latency_seconds_count") - before_lookups == 7 + 3
    buckets = [
        sample(registry, "api_request_latency_seconds_bucket", method="POST", route="/predict", le=str(b))
        for b in LATENCY_BUCKETS
    ]
    inf = sample(registry, "api_request_latency_seconds_bucket", method="POST", route="/predict", le="+Inf")
    assert buckets == sorted(buckets) and inf == sample(
        registry, "api_request_latency_seconds_count", method="POST", route="/predict"
    )
    assert sample(registry, "api_requests_in_flight") == 0  # every request above has finished
    scrape = client.get("/metrics").text
    assert re.search(r"^api_requests_in_flight 1\.0$", scrape, re.M), "the scrape itself is in flight"


def test_metrics_use_route_templates_never_user_ids(app_client) -> None:
    client, _ = app_client
    client.post("/predict", json={"user_id": "4686-GEFRM"})
    assert client.get("/no/such/path/U0001").status_code == 404
    text = client.get("/metrics").text
    routes = set()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert not any("4686-GEFRM" in v or "U0001" in v for v in s.labels.values()), s
            if "route" in s.labels:
                routes.add(s.labels["route"])
    assert routes <= {"/predict", "/health", "/ready", "/metrics", "unmatched"}
    assert {"/predict", "unmatched"} <= routes
    assert re.search(r'^api_model_info\{runtime="treelite",version="[^"]+"\} 1\.0$', text, re.M), text
    assert "api_ready 1.0" in text


@pytest.mark.filterwarnings("ignore:X has feature names")
def test_numpy_path_matches_the_dataframe_path(demo_settings: Settings) -> None:
    engine = db.make_engine(demo_settings)
    frame = snapshot_frame(engine, open_store(demo_settings), db.list_snapshots(engine)[-1]).head(200)
    loaded = model.load(demo_settings)
    batch = loaded.churn_probability(encode_frame(frame))
    one_by_one = np.array([loaded.churn_probability(encode_row(r))[0] for r in frame.to_dict("records")])
    np.testing.assert_allclose(one_by_one, batch, rtol=0, atol=1e-12)
    frame_path = loaded.estimator.predict_proba(
        frame[list(FEATURE_NAMES)]
        .assign(net_service=encode_frame(frame)[:, FEATURE_NAMES.index("net_service")])
        .astype(float)
    )[:, 1]
    np.testing.assert_allclose(frame_path, batch, atol=1e-12)


def _settings_with_model_dir(demo_settings: Settings, model_dir: Path) -> Settings:
    return demo_settings.model_copy(update={"model_dir": model_dir, "ready_retry_seconds": 0.0})


def test_missing_model_gives_503_and_not_ready_but_alive(demo_settings: Settings, tmp_path: Path) -> None:
    settings = _settings_with_model_dir(demo_settings, tmp_path / "empty")
    with TestClient(create_app(settings, CollectorRegistry()), raise_server_exceptions=False) as client:
        response = client.post("/predict", json={"user_id": "U0001"})
        assert response.status_code == 503 and "model not loaded" in response.json()["detail"]
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert "no model metadata" in ready.json()["checks"]["model"]
        assert client.get("/health").status_code == 200
        # the model appears later (e.g. the bootstrap Job finished): the API recovers by itself
        assert demo_settings.model_dir is not None
        shutil.copytree(demo_settings.model_dir, tmp_path / "empty")
        assert client.get("/ready").status_code == 200
        assert client.post("/predict", json={"user_id": "U0001"}).status_code == 200


def test_tampered_model_fails_its_checksum_and_is_never_loaded(demo_settings: Settings, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    assert demo_settings.model_dir is not None
    shutil.copytree(demo_settings.model_dir, model_dir)
    artifact = next(model_dir.glob("model-*.joblib"))
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with TestClient(
        create_app(_settings_with_model_dir(demo_settings, model_dir), CollectorRegistry()),
        raise_server_exceptions=False,
    ) as client:
        response = client.post("/predict", json={"user_id": "U0001"})
        assert response.status_code == 503
        assert "checksum" in response.json()["detail"]


def test_real_uvicorn_over_http(demo_dir: Path, capsys) -> None:
    with running_api(data_env(demo_dir)) as api, api.client() as client:
        response = client.post("/predict", json={"user_id": "4686-GEFRM"})
        assert response.status_code == 200 and response.json()["user_id"] == "4686-GEFRM"
        assert client.post("/predict", json={"user_id": "nobody"}).status_code == 404
        assert client.post("/predict", content=b"[", headers={"content-type": "application/json"}).status_code == 422
        metrics = client.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'api_requests_total{method="POST",route="/predict",status="200"} 1.0' in metrics.text

        # the chart's `helm test` check, then `make traffic`'s bounded load
        assert smoke.main([api.base_url]) == 0
        assert (
            traffic.main(["--url", api.base_url, "--requests", "80", "--known-users", "1000", "--wait-seconds", "5"])
            == 0
        )
        sent = re.search(r"sent (\d+) requests", capsys.readouterr().out)
        assert sent and int(sent.group(1)) == 80
        after = client.get("/metrics").text
    predict_count = [
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("api_requests_total{") and 'route="/predict"' in line
        )
        for text in (metrics.text, after)
    ]
    assert predict_count[1] - predict_count[0] == 80, "every request the generator sent is counted once"


def test_two_workers_aggregate_metrics_in_multiprocess_mode(demo_dir: Path, tmp_path: Path) -> None:
    requests = 40
    env = data_env(demo_dir, prometheus_multiproc_dir=tmp_path / "prom")
    with running_api(env, workers=2) as api:
        with api.client() as client:
            for i in range(requests):
                # a new connection each time, so the kernel spreads them over both workers
                with api.client() as fresh:
                    assert fresh.post("/predict", json={"user_id": f"U{i + 1:04d}"}).status_code == 200
            text = client.get("/metrics").text
        pids = {p.name.split("_")[-1].removesuffix(".db") for p in (tmp_path / "prom").glob("counter_*.db")}
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    key = ("api_requests_total", (("method", "POST"), ("route", "/predict"), ("status", "200")))
    assert values[key] == requests
    assert (
        values[("api_predictions_total", (("outcome", "churn"),))]
        + values[("api_predictions_total", (("outcome", "stay"),))]
        == requests
    )
    assert len(pids) == 2, f"expected counter files from 2 workers, found {pids}"
    assert values[("api_requests_in_flight", ())] == 1, "summed over both workers: the scrape itself"


def test_smoke_check_names_what_is_wrong() -> None:
    found = smoke.problems(f"http://127.0.0.1:{free_port()}", timeout=2.0)
    assert len(found) == 1 and found[0].startswith("cannot reach http://127.0.0.1:")


def test_the_online_reader_returns_what_feast_get_online_features_returns(demo_settings: Settings) -> None:
    store = open_store(demo_settings)
    reader = OnlineFeatureReader(store)
    users = ["4686-GEFRM", "U0001", "U0500", "U1999", "NO-SUCH-USER"]
    feast_values = store.get_online_features(
        features=list(FEATURE_REFS), entity_rows=[{"user_id": u} for u in users]
    ).to_dict()
    for i, user in enumerate(users):
        assert reader.read(user) == {name: feast_values[name][i] for name in FEATURE_NAMES}
    assert all(v is None for v in reader.read("NO-SUCH-USER").values())


def test_a_new_materialization_empties_the_prediction_cache(demo_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(demo_dir, data_dir, ignore=shutil.ignore_patterns("reports", "status"))
    settings = Settings(data_dir=data_dir, prediction_cache_check_seconds=3600)  # checks run by hand here
    engine = db.make_engine(settings)
    latest = db.list_snapshots(engine)[-1]
    store = open_store(settings)
    feature_repo.apply(settings, store)  # the copied registry still points at demo_dir's Parquet files
    app = create_app(settings, CollectorRegistry())
    with TestClient(app, raise_server_exceptions=False) as client:
        serving = app.state.serving
        before = client.post("/predict", json={"user_id": "U0001"}).json()["features_used"]["months_active"]
        profile = db.PROFILE_TABLE
        with engine.begin() as conn:
            conn.execute(
                profile.update()
                .where(profile.c.user_id == "U0001", profile.c.as_of == db.snapshot_timestamp(latest))
                .values(months_active=before + 100)
            )
        feature_repo.export_offline_sources(settings, engine)
        serving.check_registry()  # nothing materialized yet: the cached prediction stays valid
        assert client.post("/predict", json={"user_id": "U0001"}).json()["features_used"]["months_active"] == before

        feature_repo.materialize(settings, store, engine)
        # the online store already holds the new value, the cache does not until the registry check
        assert client.post("/predict", json={"user_id": "U0001"}).json()["features_used"]["months_active"] == before
        serving.check_registry()
        after = client.post("/predict", json={"user_id": "U0001"}).json()
    assert after["features_used"]["months_active"] == before + 100
    assert after["probability"] == pytest.approx(
        model.load(settings).churn_probability(encode_row(after["features_used"]))[0], abs=1e-12
    )


def test_without_a_cache_every_prediction_reads_the_store(demo_settings: Settings) -> None:
    registry = CollectorRegistry()
    settings = demo_settings.model_copy(update={"prediction_cache_size": 0})
    with TestClient(create_app(settings, registry)) as client:
        for _ in range(3):
            assert client.post("/predict", json={"user_id": "U0001"}).status_code == 200
    assert sample(registry, "api_prediction_cache_total", result="miss") == 3
    assert sample(registry, "api_prediction_cache_total", result="hit") == 0
    assert sample(registry, "api_feature_lookup_latency_seconds_count") == 3


@pytest.mark.parametrize("threads", [None, 3], ids=["default", "set"])
def test_launcher_sets_the_models_openmp_threads_before_scikit_learn_loads(threads: int | None) -> None:
    # OpenMP's default pool (one thread per core) spun on a busy machine: ~190 ms of CPU per
    # prediction instead of ~7 ms with one thread (the fuzz run was 6x slower for it).
    # Same imports, in the same order, as `python -m api`.
    code = (
        "import api.__main__ as launcher; from streamflow.settings import Settings; "
        "launcher.limit_model_threads(Settings()); import api.main, sklearn.ensemble; "
        "from threadpoolctl import threadpool_info; "
        "print(sorted({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'openmp'}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS" and not k.startswith("STREAMFLOW_")}
    if threads is not None:
        env["STREAMFLOW_MODEL_THREADS"] = str(threads)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == f"[{threads or 1}]"
