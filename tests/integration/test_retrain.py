"""The guarded retrain job on a copy of the demo data: it waits, refuses a worse challenger, and
promotes a better one into the checksummed model store, recording every attempt."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sklearn.dummy import DummyClassifier

from jobs import history, retrain
from jobs.history import RetrainOutcome
from streamflow import db, model
from streamflow.datasets import load_snapshot
from streamflow.drift import ANNOTATION_PREFIX, Action, ExitCode
from streamflow.features import TARGET, encode_frame
from streamflow.settings import Settings
from tests.support.drift import read_status
from tests.support.processes import TEST_USERS, data_env, must_succeed, run_module


@pytest.fixture
def copy(demo_dir: Path, drift_runs, tmp_path: Path) -> Path:
    """The demo data whose history holds exactly `make demo`'s two drift decisions, in order
    (NO_ACTION, then RETRAINING_TRIGGERED): other tests add runs to the shared data set, and the
    guard reads the newest ones."""
    target = tmp_path / "data"
    shutil.copytree(demo_dir, target)
    engine = db.make_engine(settings_of(target))
    with engine.begin() as conn:
        conn.execute(history.drift_runs.delete())
        if sa.inspect(conn).has_table(history.retrain_attempts.name):
            conn.execute(history.retrain_attempts.delete())
    for run in (drift_runs["jan_feb"], drift_runs["latest"]):
        notes = {k.removeprefix(ANNOTATION_PREFIX): v for k, v in run.annotations.items()}
        history.record(
            engine,
            history.DriftRunRecord(
                exit_code=ExitCode.OK,
                threshold=float(notes["threshold"]),
                job_version=notes["job-version"],
                reference=date.fromisoformat(notes["reference"]),
                current=date.fromisoformat(notes["current"]),
                decision=Action(notes["decision"]),
                drift_share=float(notes["drift-share"]),
            ),
        )
    return target


def drift_annotations(status: dict) -> dict[str, str]:
    """The status ConfigMap's annotations but the retrain job's own."""
    notes = status["metadata"]["annotations"]
    return {k: v for k, v in notes.items() if not k.startswith(ANNOTATION_PREFIX + "retrain-")}


def settings_of(data_dir: Path, **values: Any) -> Settings:
    return Settings(data_dir=data_dir, reports_dir=data_dir / "reports", n_users=TEST_USERS, **values)


def test_one_breach_waits_for_a_second(copy: Path) -> None:
    before = drift_annotations(read_status(settings_of(copy)))
    result = must_succeed(run_module("jobs.retrain", env=data_env(copy)))
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("[retrain] mode=dry-run breaches=1 -> waiting: 1 of 2 drift runs in a row"), line
    assert "waiting for 1 more breach" in line
    recorded = history.recent_attempts(db.make_engine(settings_of(copy)), limit=1)[0]
    assert recorded.outcome is RetrainOutcome.WAITING and recorded.breaches == 1
    status = read_status(settings_of(copy))
    assert status["metadata"]["annotations"][ANNOTATION_PREFIX + "retrain-outcome"] == "waiting"
    assert drift_annotations(status) == before  # the drift decision's annotations stay as they were


def test_a_challenger_that_does_not_win_by_the_margin_is_refused(copy: Path) -> None:
    settings = settings_of(copy, retrain_breaches_in_row=1, retrain_auc_margin=0.5, retrain_mode="promote")
    champion = model.load(settings).version
    result = retrain.attempt(settings)
    assert result.outcome is RetrainOutcome.KEPT_CHAMPION and result.challenger_version is None
    assert result.champion_version == champion and model.load(settings).version == champion
    assert result.holdout_month is not None and str(result.holdout_month) == "2024-03-31"
    assert result.champion_auc is not None and 0.5 < result.champion_auc < 1


def test_a_better_challenger_is_promoted_then_the_cooldown_holds(copy: Path) -> None:
    settings = settings_of(copy, retrain_breaches_in_row=1, retrain_mode="promote")
    # A champion that knows nothing (the churn rate for everyone): any real model beats it
    january = load_snapshot(db.make_engine(settings), db.list_snapshots(db.make_engine(settings))[0])
    know_nothing = DummyClassifier(strategy="prior").fit(encode_frame(january), january[TARGET].to_numpy())
    weak = model.save(
        know_nothing,
        settings,
        trained_on="2024-01-31",
        algorithm="dummy",
        auc=0.5,
        n_train=len(january),
        n_test=0,
        created_at="2024-02-01T00:00:00+00:00",
    )
    dry = retrain.attempt(settings_of(copy, retrain_breaches_in_row=1, retrain_mode="dry-run"))
    assert dry.outcome is RetrainOutcome.WOULD_PROMOTE and model.load(settings).version == weak.version
    promoted = retrain.attempt(settings)
    assert promoted.outcome is RetrainOutcome.PROMOTED and promoted.champion_version == weak.version
    assert promoted.challenger_auc is not None and promoted.challenger_auc > 0.7
    served = model.load(settings)  # checksum verified on load
    assert served.version == promoted.challenger_version and served.metadata.trained_on == "2024-02-29"
    again = retrain.attempt(settings)
    assert again.outcome is RetrainOutcome.COOLDOWN and model.load(settings).version == served.version
    outcomes = [a.outcome for a in history.recent_attempts(db.make_engine(settings), limit=3)]
    assert outcomes == [RetrainOutcome.COOLDOWN, RetrainOutcome.PROMOTED, RetrainOutcome.WOULD_PROMOTE]


def test_a_failed_attempt_is_recorded_in_one_line_and_changes_nothing(copy: Path) -> None:
    settings = settings_of(copy)
    engine = db.make_engine(settings)
    with engine.begin() as conn:  # the labels of every month but the first have not arrived
        conn.execute(db.labels.delete().where(db.labels.c.period_start > db.snapshot_timestamp(date(2024, 1, 31))))
    status, champion = read_status(settings), model.load(settings).version
    result = run_module("jobs.retrain", "--mode", "promote", env=data_env(copy, retrain_breaches_in_row=1))
    assert result.returncode == ExitCode.DATA, result.stderr[-2000:]
    reason = result.stderr.strip().splitlines()[-1]
    assert (
        reason.startswith("retrain job failed (data): a duel needs two labelled months")
        and "Traceback" not in result.stderr
    )
    newest = history.recent_attempts(engine, limit=1)[0]
    assert newest.outcome is RetrainOutcome.FAILED and reason.endswith(newest.reason)
    assert read_status(settings) == status and model.load(settings).version == champion
