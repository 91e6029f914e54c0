"""Guarded retraining: act on drift only when it persists, and serve a new model only when it has
beaten the one being served on labelled data.

    python -m jobs.retrain [--mode dry-run|promote]

1. The guard (drift history, jobs/history.py): the last `retrain_breaches_in_row` decided drift
   runs all triggered retraining (failed runs say nothing about drift and are skipped), and the
   last promotion is older than `retrain_cooldown_days`. Otherwise the job records why it waits.
2. The duel: a challenger is trained like the bootstrap model (Feast historical retrieval,
   jobs/train.py) on the labelled month before the held-out one; the champion (the model in the
   store, the one being served) and the challenger are scored on the held-out month, the latest
   month whose labels have arrived, by ROC AUC and log loss.
3. The verdict: the challenger wins when its AUC beats the champion's by `retrain_auc_margin`
   and its log loss is not worse. In `dry-run` mode (the default) the job records and prints
   what it would do; in `promote` mode a winner is written into the model store (checksummed),
   where the API picks it up.
Every attempt is a row of `retrain_attempts`. Exit codes are the drift job's: 0 the job decided
(whatever it decided), 2 bad arguments or settings, 3 data problem, 1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Gauge
from pydantic import ValidationError
from sklearn.metrics import log_loss, roc_auc_score
from sqlalchemy.exc import SQLAlchemyError

from jobs import history, train
from jobs.drift.push import push
from jobs.drift.sinks import SinkError, StatusEvent, make_sink
from jobs.history import RetrainAttempt, RetrainOutcome
from streamflow import __version__, db, model
from streamflow.datasets import SnapshotError, snapshot_frame
from streamflow.drift import ANNOTATION_PREFIX, Action, ExitCode
from streamflow.feature_repo import open_store
from streamflow.features import TARGET, encode_frame
from streamflow.logs import configure_logging, first_line, log_event
from streamflow.settings import Settings, describe_settings_error

log = logging.getLogger("streamflow.retrain")

PUSH_JOB = "streamflow-retrain"  # its own Pushgateway group


@dataclass(frozen=True)
class GuardVerdict:
    act: bool
    outcome: RetrainOutcome | None  # why not, when it does not act
    breaches: int
    reason: str


def breaches_in_row(runs: list[history.DriftRunRecord]) -> int:
    """RETRAINING_TRIGGERED decisions in a row, newest first; failed runs are skipped."""
    count = 0
    for run in runs:
        if run.decision is None:
            continue
        if run.decision is not Action.RETRAIN:
            break
        count += 1
    return count


def guard(
    runs: list[history.DriftRunRecord],
    last_promotion: datetime | None,
    now: datetime,
    needed: int,
    cooldown: timedelta,
) -> GuardVerdict:
    """Whether a challenger is trained now, and why (runs newest first)."""
    breaches = breaches_in_row(runs)
    if breaches < needed:
        return GuardVerdict(
            False,
            RetrainOutcome.WAITING,
            breaches,
            f"{breaches} of {needed} drift runs in a row triggered retraining: waiting for "
            f"{needed - breaches} more breach{'es' if needed - breaches > 1 else ''}",
        )
    if last_promotion is not None and now - last_promotion < cooldown:
        until = (last_promotion + cooldown).isoformat(timespec="minutes")
        return GuardVerdict(
            False,
            RetrainOutcome.COOLDOWN,
            breaches,
            f"last promotion {last_promotion:%Y-%m-%d}: cooling down until {until}",
        )
    return GuardVerdict(True, None, breaches, f"{breaches} drift runs in a row triggered retraining")


@dataclass(frozen=True)
class Scores:
    auc: float
    log_loss: float


def score(estimator: object, features: np.ndarray, labels: np.ndarray) -> Scores:
    probabilities = estimator.predict_proba(features)[:, 1]  # type: ignore[attr-defined]
    return Scores(float(roc_auc_score(labels, probabilities)), float(log_loss(labels, probabilities, labels=[0, 1])))


def challenger_wins(champion: Scores, challenger: Scores, margin: float) -> tuple[bool, str]:
    better = challenger.auc >= champion.auc + margin
    calibrated = challenger.log_loss <= champion.log_loss
    verdict = (
        f"challenger AUC {challenger.auc:.4f} vs champion {champion.auc:.4f} (margin {margin}), "
        f"log loss {challenger.log_loss:.4f} vs {champion.log_loss:.4f}"
    )
    return better and calibrated, verdict


@dataclass(frozen=True)
class Duel:
    challenger: object  # the fitted estimator
    train_month: date
    holdout_month: date
    n_train: int
    n_test: int
    champion: Scores
    challenger_scores: Scores


def duel(settings: Settings, engine: sa.Engine, champion: model.ChurnModel) -> Duel:
    """Train a challenger on the month before the held-out one; score both on the held-out month."""
    months = db.list_snapshots(engine, db.labels)  # the months whose churn labels have arrived
    if len(months) < 2:
        raise SnapshotError(f"a duel needs two labelled months (one to train on, one held out); have {months}")
    train_month, holdout_month = months[-2], months[-1]
    store = open_store(settings)
    log_event(log, "training the challenger", train_month=str(train_month), holdout_month=str(holdout_month))
    train_frame = snapshot_frame(engine, store, train_month)
    challenger = train.fit(encode_frame(train_frame), train_frame[TARGET].to_numpy(), settings.seed)
    holdout = snapshot_frame(engine, store, holdout_month)
    features, labels = encode_frame(holdout), holdout[TARGET].to_numpy()
    return Duel(
        challenger=challenger,
        train_month=train_month,
        holdout_month=holdout_month,
        n_train=len(train_frame),
        n_test=len(holdout),
        champion=score(champion.estimator, features, labels),
        challenger_scores=score(challenger, features, labels),
    )


def attempt(settings: Settings, now: datetime | None = None) -> RetrainAttempt:
    """One guarded attempt, recorded in the history; returns what was recorded."""
    now = now or datetime.now(UTC)
    engine = db.make_engine(settings)
    verdict = guard(
        history.recent(engine, limit=max(50, settings.retrain_breaches_in_row * 4)),
        history.last_promotion(engine),
        now,
        settings.retrain_breaches_in_row,
        timedelta(days=settings.retrain_cooldown_days),
    )
    if not verdict.act:
        assert verdict.outcome is not None
        result = RetrainAttempt(
            settings.retrain_mode, verdict.outcome, verdict.reason, verdict.breaches, __version__, now
        )
        history.record(engine, result)
        return result
    champion = model.load(settings)
    match = duel(settings, engine, champion)
    wins, comparison = challenger_wins(match.champion, match.challenger_scores, settings.retrain_auc_margin)
    challenger_version = None
    if not wins:
        outcome, reason = RetrainOutcome.KEPT_CHAMPION, f"{verdict.reason}; {comparison}: champion kept"
    elif settings.retrain_mode == "dry-run":
        outcome, reason = RetrainOutcome.WOULD_PROMOTE, f"{verdict.reason}; {comparison}: would promote (dry-run)"
    else:
        stored = model.save(
            match.challenger,
            settings,
            trained_on=str(match.train_month),
            algorithm="sklearn.HistGradientBoostingClassifier",
            auc=round(match.challenger_scores.auc, 4),
            n_train=match.n_train,
            n_test=match.n_test,
            created_at=now.isoformat(timespec="seconds"),
        )
        challenger_version = stored.version
        outcome, reason = RetrainOutcome.PROMOTED, f"{verdict.reason}; {comparison}: promoted {stored.version}"
    result = RetrainAttempt(
        settings.retrain_mode,
        outcome,
        reason,
        verdict.breaches,
        __version__,
        now,
        champion_version=champion.version,
        challenger_version=challenger_version,
        train_month=match.train_month,
        holdout_month=match.holdout_month,
        champion_auc=match.champion.auc,
        challenger_auc=match.challenger_scores.auc,
        champion_log_loss=match.champion.log_loss,
        challenger_log_loss=match.challenger_scores.log_loss,
    )
    history.record(engine, result)
    return result


def attempt_line(result: RetrainAttempt) -> str:
    """The job's one line on stdout, e.g. `[retrain] mode=dry-run breaches=1 -> waiting: ...`."""
    return f"[retrain] mode={result.mode} breaches={result.breaches} -> {result.outcome}: {result.reason}"


