"""Drift job CLI: compare a reference snapshot with a current one and record the decision.

    python -m jobs.drift [--reference 2024-01-31] [--current 2024-02-29] [--threshold 0.30]

Without dates it compares the two latest snapshots in the database, so a CronJob needs no
edit each month. Exit codes (streamflow.drift.ExitCode, documented for CronJob alerting):
  0  a decision was made (NO_ACTION or RETRAINING_TRIGGERED)
  2  bad arguments or settings
  3  data problem: database unreachable, snapshot missing/empty, a feature column unusable
  4  the Evidently report did not hold the expected results
  5  the status ConfigMap could not be annotated
  1  anything else
On any failure nothing is recorded: the previous status annotations stay as they were, and no
report file appears under its final name.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from jobs import history
from jobs.drift import push, report
from jobs.drift.decision import Decision, decide, decision_line
from jobs.drift.sinks import SinkError, StatusSink, decision_annotations, decision_event, make_sink
from streamflow import __version__, db
from streamflow.datasets import SnapshotError, load_snapshot, sample_rows
from streamflow.drift import ExitCode
from streamflow.logs import configure_logging, first_line, log_event
from streamflow.settings import Settings, describe_settings_error

log = logging.getLogger("streamflow.drift")


class UsageError(Exception):
    pass


def resolve_snapshots(available: list[date], reference: date | None, current: date | None) -> tuple[date, date]:
    """Explicit dates win; otherwise the two latest snapshots (current = latest)."""
    if current is None:
        later = [d for d in available if reference is None or d > reference]
        if not later:
            raise SnapshotError(f"no snapshot after reference {reference} (have {[str(d) for d in available]})")
        current = later[-1]
    if reference is None:
        earlier = [d for d in available if d < current]
        if not earlier:
            raise SnapshotError(f"no snapshot before current {current} (have {[str(d) for d in available]})")
        reference = earlier[-1]
    if reference >= current:
        raise UsageError(f"--reference ({reference}) must be before --current ({current})")
    return reference, current


def run(
    settings: Settings,
    sink: StatusSink,
    reference: date | None,
    current: date | None,
    threshold: float,
    output_dir: Path,
) -> Decision:
    started = time.perf_counter()
    engine = db.make_engine(settings)
    reference, current = resolve_snapshots(db.list_snapshots(engine), reference, current)
    log_event(
        log,
        "drift run started",
        reference=reference.isoformat(),
        current=current.isoformat(),
        threshold=threshold,
        database=settings.database_url_safe,
        sink=sink.describe(),
        pushgateway=settings.pushgateway_url or "off",
    )

    reference_frame = load_snapshot(engine, reference)
    current_frame = load_snapshot(engine, current)
    rows = {"reference": len(reference_frame), "current": len(current_frame)}
    sampling = None
    if settings.drift_sample_rows is not None:
        reference_frame, current_frame = (
            sample_rows(frame, settings.drift_sample_rows, settings.seed) for frame in (reference_frame, current_frame)
        )
        sampling = {
            "rows": settings.drift_sample_rows,
            "seed": settings.seed,
            "reference_rows_used": len(reference_frame),
            "current_rows_used": len(current_frame),
        }
        log_event(
            log,
            "sampling both months (explicit setting; distances carry sampling error)",
            logging.WARNING,
            **sampling,
            **{f"{k}_rows": v for k, v in rows.items()},
        )
    log_event(log, "running Evidently", reference_rows=len(reference_frame), current_rows=len(current_frame))
    snapshot, report_dict, result = report.run(reference_frame, current_frame, threshold)

    stem = f"drift_{reference.isoformat()}_vs_{current.isoformat()}"
    html_path, json_path = output_dir / f"{stem}.html", output_dir / f"{stem}.json"
    decision = Decision(
        action=decide(result.drift_share, threshold),
        drift_share=result.drift_share,
        threshold=threshold,
        target_drift=result.target.score,
        target_drifted=result.target.drifted,
        drifted_features=tuple(result.drifted_features),
        reference=reference,
        current=current,
        report_html=str(html_path),
        report_json=str(json_path),
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        job_version=__version__,
    )
    extra = report.summary(result) | {
        "decision": decision.action,
        "threshold": threshold,
        "reference": reference.isoformat(),
        "current": current.isoformat(),
        "rows": rows,
        "sampling": sampling,
        "job_version": __version__,
    }
    report.save(snapshot, report_dict, extra, html_path, json_path)
    # History first: a run whose decision reached the ConfigMap is always in the history too.
    history.record(engine, decided_run(decision, result))
    sink.annotate(decision_annotations(decision), decision_event(decision))
    if settings.pushgateway_url:  # after the annotation: a failed push must not lose the decision
        push.push(
            settings.pushgateway_url,
            push.build_registry(decision, result, extra["rows"], time.perf_counter() - started, time.time()),
        )
    log_event(
        log,
        "drift decision",
        decision=decision.action,
        drift_share=round(decision.drift_share, 4),
        threshold=threshold,
        target_drift=round(decision.target_drift, 4),
        drifted_features=list(decision.drifted_features),
        reference=reference.isoformat(),
        current=current.isoformat(),
        report_json=str(json_path),
        status=sink.describe(),
        seconds=round(time.perf_counter() - started, 2),
    )
    return decision


def decided_run(decision: Decision, result: report.DriftResult) -> history.DriftRunRecord:
    return history.DriftRunRecord(
        exit_code=ExitCode.OK,
        threshold=decision.threshold,
        job_version=decision.job_version,
        reference=decision.reference,
        current=decision.current,
        decision=decision.action,
        drift_share=decision.drift_share,
        target_drift=decision.target_drift,
        feature_scores={f.column: f.score for f in result.features},
        drifted_features=list(decision.drifted_features),
        report_html=decision.report_html,
        report_json=decision.report_json,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.drift",
        description=__doc__.split("\n")[0],
        epilog="Settings come from STREAMFLOW_* environment variables.",
    )
    parser.add_argument("--reference", type=date.fromisoformat, help="reference snapshot date (YYYY-MM-DD)")
    parser.add_argument("--current", type=date.fromisoformat, help="current snapshot date (YYYY-MM-DD)")
    parser.add_argument("--threshold", type=float, help="drift_share at which to retrain (default 0.30)")
    parser.add_argument("--output-dir", type=Path, help="where reports go (default: <reports_dir>/drift)")
    parser.add_argument(
        "--sample-rows",
        type=int,
        metavar="N",
        help="compare a seeded random sample of N users per month (default: all users)",
    )
    parser.add_argument("--sink", choices=["file", "configmap"], help="where the status goes")
    parser.add_argument("--log-format", choices=["plain", "json"])
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    args = parser.parse_args(argv)
    if args.threshold is not None and not 0.0 < args.threshold <= 1.0:
        parser.error("--threshold must be in (0, 1]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = {
        k: v
        for k, v in (
            ("status_sink", args.sink),
            ("log_format", args.log_format),
            ("drift_sample_rows", args.sample_rows),
        )
        if v
    }
    if args.verbose or args.quiet:
        overrides["log_level"] = "DEBUG" if args.verbose else "WARNING"
    try:
        settings = Settings(**overrides)  # flags win over STREAMFLOW_* variables
    except ValidationError as exc:
        print(f"drift job failed (bad settings): {describe_settings_error(exc)}", file=sys.stderr)
        return ExitCode.USAGE
    configure_logging(settings.log_level, settings.log_format)
    threshold = args.threshold if args.threshold is not None else settings.drift_threshold
    output_dir = args.output_dir or settings.reports_dir / "drift"

    failures: list[tuple[type[BaseException] | tuple[type[BaseException], ...], ExitCode, str]] = [
        (UsageError, ExitCode.USAGE, "bad arguments"),
        ((SnapshotError, SQLAlchemyError), ExitCode.DATA, "data"),
        (report.ReportShapeError, ExitCode.REPORT, "unexpected Evidently report"),
        (SinkError, ExitCode.SINK, "status not recorded"),
    ]
    try:
        sink = make_sink(settings)
        decision = run(
            settings,
            sink,
            args.reference or settings.drift_reference,
            args.current or settings.drift_current,
            threshold,
            output_dir,
        )
    except Exception as exc:  # every failure ends as one line + an exit code, never a traceback
        code, kind = ExitCode.UNEXPECTED, "unexpected error"
        for types, exit_code, label in failures:
            if isinstance(exc, types):
                code, kind = exit_code, label
                break
        reason = first_line(exc)
        if isinstance(exc, SQLAlchemyError):
            reason = f"database {settings.database_url_safe} unusable: {type(exc).__name__}: {reason}"
        log.debug("drift job failure", exc_info=True)
        history.record_failure(
            settings,
            history.DriftRunRecord(
                exit_code=code,
                threshold=threshold,
                job_version=__version__,
                reference=args.reference or settings.drift_reference,
                current=args.current or settings.drift_current,
                error=reason,
            ),
        )
        log_event(log, "drift job failed", logging.ERROR, kind=kind, reason=reason, exit_code=code)
        print(f"drift job failed ({kind}): {reason}", file=sys.stderr)
        return code
    print(decision_line(decision), flush=True)
    return ExitCode.OK
