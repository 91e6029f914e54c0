"""The shared feature schema and the deterministic data generator (no servers)."""

from __future__ import annotations

import math
import re
from datetime import date

import numpy as np
import pandas as pd
import pytest

from jobs.datagen import MONTHS, Population, churn_logit, generate_month
from streamflow.datasets import SnapshotError, sample_rows, validate_features
from streamflow.features import (
    FEATURE_GROUPS,
    FEATURE_NAMES,
    FEATURE_REFS,
    cast_features,
    encode_frame,
    encode_row,
)
from streamflow.users import SEED_USER_IDS


def test_schema_has_the_seed_views_and_14_features() -> None:
    views = {g.view: [f.name for f in g.features] for g in FEATURE_GROUPS}
    assert views == {
        "subs_profile_fv": [
            "months_active",
            "monthly_fee",
            "paperless_billing",
            "plan_stream_tv",
            "plan_stream_movies",
            "net_service",
        ],
        "usage_agg_30d_fv": [
            "watch_hours_30d",
            "avg_session_mins_7d",
            "unique_devices_30d",
            "skips_7d",
            "rebuffer_events_7d",
        ],
        "payments_agg_90d_fv": ["failed_payments_90d"],
        "support_agg_90d_fv": ["support_tickets_90d", "ticket_avg_resolution_hrs_90d"],
    }
    assert len(FEATURE_NAMES) == 14 and len(set(FEATURE_NAMES)) == 14
    assert FEATURE_REFS[0] == "subs_profile_fv:months_active"


def test_row_and_frame_encodings_agree_including_missing_and_unknown_values() -> None:
    frame = generate_month(Population.draw(50, seed=7), 0, seed=7)
    frame.loc[3, "net_service"] = "satellite"  # unknown category
    frame.loc[4, "watch_hours_30d"] = None
    matrix = encode_frame(frame)
    for i in range(len(frame)):
        row = encode_row(frame.iloc[i].to_dict())
        np.testing.assert_array_equal(row[0], matrix[i])
    assert math.isnan(matrix[3, FEATURE_NAMES.index("net_service")])
    assert math.isnan(matrix[4, FEATURE_NAMES.index("watch_hours_30d")])


def test_cast_features_gives_one_dtype_per_kind() -> None:
    raw = pd.DataFrame(
        {
            "monthly_fee": ["9.5", None],
            "paperless_billing": [1.0, None],
            "skips_7d": np.array([3, 4], dtype="int32"),
            "net_service": ["dsl", None],
        }
    )
    out = cast_features(raw)
    assert out["monthly_fee"].dtype == np.float64 and math.isnan(out["monthly_fee"][1])
    assert out["skips_7d"].dtype == np.float64
    assert list(out["paperless_billing"].cat.categories) == [0, 1]
    assert out["paperless_billing"].cat.codes.tolist() == [1, -1]  # -1: missing
    assert list(out["net_service"].cat.categories) == ["none", "dsl", "fiber"]
    assert out["net_service"].cat.codes.tolist() == [1, -1]
    # the model sees the same numbers from a cast frame as from the raw one
    full = generate_month(Population.draw(40, seed=5), 0, seed=5)
    np.testing.assert_array_equal(encode_frame(cast_features(full)), encode_frame(full))


@pytest.mark.parametrize(
    ("column", "value", "needle"),
    [
        ("plan_stream_tv", 2, "unknown categories ['2']"),
        ("net_service", "satellite", "unknown categories ['satellite']"),
        ("skips_7d", "many", "must be numeric"),
    ],
)
def test_validation_names_the_column_and_the_bad_value(column: str, value: object, needle: str) -> None:
    frame = generate_month(Population.draw(30, seed=5), 0, seed=5).astype({column: object})
    frame.loc[3, column] = value
    with pytest.raises(SnapshotError, match=re.escape(needle)) as error:
        validate_features(frame, date(2024, 1, 31))
    assert column in str(error.value) and "2024-01-31" in str(error.value)


