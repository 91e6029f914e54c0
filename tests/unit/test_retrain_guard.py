"""The retrain guard and the duel's verdict: each rule with a case that acts and one that does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.history import DriftRunRecord, RetrainOutcome
from jobs.retrain import Scores, challenger_wins, guard
from streamflow.drift import Action, ExitCode

NOW = datetime(2024, 4, 1, 6, 0, tzinfo=UTC)
COOLDOWN = timedelta(days=30)


def runs(*decisions: Action | None) -> list[DriftRunRecord]:
    """Drift runs newest first; None is a failed run."""
    return [
        DriftRunRecord(exit_code=ExitCode.OK if d else ExitCode.DATA, threshold=0.3, job_version="0", decision=d)
        for d in decisions
    ]


R, N = Action.RETRAIN, Action.NO_ACTION


@pytest.mark.parametrize(
    ("history", "needed", "acts", "breaches"),
    [
        (runs(R, R), 2, True, 2),
        (runs(R, N, R), 2, False, 1),  # not in a row
        (runs(R), 2, False, 1),  # the demo after February vs March: one breach
        (runs(R, None, R), 2, True, 2),  # a failed run says nothing about drift
        (runs(N, R, R), 2, False, 0),  # the newest run decides first
        (runs(), 1, False, 0),
        (runs(R), 1, True, 1),
    ],
)
def test_breaches_must_come_in_a_row(history, needed: int, acts: bool, breaches: int) -> None:
    verdict = guard(history, None, NOW, needed, COOLDOWN)
    assert (verdict.act, verdict.breaches) == (acts, breaches)
    if not acts:
        assert verdict.outcome is RetrainOutcome.WAITING and f"{breaches} of {needed}" in verdict.reason


def test_a_recent_promotion_cools_down() -> None:
    cooling = guard(runs(R, R), NOW - timedelta(days=10), NOW, 2, COOLDOWN)
    assert not cooling.act and cooling.outcome is RetrainOutcome.COOLDOWN and "2024-04-21" in cooling.reason
    assert guard(runs(R, R), NOW - timedelta(days=31), NOW, 2, COOLDOWN).act


@pytest.mark.parametrize(
    ("challenger", "wins"),
    [
        (Scores(auc=0.810, log_loss=0.40), True),
        (Scores(auc=0.804, log_loss=0.40), False),  # within the margin: not better enough
        (Scores(auc=0.900, log_loss=0.41), False),  # better ranking, worse calibration
    ],
)
def test_the_challenger_must_win_by_the_margin_without_a_worse_log_loss(challenger: Scores, wins: bool) -> None:
    won, comparison = challenger_wins(Scores(auc=0.800, log_loss=0.40), challenger, margin=0.005)
    assert won is wins and f"{challenger.auc:.4f}" in comparison


def test_an_attempt_is_annotated_evented_and_pushed_with_its_outcome() -> None:
    from prometheus_client import generate_latest

    from jobs.history import RetrainAttempt
    from jobs.retrain import attempt_annotations, attempt_event, build_registry
    from streamflow.drift import ANNOTATION_PREFIX

    promoted = RetrainAttempt(
        "promote",
        RetrainOutcome.PROMOTED,
        "won",
        2,
        "0.1.0",
        NOW,
        champion_version="old",
        challenger_version="new",
        champion_auc=0.71,
        challenger_auc=0.79,
    )
    notes = attempt_annotations(promoted)
    assert notes[ANNOTATION_PREFIX + "retrain-outcome"] == "promoted"
    assert notes[ANNOTATION_PREFIX + "retrain-challenger"] == "new" and all(isinstance(v, str) for v in notes.values())
    event = attempt_event(promoted)
    assert (event.reason, event.warning) == ("ChallengerPromoted", True)
    assert attempt_event(RetrainAttempt("dry-run", RetrainOutcome.WAITING, "1 of 2", 1, "0")).warning is False
    text = generate_latest(build_registry(promoted)).decode()
    assert (
        'streamflow_retrain_attempt_info{challenger="new",champion="old",mode="promote",outcome="promoted"} 1.0' in text
    )
    assert 'streamflow_retrain_auc{role="challenger"} 0.79' in text and "streamflow_retrain_promoted 1.0" in text
