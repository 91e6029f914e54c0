"""Deterministic demo data: three monthly snapshots of StreamFlow's subscribers.

    python -m jobs.datagen [--users N] [--seed S] [--force]

Writes, through SQLAlchemy, one table per feature group plus `labels` for 2024-01-31
(month_000), 2024-02-29 (month_001: a small seasonal shift, sessions get longer) and 2024-03-31
(month_002: a price rise and a streaming incident move several features and the churn rate).
`churn_label` is drawn from a known logistic function of the features (`churn_logit`), so a
model can learn it and drift in the features moves the target with it.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from streamflow import db
from streamflow.features import (
    ENTITY_KEY,
    FEATURE_GROUPS,
    LABEL_PERIOD,
    NET_SERVICES,
    SNAPSHOT_TIMESTAMP,
    TARGET,
)
from streamflow.logs import configure_logging, log_event
from streamflow.progress import progress
from streamflow.settings import Settings
from streamflow.users import user_id

log = logging.getLogger("streamflow.datagen")

INSERT_CHUNK_ROWS = 20_000


@dataclass(frozen=True)
class MonthShift:
    """Multipliers applied to one month's behaviour relative to month_000."""

    snapshot: date
    fee: float = 1.0
    watch: float = 1.0
    session: float = 1.0
    rebuffer_rate: float = 1.5
    skips: float = 1.0
    failed_payments: float = 1.0
    support: float = 1.0


MONTHS: tuple[MonthShift, ...] = (
    MonthShift(date(2024, 1, 31)),
    # Winter evenings: sessions get longer; nothing else moves (expected: NO_ACTION).
    MonthShift(date(2024, 2, 29), session=1.25),
    # Price rise + CDN incident: fees, rebuffering, skips, failed payments and tickets rise,
    # watch time falls (expected: RETRAINING_TRIGGERED, and the churn rate rises).
    MonthShift(
        date(2024, 3, 31),
        session=1.25,
        fee=1.2,
        watch=0.7,
        rebuffer_rate=4.0,
        skips=1.5,
        failed_payments=2.5,
        support=2.2,
    ),
)
SNAPSHOT_DATES: tuple[date, ...] = tuple(m.snapshot for m in MONTHS)


def user_ids(n_users: int) -> np.ndarray:
    return np.array([user_id(i) for i in range(n_users)], dtype=object)


@dataclass(frozen=True)
class Population:
    """Per-user traits that stay fixed across months."""

    ids: np.ndarray
    tenure: np.ndarray
    stream_tv: np.ndarray
    stream_movies: np.ndarray
    net_service: np.ndarray
    paperless: np.ndarray
    base_fee: np.ndarray
    engagement: np.ndarray
    payment_risk: np.ndarray
    support_propensity: np.ndarray

    @classmethod
    def draw(cls, n_users: int, seed: int) -> Population:
        rng = np.random.default_rng(seed)
        tv = rng.binomial(1, 0.55, n_users)
        movies = rng.binomial(1, 0.5, n_users)
        net = rng.choice(np.array(NET_SERVICES, dtype=object), n_users, p=[0.25, 0.35, 0.40])
        net_fee = np.select([net == "dsl", net == "fiber"], [5.0, 10.0], 0.0)
        return cls(
            ids=user_ids(n_users),
            tenure=rng.integers(1, 73, n_users),
            stream_tv=tv,
            stream_movies=movies,
            net_service=net,
            paperless=rng.binomial(1, 0.6, n_users),
            base_fee=7.99 + 4.0 * tv + 3.0 * movies + net_fee + rng.normal(0.0, 0.5, n_users),
            engagement=rng.lognormal(0.0, 0.5, n_users),
            payment_risk=rng.gamma(0.5, 0.4, n_users),
            support_propensity=rng.gamma(1.0, 0.5, n_users),
        )


def churn_logit(f: pd.DataFrame) -> np.ndarray:
    """The known ground truth: log-odds that a user leaves in the month after the snapshot."""
    return (
        -1.2
        + 0.80 * f["failed_payments_90d"]
        + 0.35 * f["support_tickets_90d"]
        + 0.010 * f["ticket_avg_resolution_hrs_90d"]
        + 0.10 * (f["monthly_fee"] - 15.0)
        - 0.045 * f["watch_hours_30d"]
        + 0.15 * f["rebuffer_events_7d"]
        + 0.05 * f["skips_7d"]
        - 0.030 * f["months_active"]
        + 0.30 * f["paperless_billing"]
        - 0.25 * f["plan_stream_movies"]
        + 0.35 * (f["net_service"] == "fiber")
    ).to_numpy(dtype=np.float64)


