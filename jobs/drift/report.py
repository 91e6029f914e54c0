"""Our only contact with Evidently (0.7 API): build the report, read its results, save it.

Report shapes change between Evidently versions, so everything that reads the report lives
here and fails loudly (`ReportShapeError`) rather than defaulting to "no drift".

Statistical methods are pinned, not left to Evidently's sample-size heuristics, so a month
with 900 users and a month with 9 million are judged the same way: normed Wasserstein
distance for numerical features, Jensen-Shannon distance for categorical features and for the
target; a column drifts when its distance reaches its threshold.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from streamflow.drift import DISTANCE_THRESHOLD
from streamflow.features import (
    CATEGORICAL_FEATURES,
    ENTITY_KEY,
    FEATURE_NAMES,
    FEATURES_BY_NAME,
    NUMERICAL_FEATURES,
    TARGET,
)
from streamflow.files import write_atomically

NUMERICAL_METHOD = "wasserstein"
CATEGORICAL_METHOD = "jensenshannon"
TARGET_METHOD = "jensenshannon"
# Distance methods: a column drifts when distance >= DISTANCE_THRESHOLD (Evidently's default
# above 1,000 rows, pinned for every size).
DISTANCE_METHODS = frozenset({NUMERICAL_METHOD, CATEGORICAL_METHOD, TARGET_METHOD})


class ReportShapeError(Exception):
    """The Evidently report does not hold what the decision needs."""


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    threshold: float
    score: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    """What the decision is made of. `drift_share` is over the 14 features only: the target is
    reported on its own, so label drift cannot push the share over the threshold by itself."""

    drift_share: float
    drifted_count: int
    features: tuple[ColumnDrift, ...]
    target: ColumnDrift

    @property
    def drifted_features(self) -> list[str]:
        return [f.column for f in self.features if f.drifted]


def build_report(dataset_drift_share: float):
    from evidently import Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    return Report(
        metrics=[
            DataSummaryPreset(),
            DataDriftPreset(
                columns=list(FEATURE_NAMES),
                num_method=NUMERICAL_METHOD,
                cat_method=CATEGORICAL_METHOD,
                num_threshold=DISTANCE_THRESHOLD,
                cat_threshold=DISTANCE_THRESHOLD,
                # Evidently's own "dataset drifted" verdict uses the same threshold as our decision,
                # so the HTML report and the decision line agree.
                drift_share=dataset_drift_share,
            ),
            ValueDrift(column=TARGET, method=TARGET_METHOD, threshold=DISTANCE_THRESHOLD),
        ]
    )


def run(reference: pd.DataFrame, current: pd.DataFrame, dataset_drift_share: float):
    """Run the report; returns (Evidently snapshot, its dict form, DriftResult)."""
    from evidently import DataDefinition, Dataset

    # user_id stays out: the report needs no ids, and Evidently would otherwise profile a
    # million unique strings to learn that they are ids.
    definition = DataDefinition(
        numerical_columns=list(NUMERICAL_FEATURES),
        categorical_columns=[*CATEGORICAL_FEATURES, TARGET],
    )
    snapshot = build_report(dataset_drift_share).run(
        reference_data=Dataset.from_pandas(reference.drop(columns=[ENTITY_KEY]), data_definition=definition),
        current_data=Dataset.from_pandas(current.drop(columns=[ENTITY_KEY]), data_definition=definition),
    )
    report = snapshot.dict()
    return snapshot, report, extract(report)


def _metric_type(metric: dict[str, Any]) -> str:
    return str(metric.get("config", {}).get("type", ""))


def _column_drift(metric: dict[str, Any]) -> ColumnDrift:
    config = metric["config"]
    method, threshold, score = config.get("method"), config.get("threshold"), metric.get("value")
    if method not in DISTANCE_METHODS or not isinstance(score, int | float) or threshold is None:
        raise ReportShapeError(
            f"ValueDrift for {config.get('column')!r} has method={method!r} threshold={threshold!r} "
            f"value={score!r}; expected a pinned distance method with a numeric value"
        )
    return ColumnDrift(config["column"], method, float(threshold), float(score), float(score) >= float(threshold))


def extract(report: dict[str, Any]) -> DriftResult:
    """Read drift_share and per-column drift from a report dict, or raise ReportShapeError."""
    metrics = report.get("metrics")
    if not isinstance(metrics, list):
        raise ReportShapeError("report has no 'metrics' list")
    counts = [m for m in metrics if _metric_type(m).endswith(":DriftedColumnsCount")]
    if len(counts) != 1 or not isinstance(counts[0].get("value"), dict):
        raise ReportShapeError(f"expected one DriftedColumnsCount metric with a value, found {len(counts)}")
    value = counts[0]["value"]
    try:
        share, count = float(value["share"]), int(value["count"])
    except (KeyError, TypeError, ValueError):
        raise ReportShapeError(f"DriftedColumnsCount value {value!r} has no numeric share/count") from None
    per_column = {d.column: d for d in (_column_drift(m) for m in metrics if _metric_type(m).endswith(":ValueDrift"))}
    missing = [c for c in (*FEATURE_NAMES, TARGET) if c not in per_column]
    if missing:
        raise ReportShapeError(f"report has no ValueDrift for {missing}")
    features = tuple(per_column[name] for name in FEATURE_NAMES)
    drifted = sum(f.drifted for f in features)
    if drifted != count or abs(share - drifted / len(FEATURE_NAMES)) > 1e-9:
        raise ReportShapeError(
            f"DriftedColumnsCount says {count} ({share:.4f}) but per-column results say {drifted}"
            f"/{len(FEATURE_NAMES)}: the report's definition of drift changed"
        )
    return DriftResult(drift_share=share, drifted_count=count, features=features, target=per_column[TARGET])


def summary(result: DriftResult) -> dict[str, Any]:
    """The `streamflow` section added to the saved JSON report."""
    return {
        "drift_share": result.drift_share,
        "drift_share_definition": f"drifted features / {len(FEATURE_NAMES)} features (target excluded)",
        "drifted_count": result.drifted_count,
        "drifted_features": result.drifted_features,
        "features": [asdict(f) | {"kind": FEATURES_BY_NAME[f.column].kind} for f in result.features],
        "target": asdict(result.target),
    }


def save(snapshot, report: dict[str, Any], extra: dict[str, Any], html_path: Path, json_path: Path) -> None:
    html_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(html_path, lambda p: snapshot.save_html(str(p)))
    document = dict(report) | {"streamflow": extra}
    write_atomically(json_path, lambda p: p.write_text(json.dumps(document, indent=1, default=str)))
