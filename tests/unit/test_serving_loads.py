"""ServingState with stand-in loaders, behind the real ASGI app: a due retry loads in a worker
thread while the event loop keeps answering, one load at a time; a store file replaced under
the open store is re-opened (off the loop too); the loaded fast path stays on the loop.

The loaders are fakes (a model whose estimator answers 0.7, a reader that knows "U0001") so the
test needs neither Feast nor a trained model; a gate makes a load as slow as the test wants.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from api.main import create_app
from api.metrics import ApiMetrics
from api.online_features import OnlineFeatureReader
from api.serving import ServingState
from streamflow.feature_repo import online_store_path
from streamflow.features import FEATURE_NAMES
from streamflow.model import ChurnModel, ModelArtifactError, ModelMetadata
from streamflow.settings import Settings

USER = {"user_id": "U0001"}
SLOW = 10.0  # how long a gated load waits for the test at most (it must never get that far)


class Estimator:
    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return np.array([[0.3, 0.7]] * len(rows))


def fake_model() -> ChurnModel:
    metadata = ModelMetadata(
        version="test-1",
        artifact="model-test-1.joblib",
        sha256="0" * 64,
        feature_names=list(FEATURE_NAMES),
        trained_on="2024-01-31",
        algorithm="stand-in",
        auc=0.5,
        n_train=1,
        n_test=1,
        created_at="2024-02-01T00:00:00Z",
    )
    return ChurnModel(estimator=Estimator(), metadata=metadata)


class FakeReader(OnlineFeatureReader):
    """Knows one user; records the threads it reads from."""

    def __init__(self, read_threads: list[int]) -> None:  # no Feast store behind it
        self.read_threads = read_threads
        self.closed = False

    def refresh(self) -> bool:
        return False

    def read(self, user_id: str) -> dict[str, Any]:
        self.read_threads.append(threading.get_ident())
        known = user_id == USER["user_id"]
        return {name: (1 if known else None) for name in FEATURE_NAMES}

    def close(self) -> None:
        self.closed = True


@dataclass
class Loaders:
    """Stand-ins for model_artifact.load and OnlineFeatureReader.open that record each call's
    thread. The first `model_missing` model loads fail like a missing artifact; a load while
    `gate` is set waits until the test opens it (or SLOW seconds, and then says so)."""

    model_missing: int = 0
    model_threads: list[int] = field(default_factory=list)
    store_threads: list[int] = field(default_factory=list)
    read_threads: list[int] = field(default_factory=list)
    readers: list[FakeReader] = field(default_factory=list)
    gate: threading.Event | None = None
    loading: threading.Event = field(default_factory=threading.Event)
    released: list[bool] = field(default_factory=list)  # per gated load: did the test open the gate?

    def _wait_at_gate(self) -> None:
        if self.gate is not None:
            self.loading.set()
            self.released.append(self.gate.wait(SLOW))

    def load_model(self, settings: Settings) -> ChurnModel:
        self.model_threads.append(threading.get_ident())
        if len(self.model_threads) <= self.model_missing:
            raise ModelArtifactError("model artifact not there yet")
        self._wait_at_gate()
        return fake_model()

    def open_reader(self, settings: Settings) -> OnlineFeatureReader:
        self.store_threads.append(threading.get_ident())
        self._wait_at_gate()
        reader = FakeReader(self.read_threads)
        self.readers.append(reader)
        return reader


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    settings = Settings(data_dir=tmp_path, ready_retry_seconds=0.0, prediction_cache_check_seconds=3600)
    store_file = online_store_path(settings)
    assert store_file is not None
    store_file.parent.mkdir(parents=True)
    store_file.write_bytes(b"")
    with store_file.open("rb"):  # held open, as the store's connection holds it
        yield settings


def app_with(settings: Settings, loaders: Loaders, registry: CollectorRegistry) -> FastAPI:
    def serving(settings: Settings, metrics: ApiMetrics) -> ServingState:
        return ServingState(settings, metrics, load_model=loaders.load_model, open_reader=loaders.open_reader)

    return create_app(settings, registry, serving_factory=serving)


def run_app(app: FastAPI, scenario: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    """The app in process (its lifespan included), on this thread's event loop."""

    async def main() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                await asyncio.wait_for(scenario(client), timeout=3 * SLOW)

    asyncio.run(main())


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def test_a_due_retry_loads_in_a_thread_while_the_loop_answers(settings: Settings) -> None:
    loaders = Loaders(model_missing=1, gate=None)
    registry = CollectorRegistry()
    app = app_with(settings, loaders, registry)
    loop_thread = threading.get_ident()

    async def scenario(client: httpx.AsyncClient) -> None:
        # start-up: the model is missing (the bootstrap still running), the store opened
        assert len(loaders.model_threads) == 1 and len(loaders.store_threads) == 1
        assert loaders.model_threads[0] != loop_thread and loaders.store_threads[0] != loop_thread
        loaders.gate = threading.Event()  # the next load is slow: it waits for the test

        starter = asyncio.create_task(client.get("/ready"))  # the retry is due: it starts a load
        await until(loaders.loading.is_set)
        # a loop blocked by the load would answer none of these before the gate opens
        health = await client.get("/health")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert loaders.released == [], "/health answered while the load still waited at its gate"
        try:
            during = await asyncio.wait_for(
                asyncio.gather(client.get("/ready"), client.post("/predict", json=USER)), timeout=SLOW / 2
            )
        except TimeoutError:
            pytest.fail("requests that came during the load waited for it")
        assert [r.status_code for r in during] == [503, 503]
        assert during[0].json()["checks"]["model"] == "model artifact not there yet"
        assert during[1].json() == {"detail": "model not loaded: model artifact not there yet"}
        assert not starter.done(), "the request that started the load waits for it"
        assert len(loaders.model_threads) == 2, "requests during a load start no second load"

        loaders.gate.set()
        ready = await starter
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "ready": True,
            "model_version": "test-1",
            "checks": {"model": "ok", "feature_store": "ok"},
        }
        predict = await client.post("/predict", json=USER)
        assert predict.status_code == 200 and predict.json()["probability"] == 0.7

    run_app(app, scenario)
    assert loaders.released == [True], "the load finished only after the loop had answered"
    assert loaders.model_threads[1] != loop_thread, "the retry loaded the model in a worker thread"
    assert len(loaders.model_threads) == 2 and len(loaders.store_threads) == 1
    assert registry.get_sample_value("api_ready") == 1.0


