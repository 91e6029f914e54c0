"""A promoted model reaches a running API without a restart: requests in flight never fail, the
answers switch to the new model_version, and a corrupt new version is never served."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamflow import model
from streamflow.settings import Settings
from tests.support.processes import TEST_USERS, data_env
from tools.api_process import running_api

USERS = [f"U{i:04d}" for i in range(1, 200)]


class Traffic:
    """Bounded /predict load from a thread: every answer's status and model_version, in order."""

    def __init__(self, url: str, max_requests: int = 20_000, max_seconds: float = 90.0) -> None:
        self.answers: list[tuple[int, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, max_requests, max_seconds), daemon=True)
        self._thread.start()

    def _run(self, url: str, max_requests: int, max_seconds: float) -> None:
        deadline = time.monotonic() + max_seconds
        with httpx.Client(base_url=url, timeout=10.0) as client:
            for i in range(max_requests):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    response = client.post("/predict", json={"user_id": USERS[i % len(USERS)]})
                    version = response.json().get("model_version") if response.status_code == 200 else None
                    self.answers.append((response.status_code, version))
                except httpx.HTTPError as exc:
                    self.answers.append((0, type(exc).__name__))

    def versions_seen(self) -> list[str | None]:
        return [version for _, version in self.answers]

    def stop(self) -> list[tuple[int, str | None]]:
        self._stop.set()
        self._thread.join(timeout=30)
        return self.answers


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.2)


def served_models(url: str) -> dict[str, float]:
    families = text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text)
    info = next(f for f in families if f.name == "api_model_info")
    return {s.labels["version"]: s.value for s in info.samples}


@pytest.fixture
def copy(demo_dir: Path, tmp_path: Path) -> Settings:
    target = tmp_path / "data"
    shutil.copytree(demo_dir, target, ignore=shutil.ignore_patterns("reports", "status"))
    return Settings(data_dir=target, reports_dir=target / "reports", n_users=TEST_USERS)


def test_a_promoted_model_is_served_under_load_and_a_corrupt_one_never(copy: Settings) -> None:
    champion = model.load(copy)
    env = data_env(copy.data_dir, prediction_cache_check_seconds=0.5, n_users=TEST_USERS)
    with running_api(env) as api:
        traffic = Traffic(api.base_url)
        wait_for(lambda: len(traffic.answers) >= 50, 30, "the first answers")
        promoted = model.save(
            champion.estimator,
            copy,
            trained_on="2024-02-29",
            algorithm="test-promotion",
            auc=0.8,
            n_train=1,
            n_test=1,
            created_at="2024-03-01T00:00:00+00:00",
        )
        assert promoted.version != champion.version
        wait_for(lambda: promoted.version in traffic.versions_seen()[-5:], 30, "answers from the promoted model")
        # a newer version whose artifact is corrupt: checksum refused, the promoted one keeps serving
        corrupt = model.save(
            champion.estimator,
            copy,
            trained_on="2024-03-31",
            algorithm="test-corrupt",
            auc=0.8,
            n_train=1,
            n_test=1,
            created_at="2024-04-01T00:00:00+00:00",
        )
        assert copy.model_dir is not None
        artifact = copy.model_dir / corrupt.artifact
        artifact.write_bytes(artifact.read_bytes()[:-10] + b"0123456789")
        seen_before = len(traffic.answers)
        wait_for(lambda: len(traffic.answers) > seen_before + 200, 30, "traffic after the corrupt version")
        time.sleep(2)  # four more checks of the store
        answers = traffic.stop()
        assert served_models(api.base_url) == {promoted.version: 1.0}
        assert httpx.get(f"{api.base_url}/ready", timeout=10).json()["model_version"] == promoted.version
    failed = [answer for answer in answers if answer[0] != 200]
    assert failed == [], failed[:5]
    versions = [version for _, version in answers]
    switch = versions.index(promoted.version)
    assert set(versions[:switch]) == {champion.version} and set(versions[switch:]) == {promoted.version}
    assert corrupt.version not in versions
