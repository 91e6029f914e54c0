"""The retrain decision and its one-line form (the seed's format, which users grep for)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from streamflow.drift import Action


@dataclass(frozen=True)
class Decision:
    action: Action
    drift_share: float
    threshold: float
    target_drift: float
    target_drifted: bool
    drifted_features: tuple[str, ...]
    reference: date
    current: date
    report_html: str
    report_json: str
    finished_at: str
    job_version: str

    @property
    def retrain(self) -> bool:
        return self.action is Action.RETRAIN


def decide(drift_share: float, threshold: float) -> Action:
    """Retrain when the share of drifted features reaches the threshold."""
    return Action.RETRAIN if drift_share >= threshold else Action.NO_ACTION


def decision_line(d: Decision) -> str:
    """The seed's decision line, e.g.
    `[Evidently] report_html=… report_json=… drift_share=0.06 -> NO_ACTION drift_share=0.06 < 0.30 (target_drift=0.0)`.

    RETRAINING_TRIGGERED carries the seed's "(SIMULÉ)" marker: this job records the decision (in
    the status ConfigMap); it does not start the retraining itself.
    """
    share = f"{d.drift_share:.2f}"
    outcome = (
        f"{Action.RETRAIN} (SIMULÉ) drift_share={share} >= {d.threshold:.2f}"
        if d.retrain
        else f"{Action.NO_ACTION} drift_share={share} < {d.threshold:.2f}"
    )
    return (
        f"[Evidently] report_html={d.report_html} report_json={d.report_json} drift_share={share} "
        f"-> {outcome} (target_drift={round(d.target_drift, 3)})"
    )
