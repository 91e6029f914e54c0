"""The drift job's decision and its one-line form, without running the job."""

from __future__ import annotations

from datetime import date

from jobs.drift.decision import Decision, decide, decision_line
from jobs.drift.sinks import decision_annotations, decision_event
from streamflow import db
from streamflow.drift import ANNOTATION_PREFIX, Action
from streamflow.features import FEATURE_GROUPS


def _decision(share: float, target: float) -> Decision:
    return Decision(
        action=decide(share, 0.30),
        drift_share=share,
        threshold=0.30,
        target_drift=target,
        target_drifted=False,
        drifted_features=(),
        reference=date(2024, 1, 31),
        current=date(2024, 2, 29),
        report_html="r.html",
        report_json="r.json",
        finished_at="2024-03-01T00:00:00+00:00",
        job_version="0",
    )


def test_decision_line_has_the_seed_format() -> None:
    assert decision_line(_decision(0.06, 0.0)) == (
        "[Evidently] report_html=r.html report_json=r.json drift_share=0.06 -> NO_ACTION "
        "drift_share=0.06 < 0.30 (target_drift=0.0)"
    )
    assert decision_line(_decision(0.5, 0.2217)) == (
        "[Evidently] report_html=r.html report_json=r.json drift_share=0.50 -> RETRAINING_TRIGGERED (SIMULÉ) "
        "drift_share=0.50 >= 0.30 (target_drift=0.222)"
    )


def test_threshold_is_inclusive() -> None:
    assert decide(0.30, 0.30) == Action.RETRAIN and decide(0.2999, 0.30) == Action.NO_ACTION


def test_feature_groups_cover_the_tables_the_job_checks() -> None:
    assert {g.table for g in FEATURE_GROUPS} == set(db.SNAPSHOT_TABLES)


def test_annotations_are_strings_under_the_prefix_with_the_decision() -> None:
    notes = decision_annotations(_decision(0.5, 0.2217))
    assert all(key.startswith(ANNOTATION_PREFIX) and isinstance(value, str) for key, value in notes.items())
    assert notes[ANNOTATION_PREFIX + "decision"] == "RETRAINING_TRIGGERED"
    assert notes[ANNOTATION_PREFIX + "drift-share"] == "0.5000"


def test_a_decision_event_warns_only_when_it_triggers_retraining() -> None:
    retrain, calm = decision_event(_decision(0.5, 0.2217)), decision_event(_decision(0.06, 0.0))
    assert (retrain.reason, retrain.warning) == ("RetrainingTriggered", True)
    assert (calm.reason, calm.warning) == ("NoDriftAction", False)
    assert retrain.message.startswith("decision=RETRAINING_TRIGGERED drift-share=0.5000 threshold=0.30 ")
    assert "reference=2024-01-31 current=2024-02-29" in retrain.message