EVENT_REASONS = {
    RetrainOutcome.WAITING: "RetrainWaiting",
    RetrainOutcome.COOLDOWN: "RetrainCooldown",
    RetrainOutcome.KEPT_CHAMPION: "ChampionKept",
    RetrainOutcome.WOULD_PROMOTE: "ChallengerWouldWin",
    RetrainOutcome.PROMOTED: "ChallengerPromoted",
}


def attempt_annotations(result: RetrainAttempt) -> dict[str, str]:
    """The attempt on the status ConfigMap, beside the drift decision (every value a string)."""
    fields = {
        "retrain-outcome": str(result.outcome),
        "retrain-reason": result.reason,
        "retrain-mode": result.mode,
        "retrain-breaches": str(result.breaches),
        "retrain-champion": result.champion_version or "",
        "retrain-challenger": result.challenger_version or "",
        "retrain-finished-at": result.finished_at.isoformat(timespec="seconds"),
    }
    return {ANNOTATION_PREFIX + k: v for k, v in fields.items()}


def attempt_event(result: RetrainAttempt) -> StatusEvent:
    """A Warning when a model was promoted: what serves has changed."""
    return StatusEvent(
        EVENT_REASONS[result.outcome],
        f"mode={result.mode} outcome={result.outcome} {result.reason}",
        warning=result.outcome is RetrainOutcome.PROMOTED,
    )


