"""Each drift run of the real CLI lands in the history table, failed runs included."""

from __future__ import annotations

from datetime import date

from jobs import history
from streamflow import db
from streamflow.drift import ANNOTATION_PREFIX, ExitCode
from streamflow.features import FEATURE_NAMES
from streamflow.settings import Settings
from tests.support.drift import read_status, run_drift
from tests.support.processes import data_env, must_succeed, run_module


def test_every_decision_is_in_the_history_with_its_scores(demo_settings: Settings, drift_runs) -> None:
    runs = {run.report_json: run for run in history.recent(db.make_engine(demo_settings), limit=1000)}
    for drift_run in drift_runs.values():
        notes = drift_run.annotations
        recorded = runs[notes[ANNOTATION_PREFIX + "report-json"]]
        assert recorded.exit_code == ExitCode.OK and recorded.error is None
        assert str(recorded.decision) == notes[ANNOTATION_PREFIX + "decision"]
        assert f"{recorded.drift_share:.4f}" == notes[ANNOTATION_PREFIX + "drift-share"]
        assert (str(recorded.reference), str(recorded.current)) == (
            notes[ANNOTATION_PREFIX + "reference"],
            notes[ANNOTATION_PREFIX + "current"],
        )
        assert set(recorded.feature_scores or {}) == set(FEATURE_NAMES)
        drifted = {name for name, score in (recorded.feature_scores or {}).items() if score >= 0.1}
        assert drifted == set(recorded.drifted_features or [])


def test_a_failed_run_is_recorded_with_its_reason(demo_settings: Settings, drift_runs) -> None:
    before = read_status(demo_settings)
    run = run_drift(demo_settings, "--reference", "2024-01-31", "--current", "2030-01-31")
    assert run.returncode == ExitCode.DATA and run.status == before
    newest = history.recent(db.make_engine(demo_settings), limit=1)[0]
    assert newest.exit_code == ExitCode.DATA and newest.decision is None
    assert newest.current == date(2030, 1, 31)
    reason = run.stderr.strip().splitlines()[-1]
    assert newest.error and reason.endswith(newest.error)


def test_make_status_local_prints_the_history(demo_settings: Settings, drift_runs) -> None:
    out = must_succeed(run_module("jobs.history", "--limit", "50", env=data_env(demo_settings.data_dir))).stdout
    assert out.splitlines()[0].startswith("finished (UTC)")
    assert "RETRAINING_TRIGGERED" in out and "NO_ACTION" in out
