"""Every drift run and every retrain attempt, recorded in the snapshot database.

The status ConfigMap holds the last decision only; these tables hold them all, failed runs
included, so the history survives pods, ConfigMap edits and reinstalls, and the retrain guard
(jobs/retrain.py) can ask how many runs in a row triggered retraining and when the last
promotion was.

    python -m jobs.history [--limit 10]     # the last runs, newest first
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from streamflow import db
from streamflow.drift import Action, ExitCode
from streamflow.logs import configure_logging, first_line, log_event
from streamflow.settings import Settings, get_settings

T = TypeVar("T", "DriftRunRecord", "RetrainAttempt")
log = logging.getLogger("streamflow.history")

_metadata = sa.MetaData()
drift_runs = sa.Table(
    "drift_runs",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("reference", sa.Date, nullable=True),  # None when the run failed before choosing it
    sa.Column("current", sa.Date, nullable=True),
    sa.Column("exit_code", sa.Integer, nullable=False),
    sa.Column("decision", sa.String(32), nullable=True),  # an Action; None for a failed run
    sa.Column("drift_share", sa.Float, nullable=True),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("target_drift", sa.Float, nullable=True),
    sa.Column("feature_scores", sa.JSON, nullable=True),  # {feature: drift distance}
    sa.Column("drifted_features", sa.JSON, nullable=True),
    sa.Column("report_html", sa.Text, nullable=True),
    sa.Column("report_json", sa.Text, nullable=True),
    sa.Column("job_version", sa.String(32), nullable=False),
    sa.Column("error", sa.Text, nullable=True),  # the one-line reason of a failed run
)
retrain_attempts = sa.Table(
    "retrain_attempts",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(24), nullable=False),  # a RetrainOutcome
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("breaches", sa.Integer, nullable=False),  # RETRAINING_TRIGGERED runs in a row
    sa.Column("champion_version", sa.String(64), nullable=True),
    sa.Column("challenger_version", sa.String(64), nullable=True),  # set when it was stored
    sa.Column("train_month", sa.Date, nullable=True),
    sa.Column("holdout_month", sa.Date, nullable=True),
    sa.Column("champion_auc", sa.Float, nullable=True),
    sa.Column("challenger_auc", sa.Float, nullable=True),
    sa.Column("champion_log_loss", sa.Float, nullable=True),
    sa.Column("challenger_log_loss", sa.Float, nullable=True),
    sa.Column("job_version", sa.String(32), nullable=False),
)


@dataclass(frozen=True)
class DriftRunRecord:
    """One row of `drift_runs`: a decided run carries the decision, a failed one its reason."""

    exit_code: int
    threshold: float
    job_version: str
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    reference: date | None = None
    current: date | None = None
    decision: Action | None = None
    drift_share: float | None = None
    target_drift: float | None = None
    feature_scores: dict[str, float] | None = None
    drifted_features: list[str] | None = None
    report_html: str | None = None
    report_json: str | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.exit_code == ExitCode.OK


class RetrainOutcome(StrEnum):
    WAITING = "waiting"  # not enough RETRAINING_TRIGGERED runs in a row
    COOLDOWN = "cooldown"  # the last promotion is too recent
    KEPT_CHAMPION = "kept-champion"  # the challenger did not win
    WOULD_PROMOTE = "would-promote"  # dry-run: the challenger won
    PROMOTED = "promoted"
    FAILED = "failed"


@dataclass(frozen=True)
class RetrainAttempt:
    """One row of `retrain_attempts`: what the guard saw, the duel's scores, and the outcome."""

    mode: str
    outcome: RetrainOutcome
    reason: str
    breaches: int
    job_version: str
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    champion_version: str | None = None
    challenger_version: str | None = None
    train_month: date | None = None
    holdout_month: date | None = None
    champion_auc: float | None = None
    challenger_auc: float | None = None
    champion_log_loss: float | None = None
    challenger_log_loss: float | None = None


# Each record type, its table, and how a stored value turns back into the record's type
_TABLES: dict[type, tuple[sa.Table, dict[str, Callable[[Any], Any]]]] = {
    DriftRunRecord: (drift_runs, {"decision": Action}),
    RetrainAttempt: (retrain_attempts, {"outcome": RetrainOutcome}),
}


def record(engine: Engine, entry: DriftRunRecord | RetrainAttempt) -> None:
    """Append one entry (tables are created on first use: the history starts with the first run)."""
    table, _ = _TABLES[type(entry)]
    _metadata.create_all(engine, checkfirst=True)
    values = {column.name: getattr(entry, column.name) for column in table.columns if column.name != "id"}
    values = {k: str(v) if isinstance(v, StrEnum) else v for k, v in values.items()}
    with engine.begin() as conn:
        conn.execute(table.insert().values(**values))


def record_failure(settings: Settings, entry: DriftRunRecord | RetrainAttempt) -> None:
    """Best effort, for a job that is failing: the failure goes into the history unless the
    database is what failed (then a warning; the job's own one-line reason still follows)."""
    try:
        record(db.make_engine(settings), entry)
    except SQLAlchemyError as exc:
        log_event(log, "failure not recorded in the history", logging.WARNING, error=first_line(exc))


def _recent(engine: Engine, kind: type[T], limit: int, *where: sa.ColumnElement[bool]) -> list[T]:
    table, converters = _TABLES[kind]
    if not sa.inspect(engine).has_table(table.name):
        return []
    query = sa.select(table).where(*where).order_by(table.c.finished_at.desc(), table.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    entries = []
    for row in rows:
        fields = {k: v for k, v in row.items() if k != "id"}
        for name, convert in converters.items():
            fields[name] = None if fields[name] is None else convert(fields[name])
        if fields["finished_at"].tzinfo is None:  # SQLite keeps no zone: every stamp written here is UTC
            fields["finished_at"] = fields["finished_at"].replace(tzinfo=UTC)
        entries.append(kind(**fields))
    return entries


def recent(engine: Engine, limit: int = 10) -> list[DriftRunRecord]:
    """The last `limit` drift runs, newest first; none when no run was ever recorded."""
    return _recent(engine, DriftRunRecord, limit)


def recent_attempts(engine: Engine, limit: int = 10) -> list[RetrainAttempt]:
    """The last `limit` retrain attempts, newest first."""
    return _recent(engine, RetrainAttempt, limit)


def last_promotion(engine: Engine) -> datetime | None:
    """When a challenger was last promoted; None if never (the bootstrap model is no promotion)."""
    promoted = _recent(engine, RetrainAttempt, 1, retrain_attempts.c.outcome == str(RetrainOutcome.PROMOTED))
    return promoted[0].finished_at if promoted else None


def format_runs(runs: list[DriftRunRecord]) -> str:
    """A table for people: one line per run, newest first."""
    if not runs:
        return "no drift run recorded yet: run `make drift`"
    lines = [f"{'finished (UTC)':<20} {'reference':<10} {'current':<10} {'share':>6} {'exit':>4}  outcome"]
    for run in runs:
        share = "" if run.drift_share is None else f"{run.drift_share:.2f}"
        outcome = str(run.decision) if run.succeeded else f"failed: {run.error}"
        lines.append(
            f"{run.finished_at.strftime('%Y-%m-%d %H:%M:%S'):<20} {run.reference or '-'!s:<10} "
            f"{run.current or '-'!s:<10} {share:>6} {run.exit_code:>4}  {outcome}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.history", description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=10, help="how many runs to show (default 10)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    runs = recent(db.make_engine(settings), args.limit)
    if args.json:
        for run in runs:
            print(json.dumps(run.__dict__, default=str))
    else:
        print(format_runs(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
