"""Run the drift job as the CronJob runs it and read what it left behind."""

from __future__ import annotations

import json
from dataclasses import dataclass

from streamflow.settings import Settings
from tests.support.processes import data_env, run_module


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
