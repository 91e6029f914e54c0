"""Session fixtures: one bootstrapped embedded-default data set shared by the tests.

Bootstrapping runs the real CLI (`python -m jobs.bootstrap`): SQLite snapshot tables, Parquet
offline sources derived from them, `feast apply`, materialization into the SQLite online store,
and a trained model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("FEAST_USAGE", "False")

from api.process import free_port
from streamflow.settings import Settings
from tests.support.processes import data_env, must_succeed, run_module

TEST_USERS = 2000


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("embedded")
    must_succeed(run_module("jobs.bootstrap", env=data_env(data_dir, n_users=TEST_USERS)))
    return data_dir


@pytest.fixture(scope="session")
def demo_settings(demo_dir: Path) -> Settings:
    return Settings(data_dir=demo_dir, reports_dir=demo_dir / "reports", n_users=TEST_USERS)


@dataclass
class DriftRun:
    returncode: int
    stdout: str
    stderr: str
    status: dict  # the status ConfigMap object after the run

    @property
    def last_line(self) -> str:
        return self.stdout.strip().splitlines()[-1]

    @property
    def annotations(self) -> dict[str, str]:
        return self.status["metadata"]["annotations"]


def read_status(settings: Settings) -> dict:
    assert settings.status_file is not None
    return json.loads(settings.status_file.read_text()) if settings.status_file.exists() else {}


def run_drift(settings: Settings, *args: str, **extra_settings: object) -> DriftRun:
    result = run_module("jobs.drift", *args, env=data_env(settings.data_dir, **extra_settings))
    return DriftRun(result.returncode, result.stdout, result.stderr, read_status(settings))


def assert_failed_cleanly(run: DriftRun, before: dict, code: int, *needles: str) -> str:
    """A failed drift run: exit `code`, no decision line, exactly one reason line, last on stderr,
    naming every needle, no traceback, the previous status untouched. Returns the reason line."""
    assert run.returncode == code, (run.returncode, run.stderr[-2000:])
    assert run.stdout.strip() == ""  # no decision line
    lines = run.stderr.strip().splitlines()
    reasons = [line for line in lines if line.startswith("drift job failed")]
    assert reasons == lines[-1:] and "Traceback" not in run.stderr, run.stderr[-2000:]
    for needle in needles:
        assert needle in reasons[0], reasons[0]
    assert run.status == before, "a failed run must leave the previous status untouched"
    return reasons[0]


@pytest.fixture(scope="session")
def drift_runs(demo_settings: Settings) -> dict[str, DriftRun]:
    """The two drift runs of `make demo`, in order: month_000 vs month_001, then the default
    (two latest snapshots: month_001 vs month_002). The first one is configured with a
    Pushgateway nobody listens on: its push fails, and the decision must be recorded anyway."""
    return {
        "jan_feb": run_drift(demo_settings, "--reference", "2024-01-31", "--current", "2024-02-29",
                             pushgateway_url=f"http://127.0.0.1:{free_port()}"),
        "latest": run_drift(demo_settings),
    }