def build_registry(result: RetrainAttempt) -> CollectorRegistry:
    """The attempt as metrics for the dashboards (Pushgateway group `streamflow-retrain`)."""
    registry = CollectorRegistry()

    def gauge(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, documentation, labels, registry=registry)

    gauge(
        "streamflow_retrain_attempt_info",
        "The last retrain attempt's outcome and models (value 1).",
        ("outcome", "mode", "champion", "challenger"),
    ).labels(str(result.outcome), result.mode, result.champion_version or "", result.challenger_version or "").set(1)
    gauge("streamflow_retrain_breaches_in_row", "Drift runs in a row that triggered retraining.").set(result.breaches)
    gauge("streamflow_retrain_promoted", "1 when the last attempt promoted a new model.").set(
        int(result.outcome is RetrainOutcome.PROMOTED)
    )
    gauge("streamflow_retrain_last_attempt_timestamp_seconds", "Unix time of the last attempt.").set(
        result.finished_at.timestamp()
    )
    scores = gauge("streamflow_retrain_auc", "Held-out AUC of the last duel, by model role.", ("role",))
    for role, auc in (("champion", result.champion_auc), ("challenger", result.challenger_auc)):
        if auc is not None:
            scores.labels(role).set(auc)
    return registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.retrain", description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["dry-run", "promote"], help="default: STREAMFLOW_RETRAIN_MODE (dry-run)")
    args = parser.parse_args(argv)
    try:
        settings = Settings(**({"retrain_mode": args.mode} if args.mode else {}))
    except ValidationError as exc:
        print(f"retrain job failed (bad settings): {describe_settings_error(exc)}", file=sys.stderr)
        return ExitCode.USAGE
    configure_logging(settings.log_level, settings.log_format)
    failures: list[tuple[tuple[type[BaseException], ...], ExitCode, str]] = [
        ((SnapshotError, SQLAlchemyError, model.ModelArtifactError), ExitCode.DATA, "data"),
        ((SinkError,), ExitCode.SINK, "status not recorded"),
    ]
    try:
        sink = make_sink(settings)
        result = attempt(settings)
        sink.annotate(attempt_annotations(result), attempt_event(result))
    except tuple(t for types, _, _ in failures for t in types) as exc:
        code, kind = next((code, kind) for types, code, kind in failures if isinstance(exc, types))
        reason = first_line(exc)
        log_event(log, "retrain job failed", logging.ERROR, kind=kind, reason=reason, exit_code=code)
        if code == ExitCode.DATA:
            history.record_failure(
                settings, RetrainAttempt(settings.retrain_mode, RetrainOutcome.FAILED, reason, 0, __version__)
            )
        print(f"retrain job failed ({kind}): {reason}", file=sys.stderr)
        return code
    log_event(log, "retrain attempt", outcome=str(result.outcome), reason=result.reason, mode=result.mode)
    if settings.pushgateway_url:  # after the record and the annotation: a failed push loses nothing
        push(settings.pushgateway_url, build_registry(result), job=PUSH_JOB)
    print(attempt_line(result), flush=True)
    return ExitCode.OK


if __name__ == "__main__":
    raise SystemExit(main())