def generate_month(pop: Population, month_index: int, seed: int) -> pd.DataFrame:
    """All 14 features and the label of one snapshot, one row per user."""
    shift = MONTHS[month_index]
    rng = np.random.default_rng([seed, month_index + 1])
    n = len(pop.ids)
    rebuffer_by_net = np.select([pop.net_service == "dsl", pop.net_service == "fiber"], [1.5, 1.0], 1.2)
    rebuffer = rng.poisson(shift.rebuffer_rate * rebuffer_by_net)
    tickets = rng.poisson(pop.support_propensity * shift.support * (1.0 + 0.15 * rebuffer))
    frame = pd.DataFrame(
        {
            ENTITY_KEY: pop.ids,
            "months_active": pop.tenure + month_index,
            "monthly_fee": np.round(pop.base_fee * shift.fee, 2),
            "paperless_billing": pop.paperless,
            "plan_stream_tv": pop.stream_tv,
            "plan_stream_movies": pop.stream_movies,
            "net_service": pop.net_service,
            "watch_hours_30d": np.round(30.0 * pop.engagement * shift.watch * rng.gamma(4.0, 0.25, n), 1),
            "avg_session_mins_7d": np.round(
                np.clip(rng.normal(38.0 * shift.session * pop.engagement**0.3, 8.0), 1.0, None), 1
            ),
            "unique_devices_30d": 1 + rng.poisson(1.2 * np.sqrt(pop.engagement)),
            "skips_7d": rng.poisson(6.0 * shift.skips / pop.engagement**0.3),
            "rebuffer_events_7d": rebuffer,
            "failed_payments_90d": rng.poisson(pop.payment_risk * shift.failed_payments),
            "support_tickets_90d": tickets,
            "ticket_avg_resolution_hrs_90d": np.where(tickets > 0, np.round(rng.gamma(2.0, 12.0, n), 1), 0.0),
        }
    )
    churn_probability = 1.0 / (1.0 + np.exp(-churn_logit(frame)))
    frame[TARGET] = rng.binomial(1, churn_probability)
    return frame


def _insert_frame(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame, bar) -> None:
    """Bulk insert through the driver's executemany: SQLAlchemy's per-row parameter processing
    cost 4x the insert itself at a million users. Values are converted column by column with
    each column type's own bind processor, so every dialect stores what SQLAlchemy would."""
    statement = table.insert().compile(dialect=conn.dialect, column_keys=list(frame.columns))
    keys = list(statement.positiontup or ()) if conn.dialect.positional else list(frame.columns)
    columns = []
    for key in keys:
        values = frame[key].tolist()  # numpy scalars -> Python values, which every driver takes
        process = table.c[key].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        columns.append([process(v) for v in values] if process else values)
    rows: list[Any] = list(zip(*columns, strict=True))
    if not conn.dialect.positional:
        rows = [dict(zip(keys, row, strict=True)) for row in rows]
    for start in range(0, len(rows), INSERT_CHUNK_ROWS):
        chunk = rows[start : start + INSERT_CHUNK_ROWS]
        conn.exec_driver_sql(str(statement), chunk)
        bar.advance(len(chunk))


def generate(
    settings: Settings, engine: Engine, *, force: bool = False, months: Sequence[int] = tuple(range(len(MONTHS)))
) -> bool:
    """Create and fill the snapshot tables. Returns False when data already exists (and not force).

    `months` picks indexes of MONTHS (all by default; the benchmark needs only the pair it
    compares). A month is the same whichever others are written with it."""
    if db.has_tables(engine) and db.count_rows(engine, db.PROFILE_TABLE) > 0 and not force:
        log_event(log, "snapshot tables already filled; keeping them", database=settings.database_url_safe)
        return False
    db.metadata.drop_all(engine)
    db.metadata.create_all(engine)
    population = Population.draw(settings.n_users, settings.seed)
    tables_per_month = len(FEATURE_GROUPS) + 1
    total_rows = settings.n_users * len(months) * tables_per_month
    log_event(
        log,
        "generating snapshots",
        users=settings.n_users,
        seed=settings.seed,
        months=[SNAPSHOT_DATES[i].isoformat() for i in months],
        database=settings.database_url_safe,
    )
    with progress(log, "datagen", total_rows) as bar:
        for month_index in months:
            shift = MONTHS[month_index]
            frame = generate_month(population, month_index, settings.seed)
            stamp = db.snapshot_timestamp(shift.snapshot)
            with engine.begin() as conn:  # one transaction per month: a month is all or nothing
                for group in FEATURE_GROUPS:
                    columns = [ENTITY_KEY, *(f.name for f in group.features)]
                    part = frame[columns].assign(**{SNAPSHOT_TIMESTAMP: stamp})
                    _insert_frame(conn, db.SNAPSHOT_TABLES[group.table], part, bar)
                labels = frame[[ENTITY_KEY, TARGET]].assign(**{LABEL_PERIOD: stamp})
                _insert_frame(conn, db.labels, labels, bar)
            log_event(
                log,
                "snapshot written",
                as_of=shift.snapshot.isoformat(),
                users=len(frame),
                churn_rate=round(float(frame[TARGET].mean()), 4),
            )
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.datagen", description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, help="users per snapshot (default: STREAMFLOW_N_USERS)")
    parser.add_argument("--seed", type=int, help="random seed (default: STREAMFLOW_SEED)")
    parser.add_argument("--force", action="store_true", help="drop and regenerate existing tables")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("n_users", args.users), ("seed", args.seed)) if v is not None}
    settings = Settings(**overrides)  # validated like the environment (e.g. 10 <= users <= 1,000,000)
    configure_logging(settings.log_level, settings.log_format)
    generate(settings, db.make_engine(settings), force=args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
