"""/predict while a new model is promoted: the requests that failed, the latency percentiles of
the whole run, and how long the running API took to serve the new version.

The API runs on a copy of the demo data (the promotion writes a new version into its model
store) with the model store checked every second; bounded load (tools.traffic) runs from a
thread while the same estimator is saved as a new version halfway through.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from streamflow import model
from streamflow.settings import Settings
from tools import traffic
from tools.api_process import running_api


def measure(demo: Settings, workdir: Path, seconds: float = 20.0, concurrency: int = 8) -> dict[str, float]:
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.copytree(demo.data_dir, workdir, ignore=shutil.ignore_patterns("reports", "status", "bench"))
    settings = demo.model_copy(update={"data_dir": workdir, "model_dir": workdir / "model"})
    champion = model.load(settings)
    env = {
        "STREAMFLOW_DATA_DIR": str(workdir),
        "STREAMFLOW_N_USERS": str(settings.n_users),
        "STREAMFLOW_PREDICTION_CACHE_CHECK_SECONDS": "1",
        "STREAMFLOW_LOG_LEVEL": "WARNING",
    }
    result: dict[str, tuple[Counter, list[float]]] = {}
    with running_api(env) as api:

        def load() -> None:
            result["load"] = asyncio.run(
                traffic.run(api.base_url, 10**7, concurrency, seconds, min(1000, settings.n_users), seed=7)
            )

        thread = threading.Thread(target=load)
        thread.start()
        time.sleep(seconds / 2)
        promoted = model.save(
            champion.estimator,
            settings,
            trained_on="2024-02-29",
            algorithm=champion.metadata.algorithm,
            auc=champion.metadata.auc,
            n_train=champion.metadata.n_train,
            n_test=champion.metadata.n_test,
            created_at="2099-01-01T00:00:00+00:00",
        )
        saved = time.monotonic()
        while httpx.get(f"{api.base_url}/ready", timeout=10).json().get("model_version") != promoted.version:
            if time.monotonic() - saved > seconds:
                raise RuntimeError(f"the API did not serve {promoted.version} within {seconds} s")
            time.sleep(0.05)
        switch_seconds = time.monotonic() - saved
        thread.join()
    statuses, latencies = result["load"]
    failed = sum(count for status, count in statuses.items() if not status.isdigit() or status.startswith("5"))
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "promotion_requests": float(sum(statuses.values())),
        "promotion_failed_requests": float(failed),
        "promotion_p50_ms": quantiles[49] * 1000,
        "promotion_p99_ms": quantiles[98] * 1000,
        "promotion_switch_seconds": switch_seconds,
    }
