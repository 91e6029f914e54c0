"""The snapshot database: SQLAlchemy table definitions derived from the feature schema.

One table per feature group, keyed by (user_id, as_of), plus `labels(user_id, period_start,
churn_label)` where `period_start` is the snapshot date the label follows (did the user leave
during the month after that snapshot?). SQLite by default, PostgreSQL in a cluster.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from streamflow.features import (
    ENTITY_KEY,
    FEATURE_GROUPS,
    LABEL_PERIOD,
    SNAPSHOT_TIMESTAMP,
    TARGET,
    Feature,
)
from streamflow.logs import first_line, log_event
from streamflow.settings import Settings

log = logging.getLogger("streamflow.db")

metadata = sa.MetaData()

_SQL_TYPES: dict[str, type[sa.types.TypeEngine[Any]] | sa.types.TypeEngine[Any]] = {
    "count": sa.BigInteger,  # BigInteger everywhere: Feast declares Int64 (Postgres int4 would be int32)
    "binary": sa.BigInteger,
    "float": sa.Float(precision=53),
    "category": sa.String(32),
}


def _feature_column(feature: Feature) -> sa.Column:
    return sa.Column(feature.name, _SQL_TYPES[feature.kind], nullable=True, comment=feature.description)


# Timestamps are timezone-aware UTC midnights: a plain DATE becomes midnight in the *database
# session's* zone inside Feast's PostgreSQL source, which silently shifts a month boundary.
SNAPSHOT_TABLES: dict[str, sa.Table] = {
    group.table: sa.Table(
        group.table,
        metadata,
        sa.Column(ENTITY_KEY, sa.String(64), primary_key=True),
        sa.Column(SNAPSHOT_TIMESTAMP, sa.DateTime(timezone=True), primary_key=True, index=True),
        *(_feature_column(f) for f in group.features),
    )
    for group in FEATURE_GROUPS
}

labels = sa.Table(
    "labels",
    metadata,
    sa.Column(ENTITY_KEY, sa.String(64), primary_key=True),
    sa.Column(LABEL_PERIOD, sa.DateTime(timezone=True), primary_key=True, index=True),
    sa.Column(TARGET, sa.SmallInteger, nullable=False),
)

PROFILE_TABLE = SNAPSHOT_TABLES["subscriptions_profile_snapshots"]


def make_engine(settings: Settings) -> Engine:
    url = settings.database_url_obj
    if url.drivername.startswith("sqlite") and url.database:
        from pathlib import Path

        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url, pool_pre_ping=True)


def snapshot_timestamp(day: date) -> datetime:
    """The canonical stored form of a snapshot date: midnight UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def to_utc(values: pd.Series) -> pd.Series:
    """Stored timestamps -> tz-aware UTC (SQLite hands back naive datetimes or strings)."""
    return pd.to_datetime(values, utc=True)


def list_snapshots(engine: Engine, table: sa.Table = PROFILE_TABLE) -> list[date]:
    """Snapshot dates present in `table` (default: the profile's; `labels` for the months whose
    labels have arrived), oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(snapshot_column(table)).distinct()).scalars().all()
    return sorted(set(to_utc(pd.Series(rows, dtype=object)).dt.date)) if rows else []


def snapshot_column(table: sa.Table) -> sa.Column:
    """The column that says which snapshot a row belongs to (`as_of`, or `period_start` in labels)."""
    return table.c[SNAPSHOT_TIMESTAMP] if SNAPSHOT_TIMESTAMP in table.c else table.c[LABEL_PERIOD]


def count_rows(engine: Engine, table: sa.Table, day: date | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    if day is not None:
        query = query.where(snapshot_column(table) == snapshot_timestamp(day))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


class BulkReadError(Exception):
    """A bulk read failed; the message names the table and the database (password masked)."""


@contextmanager
def arrow_reader(engine: Engine) -> Iterator[Callable[[sa.Table, list[str], date], pd.DataFrame]]:
    """`read(table, columns, day)` -> the columns of one snapshot as a DataFrame, through ADBC.

    Arrow drivers hand back whole columns instead of a Python tuple per row: reading a 1M-user
    month takes seconds instead of a minute. SQLAlchemy still owns the schema, the writes and
    every other query; this is the one bulk-read path (SQLite and PostgreSQL, like Feast here).
    """
    url = engine.url
    where = url.render_as_string(hide_password=True)
    backend = url.get_backend_name()
    adbc: Any  # the driver module of the backend, imported only when used
    if backend == "sqlite":
        import adbc_driver_sqlite.dbapi as adbc

        target, placeholder = url.database, "?"
    elif backend == "postgresql":
        import adbc_driver_postgresql.dbapi as adbc  # type: ignore[no-redef]

        target, placeholder = url.set(drivername="postgresql").render_as_string(hide_password=False), "$1"
    else:
        raise BulkReadError(f"no Arrow driver for {backend} databases (use SQLite or PostgreSQL)")
    try:
        connection = adbc.connect(target)
    except adbc.Error as exc:  # e.g. the database went down after the row counts
        raise BulkReadError(f"connecting to {where} failed: {first_line(exc)}") from None

    def read(table: sa.Table, columns: list[str], day: date) -> pd.DataFrame:
        column = snapshot_column(table)
        # the stored form of the timestamp, as SQLAlchemy writes it for this dialect
        process = column.type.dialect_impl(engine.dialect).bind_processor(engine.dialect)
        stamp = snapshot_timestamp(day)
        selected = ", ".join(f'"{name}"' for name in columns)
        # our own table and column names: no injection
        sql = f'SELECT {selected} FROM "{table.name}" WHERE "{column.name}" = {placeholder}'
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, (process(stamp) if process else stamp,))
                frame = cursor.fetch_arrow_table().to_pandas()
        # OSError: Arrow's stream error, e.g. SQLite text in a numeric column past the first batch
        except (adbc.Error, OSError) as exc:
            # the drivers number columns ("column 3"); say which one, so the message names it
            reason = re.sub(
                r"\bcolumn (\d+)\b",
                lambda m: f"column {columns[int(m[1])]!r}" if int(m[1]) < len(columns) else m[0],
                first_line(exc),
            )
            raise BulkReadError(f"reading table {table.name} from {where} failed: {reason}") from None
        # SQLite reads a double-quoted name that is no column as a string literal: a dropped
        # column would come back as a constant (named '"col"') instead of an error.
        missing = [name for name in columns if name not in frame.columns]
        if missing:
            raise BulkReadError(f"table {table.name} in {where} has no column {', '.join(missing)}")
        return frame

    try:
        yield read
    finally:
        connection.close()


def has_tables(engine: Engine) -> bool:
    inspector = sa.inspect(engine)
    return all(inspector.has_table(name) for name in metadata.tables)


def wait_until_reachable(engine: Engine, timeout_seconds: float, interval: float = 2.0) -> None:
    """Block until the database accepts connections (a pod may start before its database).

    Raises the last OperationalError once `timeout_seconds` have passed; 0 means try once."""
    deadline = time.monotonic() + timeout_seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            if attempt > 1:
                log_event(log, "database reachable", attempts=attempt)
            return
        except OperationalError as exc:
            if time.monotonic() + interval > deadline:
                raise
            reason = first_line(exc.orig if exc.orig is not None else exc)
            log_event(
                log,
                "waiting for the database",
                logging.WARNING,
                attempt=attempt,
                reason=reason,
                database=engine.url.render_as_string(hide_password=True),
            )
            time.sleep(interval)
