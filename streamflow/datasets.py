"""Snapshot data sets for training and drift: read two ways, checked and cast one way.

- `snapshot_frame` (training): entity rows from `subscriptions_profile_snapshots` at `as_of`,
  features from Feast's historical retrieval (point-in-time join), labels merged on keys.
- `load_snapshot` (drift): the same month read straight from the snapshot tables, one query per
  table. A snapshot is one row per user and table at exactly `as_of`, so the point-in-time join
  has nothing to choose; skipping Feast's retrieval makes a 1M-user month load ~10x faster (see
  docs/performance.md). A test keeps the two frames identical.
Every problem is a `SnapshotError` whose message names the table, date or column to fix.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import sqlalchemy as sa

from streamflow import db
from streamflow.features import (
    ENTITY_KEY,
    FEATURE_GROUPS,
    FEATURE_NAMES,
    FEATURE_REFS,
    FEATURES,
    LABEL_PERIOD,
    SNAPSHOT_TIMESTAMP,
    TARGET,
    cast_features,
    categories_of,
)
from streamflow.logs import log_event

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger("streamflow.datasets")


class SnapshotError(Exception):
    """A snapshot cannot be used as it is; the message says what to fix, in one line."""


def require_rows(engine: sa.Engine, as_of: date) -> int:
    """Every feature table and the labels must hold the snapshot: Feast would otherwise fill a
    missing group with the previous month's values (the views' TTL) and hide the gap."""
    counts = {g.table: db.count_rows(engine, db.SNAPSHOT_TABLES[g.table], as_of) for g in FEATURE_GROUPS}
    counts["labels"] = db.count_rows(engine, db.labels, as_of)
    empty = [table for table, n in counts.items() if n == 0]
    if empty:
        raise SnapshotError(f"snapshot as_of={as_of} is empty in table(s) {', '.join(empty)}")
    return counts[db.PROFILE_TABLE.name]


def _entity_rows(engine: sa.Engine, as_of: date) -> pd.DataFrame:
    query = sa.select(db.PROFILE_TABLE.c[ENTITY_KEY]).where(
        db.PROFILE_TABLE.c[SNAPSHOT_TIMESTAMP] == db.snapshot_timestamp(as_of)
    )
    with engine.connect() as conn:
        entities = pd.read_sql(query, conn)
    # Feast wants pandas UTC timestamps here: dates or strings break the point-in-time join.
    entities["event_timestamp"] = pd.Timestamp(db.snapshot_timestamp(as_of))
    return entities


def _labels(engine: sa.Engine, as_of: date) -> pd.DataFrame:
    query = sa.select(db.labels.c[ENTITY_KEY], db.labels.c[TARGET]).where(
        db.labels.c[LABEL_PERIOD] == db.snapshot_timestamp(as_of)
    )
    with engine.connect() as conn:
        return pd.read_sql(query, conn)


def validate_features(frame: pd.DataFrame, as_of: date) -> None:
    """Refuse a snapshot whose features the model and the drift tests cannot compare."""
    where = f"snapshot as_of={as_of}"
    for feature in FEATURES:
        if feature.name not in frame.columns:
            raise SnapshotError(f"{where}: feature column {feature.name!r} is missing")
        column = frame[feature.name]
        present = column.dropna()
        if present.empty:
            raise SnapshotError(f"{where}: feature column {feature.name!r} has no values (all missing)")
        if feature.is_categorical:
            values = (
                present.unique() if feature.kind == "category" else pd.to_numeric(present, errors="coerce").unique()
            )
            unknown = sorted(set(map(str, values)) - set(map(str, categories_of(feature))))
            if unknown:
                raise SnapshotError(
                    f"{where}: feature column {feature.name!r} has unknown categories {unknown[:5]} "
                    f"(expected {list(categories_of(feature))})"
                )
        elif not pd.api.types.is_numeric_dtype(present):
            numeric = pd.to_numeric(present, errors="coerce")
            bad = present[numeric.isna()]
            if not bad.empty:
                raise SnapshotError(f"{where}: feature column {feature.name!r} must be numeric, found {bad.iloc[0]!r}")


def snapshot_frame(engine: sa.Engine, store: FeatureStore, as_of: date) -> pd.DataFrame:
    """One row per user at `as_of` through Feast: user_id, the 14 features, churn_label."""
    expected_rows = require_rows(engine, as_of)
    entities = _entity_rows(engine, as_of)
    log_event(log, "historical retrieval", as_of=as_of.isoformat(), rows=len(entities))
    features = store.get_historical_features(entity_df=entities, features=list(FEATURE_REFS)).to_df()
    # Feast returns rows reordered: merge on the key, never by position.
    frame = features.drop(columns=["event_timestamp"]).merge(
        _labels(engine, as_of), on=ENTITY_KEY, how="left", validate="one_to_one"
    )
    return _checked(frame, as_of, expected_rows)


def load_snapshot(engine: sa.Engine, as_of: date) -> pd.DataFrame:
    """One row per user at `as_of`, read from the snapshot tables directly (the drift job's path)."""
    expected_rows = require_rows(engine, as_of)
    try:
        with db.arrow_reader(engine) as read:
            profile, *others = (
                read(db.SNAPSHOT_TABLES[g.table], [ENTITY_KEY, *(f.name for f in g.features)], as_of).set_index(
                    ENTITY_KEY
                )
                for g in FEATURE_GROUPS
            )
            labels = read(db.labels, [ENTITY_KEY, TARGET], as_of).set_index(ENTITY_KEY)
    except db.BulkReadError as exc:
        raise SnapshotError(f"snapshot as_of={as_of}: {exc}") from None
    # Left joins on the profile's users (keys are unique: they are the tables' primary keys). A
    # user missing from another table gets NaN there, which validation reports like any gap.
    frame = profile.join([*others, labels], how="left").reset_index()
    return _checked(frame, as_of, expected_rows)


def _checked(frame: pd.DataFrame, as_of: date, expected_rows: int) -> pd.DataFrame:
    """Validate, cast to the canonical dtypes, order by user: the one way both readers finish."""
    if len(frame) != expected_rows:
        raise SnapshotError(
            f"snapshot as_of={as_of}: feature retrieval returned {len(frame)} rows for {expected_rows} users"
        )
    validate_features(frame, as_of)
    missing_labels = int(frame[TARGET].isna().sum())
    if missing_labels:
        raise SnapshotError(f"snapshot as_of={as_of}: {missing_labels} users have no row in table labels")
    frame = cast_features(frame)
    frame[TARGET] = frame[TARGET].astype(np.int64)
    return frame[[ENTITY_KEY, *FEATURE_NAMES, TARGET]].sort_values(ENTITY_KEY, ignore_index=True)


def sample_rows(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """A reproducible random sample of `rows` users (all of them if the month is smaller)."""
    if len(frame) <= rows:
        return frame
    return frame.sample(n=rows, random_state=seed).sort_values(ENTITY_KEY, ignore_index=True)
