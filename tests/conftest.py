"""Session fixtures: one bootstrapped embedded-default data set shared by the tests.

Helpers live in tests/support/ (tests import them from there, never from this file).
Bootstrapping runs the real CLI (`python -m jobs.bootstrap`): SQLite snapshot tables, Parquet
offline sources derived from them, `feast apply`, materialization into the SQLite online store,
and a trained model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streamflow.settings import Settings
from tests.support.drift import DriftRun, run_drift
from tests.support.processes import TEST_USERS, data_env, must_succeed, run_module
from tools.api_process import free_port


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("embedded")
    must_succeed(run_module("jobs.bootstrap", env=data_env(data_dir, n_users=TEST_USERS)))
    return data_dir


@pytest.fixture(scope="session")
def demo_settings(demo_dir: Path) -> Settings:
    return Settings(data_dir=demo_dir, reports_dir=demo_dir / "reports", n_users=TEST_USERS)


@pytest.fixture(scope="session")
def drift_runs(demo_settings: Settings) -> dict[str, DriftRun]:
    """The two drift runs of `make demo`, in order: month_000 vs month_001, then the default
    (two latest snapshots: month_001 vs month_002). The first one is configured with a
    Pushgateway nobody listens on: its push fails, and the decision must be recorded anyway."""
    return {
        "jan_feb": run_drift(
            demo_settings,
            "--reference",
            "2024-01-31",
            "--current",
            "2024-02-29",
            pushgateway_url=f"http://127.0.0.1:{free_port()}",
        ),
        "latest": run_drift(demo_settings),
    }
