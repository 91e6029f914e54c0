"""The embedded default after `python -m jobs.bootstrap`: SQL tables, Feast, model."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa

from jobs.datagen import SNAPSHOT_DATES
from streamflow import db, model
from streamflow.datasets import load_snapshot, snapshot_frame
from streamflow.feature_repo import open_store
from streamflow.features import FEATURE_NAMES, FEATURE_REFS
from streamflow.settings import Settings
from tests.support.processes import TEST_USERS


def test_snapshot_tables_hold_three_full_months(demo_settings: Settings) -> None:
    engine = db.make_engine(demo_settings)
    assert db.list_snapshots(engine) == list(SNAPSHOT_DATES)
    for table in [*db.SNAPSHOT_TABLES.values(), db.labels]:
        for day in SNAPSHOT_DATES:
            assert db.count_rows(engine, table, day) == TEST_USERS, (table.name, day)


def test_model_artifact_is_verified_and_learned_something(demo_settings: Settings) -> None:
    loaded = model.load(demo_settings)
    assert demo_settings.model_dir is not None  # a local model store (the embedded default)
    meta = json.loads((demo_settings.model_dir / model.METADATA_FILE).read_text())
    assert loaded.version == meta["version"] and meta["trained_on"] == "2024-01-31"
    assert meta["auc"] > 0.7, meta  # churn_label is a learnable function of the features
    assert meta["feature_names"] == list(FEATURE_NAMES)


def test_online_store_serves_the_latest_snapshot_of_a_seed_user(demo_settings: Settings) -> None:
    engine = db.make_engine(demo_settings)
    latest = db.snapshot_timestamp(SNAPSHOT_DATES[-1])
    expected = {}
    with engine.connect() as conn:
        for table in db.SNAPSHOT_TABLES.values():
            row = (
                conn.execute(sa.select(table).where(table.c.user_id == "4686-GEFRM", table.c.as_of == latest))
                .mappings()
                .one()
            )
            expected.update({k: v for k, v in row.items() if k in FEATURE_NAMES})
    online = (
        open_store(demo_settings)
        .get_online_features(features=list(FEATURE_REFS), entity_rows=[{"user_id": "4686-GEFRM"}])
        .to_dict()
    )
    served = {name: online[name][0] for name in FEATURE_NAMES}
    assert served == {k: pytest.approx(v) if isinstance(v, float) else v for k, v in expected.items()}


def test_offline_sources_are_derived_from_the_sql_tables(demo_settings: Settings) -> None:
    engine = db.make_engine(demo_settings)
    parquet = pd.read_parquet(demo_settings.feast_dir / "offline" / "support_agg_90d_snapshots.parquet")
    with engine.connect() as conn:
        sql = pd.read_sql(sa.select(db.SNAPSHOT_TABLES["support_agg_90d_snapshots"]), conn)
    assert len(parquet) == len(sql) == 3 * TEST_USERS
    assert str(parquet["as_of"].dtype) == "datetime64[us, UTC]"
    assert parquet["support_tickets_90d"].sum() == sql["support_tickets_90d"].sum()


@pytest.mark.parametrize("day", [SNAPSHOT_DATES[0], SNAPSHOT_DATES[-1]])
def test_the_drift_jobs_sql_reader_equals_feasts_historical_retrieval(demo_settings: Settings, day) -> None:
    engine = db.make_engine(demo_settings)
    through_feast = snapshot_frame(engine, open_store(demo_settings), day)
    pd.testing.assert_frame_equal(load_snapshot(engine, day), through_feast)
    assert len(through_feast) == TEST_USERS
