"""The one definition of StreamFlow's 14 churn features.

The Feast repository, the SQL tables, the training job, the API and the drift job all read
their feature names, groups, types and encodings from here, so they cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

ENTITY_KEY = "user_id"
SNAPSHOT_TIMESTAMP = "as_of"
TARGET = "churn_label"
LABEL_PERIOD = "period_start"

Kind = Literal["count", "float", "binary", "category"]


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Kind
    description: str
    categories: tuple[str, ...] = ()

    @property
    def is_categorical(self) -> bool:
        """Binary flags and categories are compared as categories by the drift job."""
        return self.kind in ("binary", "category")


@dataclass(frozen=True)
class FeatureGroup:
    """One Feast feature view and the SQL snapshot table it is read from."""

    view: str
    table: str
    features: tuple[Feature, ...]


NET_SERVICES = ("none", "dsl", "fiber")
BINARY_VALUES = (0, 1)

FEATURE_GROUPS: tuple[FeatureGroup, ...] = (
    FeatureGroup(
        view="subs_profile_fv",
        table="subscriptions_profile_snapshots",
        features=(
            Feature("months_active", "count", "months since the subscription started"),
            Feature("monthly_fee", "float", "current monthly fee"),
            Feature("paperless_billing", "binary", "1 when invoices are paperless"),
            Feature("plan_stream_tv", "binary", "1 when the plan includes live TV"),
            Feature("plan_stream_movies", "binary", "1 when the plan includes the movie catalogue"),
            Feature("net_service", "category", "bundled internet service", NET_SERVICES),
        ),
    ),
    FeatureGroup(
        view="usage_agg_30d_fv",
        table="usage_agg_30d_snapshots",
        features=(
            Feature("watch_hours_30d", "float", "hours watched over 30 days"),
            Feature("avg_session_mins_7d", "float", "mean session length over 7 days"),
            Feature("unique_devices_30d", "count", "distinct devices over 30 days"),
            Feature("skips_7d", "count", "titles skipped within a minute, 7 days"),
            Feature("rebuffer_events_7d", "count", "playback rebuffering events, 7 days"),
        ),
    ),
    FeatureGroup(
        view="payments_agg_90d_fv",
        table="payments_agg_90d_snapshots",
        features=(Feature("failed_payments_90d", "count", "failed payment attempts, 90 days"),),
    ),
    FeatureGroup(
        view="support_agg_90d_fv",
        table="support_agg_90d_snapshots",
        features=(
            Feature("support_tickets_90d", "count", "support tickets opened, 90 days"),
            Feature("ticket_avg_resolution_hrs_90d", "float", "mean ticket resolution time, 90 days"),
        ),
    ),
)

FEATURES: tuple[Feature, ...] = tuple(f for g in FEATURE_GROUPS for f in g.features)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
# "view:feature" references, in model column order, as Feast wants them.
FEATURE_REFS: tuple[str, ...] = tuple(f"{g.view}:{f.name}" for g in FEATURE_GROUPS for f in g.features)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.is_categorical)
NUMERICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if not f.is_categorical)

assert len(FEATURES) == 14, "the churn model is defined on exactly 14 features"

# Model input encoding: categories become their index in `categories` (the model is told which
# columns are categorical); everything else is a float. Unknown or missing values become NaN,
# which the gradient-boosting model handles natively.
_CATEGORY_CODES: dict[str, dict[str, float]] = {
    f.name: {c: float(i) for i, c in enumerate(f.categories)} for f in FEATURES if f.kind == "category"
}
MODEL_CATEGORICAL_MASK: tuple[bool, ...] = tuple(f.kind == "category" for f in FEATURES)


def encode_row(values: Mapping[str, object]) -> np.ndarray:
    """One entity's feature values -> a (1, 14) float64 row in model column order."""
    row = np.empty((1, len(FEATURES)), dtype=np.float64)
    for i, name in enumerate(FEATURE_NAMES):
        value = values.get(name)
        codes = _CATEGORY_CODES.get(name)
        if codes is not None:
            row[0, i] = codes.get(value, math.nan) if isinstance(value, str) else math.nan
        else:
            row[0, i] = math.nan if value is None else float(value)  # type: ignore[arg-type]
    return row


def encode_frame(frame: pd.DataFrame) -> np.ndarray:
    """A frame with the 14 feature columns -> (n, 14) float64 matrix, same encoding as encode_row.

    Takes raw frames (strings, ints) and cast ones (pandas categoricals) alike."""
    columns = []
    for name in FEATURE_NAMES:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            column = column.astype(object)
        codes = _CATEGORY_CODES.get(name)
        if codes is not None:
            columns.append(column.map(codes).astype("float64").to_numpy())
        else:
            columns.append(pd.to_numeric(column, errors="coerce").astype("float64").to_numpy())
    return np.column_stack(columns)


def categories_of(feature: Feature) -> tuple[object, ...]:
    """The values a categorical feature may take: its declared categories, or 0/1 for a flag."""
    return feature.categories if feature.kind == "category" else BINARY_VALUES


def cast_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Give the feature columns one canonical dtype whatever store they came from.

    SQLite, Parquet and PostgreSQL return ints as int32, int64 or float (with NULLs); casting once
    here keeps training, serving and drift comparing like with like: categories and binary flags
    become pandas categoricals over their declared values (missing = NaN; Evidently counts them by
    code, several times faster at a million rows than Python objects), every other feature is
    float64 (NaN when missing). Values outside the declared ones become NaN: validate first.
    """
    out = frame.copy()
    for f in FEATURES:
        if f.name not in out.columns:
            continue
        if f.is_categorical:
            # flags arrive as ints, floats or strings depending on the store: compare them as numbers
            values = out[f.name] if f.kind == "category" else pd.to_numeric(out[f.name], errors="coerce")
            out[f.name] = pd.Categorical(values, categories=list(categories_of(f)))
        else:
            out[f.name] = pd.to_numeric(out[f.name], errors="coerce").astype("float64")
    return out