def test_a_replaced_store_file_is_reopened_off_the_loop_and_the_cache_emptied(settings: Settings) -> None:
    loaders = Loaders()
    registry = CollectorRegistry()
    app = app_with(settings, loaders, registry)
    store_file = online_store_path(settings)
    assert store_file is not None
    loop_thread = threading.get_ident()

    def cache(result: str) -> float:
        return registry.get_sample_value("api_prediction_cache_total", {"result": result}) or 0.0

    async def scenario(client: httpx.AsyncClient) -> None:
        for _ in range(3):
            assert (await client.post("/predict", json=USER)).status_code == 200
        assert (cache("miss"), cache("hit")) == (1, 2)

        replacement = store_file.with_name("restored.db")
        replacement.write_bytes(b"")
        os.replace(replacement, store_file)  # a new file at the path: the open store reads the old one
        response = await client.post("/predict", json=USER)
        assert response.status_code == 200, "the request that noticed re-opened the store and was served"
        assert len(loaders.store_threads) == 2 and loaders.store_threads[1] != loop_thread
        assert loaders.readers[0].closed, "the store reading the old file was dropped"
        assert (cache("miss"), cache("hit")) == (2, 2), "the re-opened store started an empty cache"
        assert (await client.get("/ready")).status_code == 200

    run_app(app, scenario)


def test_the_loaded_path_starts_no_load_and_reads_on_the_loop(settings: Settings) -> None:
    loaders = Loaders()
    app = app_with(settings, loaders, CollectorRegistry())
    loop_thread = threading.get_ident()

    async def scenario(client: httpx.AsyncClient) -> None:
        for _ in range(5):
            assert (await client.post("/predict", json=USER)).status_code == 200
            assert (await client.post("/predict", json={"user_id": "NOBODY"})).status_code == 404
            assert (await client.get("/ready")).status_code == 200

    run_app(app, scenario)
    assert len(loaders.model_threads) == 1 and len(loaders.store_threads) == 1, "loaded once, at start-up"
    # every read ran on the loop: no thread hop per request
    assert loaders.read_threads and set(loaders.read_threads) == {loop_thread}
