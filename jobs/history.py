"""Every drift run, recorded in the snapshot database.

The status ConfigMap holds the last decision only; this table holds them all, failed runs
included, so the history survives pods, ConfigMap edits and reinstalls, and a later step (the
retrain guard) can ask how many runs in a row triggered retraining.

    python -m jobs.history [--limit 10]     # the last runs, newest first
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from streamflow import db
from streamflow.drift import Action, ExitCode
from streamflow.logs import configure_logging
from streamflow.settings import get_settings

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


def record(engine: Engine, run: DriftRunRecord) -> None:
    """Append one run (the table is created on first use: the history starts with the first run)."""
    _metadata.create_all(engine, checkfirst=True)
    values = {column.name: getattr(run, column.name) for column in drift_runs.columns if column.name != "id"}
    values["decision"] = None if run.decision is None else str(run.decision)
    with engine.begin() as conn:
        conn.execute(drift_runs.insert().values(**values))


def recent(engine: Engine, limit: int = 10) -> list[DriftRunRecord]:
    """The last `limit` runs, newest first; none when no run was ever recorded."""
    if not sa.inspect(engine).has_table(drift_runs.name):
        return []
    query = sa.select(drift_runs).order_by(drift_runs.c.finished_at.desc(), drift_runs.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [_record_of(row) for row in rows]


def _record_of(row: Any) -> DriftRunRecord:
    fields = {k: v for k, v in row.items() if k != "id"}
    fields["decision"] = None if fields["decision"] is None else Action(fields["decision"])
    finished = fields["finished_at"]
    if finished.tzinfo is None:  # SQLite keeps no zone: every stamp written here is UTC
        fields["finished_at"] = finished.replace(tzinfo=UTC)
    return DriftRunRecord(**fields)


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
