"""The drift-run history: what is written is what is read back, newest first."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from jobs import history
from streamflow.drift import Action, ExitCode


def _engine(tmp_path: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{tmp_path / 'history.db'}")


def test_runs_come_back_newest_first_with_their_types(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    assert history.recent(engine) == []  # no table yet: no history, no error
    start = datetime(2024, 3, 1, 6, 0, tzinfo=UTC)
    decided = history.DriftRunRecord(
        exit_code=ExitCode.OK,
        threshold=0.3,
        job_version="0.1.0",
        finished_at=start,
        reference=date(2024, 1, 31),
        current=date(2024, 2, 29),
        decision=Action.NO_ACTION,
        drift_share=0.0714,
        target_drift=0.01,
        feature_scores={"monthly_fee": 0.02, "skips_7d": 0.13},
        drifted_features=["skips_7d"],
        report_html="r.html",
        report_json="r.json",
    )
    failed = history.DriftRunRecord(
        exit_code=ExitCode.DATA,
        threshold=0.3,
        job_version="0.1.0",
        finished_at=start + timedelta(days=1),
        current=date(2030, 1, 31),
        error="no snapshot for 2030-01-31",
    )
    history.record(engine, decided)
    history.record(engine, failed)
    assert history.recent(engine) == [failed, decided]
    assert history.recent(engine, limit=1) == [failed]
    newest, oldest = history.recent(engine)
    assert oldest.decision is Action.NO_ACTION and oldest.succeeded and not newest.succeeded


def test_the_table_says_what_happened(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    assert "no drift run recorded yet" in history.format_runs(history.recent(engine))
    history.record(
        engine,
        history.DriftRunRecord(
            exit_code=ExitCode.OK,
            threshold=0.3,
            job_version="0",
            reference=date(2024, 2, 29),
            current=date(2024, 3, 31),
            decision=Action.RETRAIN,
            drift_share=0.5,
        ),
    )
    history.record(
        engine,
        history.DriftRunRecord(
            exit_code=ExitCode.SINK, threshold=0.3, job_version="0", error="configmaps is forbidden"
        ),
    )
    lines = history.format_runs(history.recent(engine)).splitlines()
    assert len(lines) == 3 and "failed: configmaps is forbidden" in lines[1]
    assert "2024-02-29" in lines[2] and "0.50" in lines[2] and lines[2].endswith("RETRAINING_TRIGGERED")
