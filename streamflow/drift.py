"""What the drift job promises the rest of StreamFlow: its decisions, its per-column drift
threshold, its exit codes and its status annotations.

The job (jobs/drift) produces them; the dashboards generator, the chart's CronJob
(`podFailurePolicy`) and the alert rules read them. They live in the core so that every reader
imports one definition instead of repeating a literal.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Action(StrEnum):
    """The decision of one drift run; the values are what users grep for in the job's log line."""

    NO_ACTION = "NO_ACTION"
    RETRAIN = "RETRAINING_TRIGGERED"


# A column drifts when its distance (Wasserstein, normalised, or Jensen-Shannon) reaches this;
# pinned so the answer does not depend on Evidently's sample-size rules.
DISTANCE_THRESHOLD = 0.1


class ExitCode(IntEnum):
    """The drift CLI's exit codes (documented for CronJob alerting and the podFailurePolicy)."""

    OK = 0  # a decision was made, whichever it was
    UNEXPECTED = 1
    USAGE = 2  # bad arguments or settings
    DATA = 3  # database unreachable, snapshot missing or empty, a feature column unusable
    REPORT = 4  # the Evidently report did not hold the expected results
    SINK = 5  # the status ConfigMap could not be annotated


# Failures a retry cannot mend (the same arguments or the same Evidently version fail again):
# the chart's CronJob fails the Job at once on these instead of spending its backoffLimit.
NOT_RETRYABLE = (ExitCode.USAGE, ExitCode.REPORT)

# Every annotation the job writes on the status ConfigMap starts with this.
ANNOTATION_PREFIX = "drift.streamflow.io/"