def test_sampling_is_reproducible_with_its_seed() -> None:
    frame = generate_month(Population.draw(5000, seed=5), 0, seed=5)
    first, again, other = (
        sample_rows(frame, 1000, seed=1),
        sample_rows(frame, 1000, seed=1),
        sample_rows(frame, 1000, seed=2),
    )
    assert len(first) == 1000 and first["user_id"].is_unique
    pd.testing.assert_frame_equal(first, again)
    assert set(first["user_id"]) != set(other["user_id"])
    assert sample_rows(frame, 10_000, seed=1) is frame  # a smaller month is used whole


def test_generator_is_deterministic_and_seeded() -> None:
    a = generate_month(Population.draw(300, seed=3), 2, seed=3)
    b = generate_month(Population.draw(300, seed=3), 2, seed=3)
    c = generate_month(Population.draw(300, seed=4), 2, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.drop(columns="user_id").equals(c.drop(columns="user_id"))


def test_seed_users_exist_in_every_month() -> None:
    population = Population.draw(100, seed=42)
    for month in range(len(MONTHS)):
        assert set(SEED_USER_IDS) <= set(generate_month(population, month, seed=42)["user_id"])


def test_month_002_shifts_features_and_the_churn_rate() -> None:
    population = Population.draw(5000, seed=42)
    m0, m1, m2 = (generate_month(population, i, seed=42) for i in range(3))
    assert abs(m1["churn_label"].mean() - m0["churn_label"].mean()) < 0.03
    assert m2["churn_label"].mean() > m1["churn_label"].mean() + 0.15
    assert m2["rebuffer_events_7d"].mean() > 2 * m1["rebuffer_events_7d"].mean()
    # churn_label follows the documented function: high-logit users churn far more often
    logit = churn_logit(m0)
    high, low = m0["churn_label"][logit > np.quantile(logit, 0.8)], m0["churn_label"][logit < np.quantile(logit, 0.2)]
    assert high.mean() > 3 * low.mean()


@pytest.mark.parametrize("n_users", [10, 1000])
def test_user_ids_are_unique(n_users: int) -> None:
    ids = Population.draw(n_users, seed=1).ids
    assert len(set(ids)) == n_users


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda f: f.drop(columns="skips_7d"), "'skips_7d' is missing"),
        (lambda f: f.assign(monthly_fee=None), "'monthly_fee' has no values"),
        (
            lambda f: f.assign(watch_hours_30d=["lots"] + [1.0] * (len(f) - 1)),
            "'watch_hours_30d' must be numeric, found 'lots'",
        ),
        (
            lambda f: f.assign(net_service=["satellite"] + ["dsl"] * (len(f) - 1)),
            "'net_service' has unknown categories ['satellite']",
        ),
    ],
    ids=["missing-column", "all-missing", "wrong-dtype", "unknown-category"],
)
def test_snapshot_validation_names_the_column_to_fix(change, needle: str) -> None:
    from datetime import date

    from streamflow.datasets import SnapshotError, validate_features

    frame = generate_month(Population.draw(20, seed=1), 0, seed=1)
    validate_features(frame, date(2024, 1, 31))  # the generated data itself is valid
    with pytest.raises(SnapshotError) as caught:
        validate_features(change(frame), date(2024, 1, 31))
    assert needle in str(caught.value) and "as_of=2024-01-31" in str(caught.value)


def test_a_subset_of_months_holds_the_same_rows_as_the_full_data_set(tmp_path) -> None:
    # `make bench` generates only the two months it compares
    from jobs.datagen import SNAPSHOT_DATES, generate
    from streamflow import db
    from streamflow.datasets import load_snapshot
    from streamflow.settings import Settings

    frames = {}
    for name, months in (("all", (0, 1, 2)), ("pair", (1, 2))):
        settings = Settings(data_dir=tmp_path / name, n_users=200)
        engine = db.make_engine(settings)
        assert generate(settings, engine, months=months)
        assert db.list_snapshots(engine) == [SNAPSHOT_DATES[i] for i in months]
        frames[name] = load_snapshot(engine, SNAPSHOT_DATES[2])
    pd.testing.assert_frame_equal(frames["all"], frames["pair"])
