"""The Feast feature repository: entity, sources, the four feature views, per-profile config.

Definitions are built from `streamflow.features`, and the store config from `Settings`, in
memory: no feature_store.yaml to keep in sync, and no database password written to disk.

Profiles:
- local    -- registry file + SQLite online store + file offline store. The Parquet files are
              exported from the SQL snapshot tables by `export_offline_sources` (the database
              stays the one source of truth).
- postgres -- PostgreSQL offline store (the snapshot tables themselves), PostgreSQL online
              store and SQL registry, all in the database of STREAMFLOW_DATABASE_URL.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from streamflow import db
from streamflow.features import ENTITY_KEY, FEATURE_GROUPS, SNAPSHOT_TIMESTAMP, FeatureGroup
from streamflow.files import write_atomically
from streamflow.logs import log_event
from streamflow.settings import Settings

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger("streamflow.feast")

# A snapshot's values stand for the month after it; 31 days covers the longest month.
FEATURE_TTL = timedelta(days=31)


def online_store_path(settings: Settings) -> Path | None:
    """The SQLite online store file of the local profile; None when the store is a server."""
    return (settings.feast_dir / "online_store.db").resolve() if settings.feast_profile == "local" else None


def repo_config(settings: Settings) -> dict[str, Any]:
    """The feature_store.yaml equivalent for the configured profile."""
    common: dict[str, Any] = {
        "project": settings.feast_project,
        "provider": "local",
        "entity_key_serialization_version": 3,
    }
    if settings.feast_profile == "local":
        feast_dir = settings.feast_dir.resolve()
        return common | {
            "registry": {"registry_type": "file", "path": str(feast_dir / "registry.db"), "cache_ttl_seconds": 60},
            "online_store": {"type": "sqlite", "path": str(online_store_path(settings))},
            "offline_store": {"type": "file"},
        }
    url = settings.database_url_obj
    connection = {
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "database": url.database,
        "user": url.username,
        "password": url.password or "",
        "db_schema": "public",
        "sslmode": url.query.get("sslmode", "disable"),
    }
    return common | {
        "registry": {
            "registry_type": "sql",
            "path": url.render_as_string(hide_password=False),
            "cache_ttl_seconds": 60,
        },
        "online_store": {"type": "postgres", **connection},
        "offline_store": {"type": "postgres", **connection},
    }


def open_store(settings: Settings) -> FeatureStore:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    if settings.feast_profile == "local":
        settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=RepoConfig(**repo_config(settings)))


def offline_source_path(settings: Settings, group: FeatureGroup) -> str:
    return str((settings.feast_dir / "offline" / f"{group.table}.parquet").resolve())


def definitions(settings: Settings) -> list[Any]:
    """Entity + one source and feature view per feature group."""
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.data_source import DataSource
    from feast.types import Float64, Int64, String

    feast_types = {"count": Int64, "binary": Int64, "float": Float64, "category": String}
    user = Entity(
        name="user", join_keys=[ENTITY_KEY], value_type=ValueType.STRING, description="a StreamFlow subscriber"
    )
    objects: list[Any] = [user]
    for group in FEATURE_GROUPS:
        if settings.feast_profile == "local":
            source: DataSource = FileSource(
                name=f"{group.table}_source",
                path=offline_source_path(settings, group),
                timestamp_field=SNAPSHOT_TIMESTAMP,
            )
        else:
            from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
                PostgreSQLSource,
            )

            source = PostgreSQLSource(
                name=f"{group.table}_source", table=group.table, timestamp_field=SNAPSHOT_TIMESTAMP
            )
        objects.append(
            FeatureView(
                name=group.view,
                entities=[user],
                ttl=FEATURE_TTL,
                schema=[
                    Field(name=f.name, dtype=feast_types[f.kind], description=f.description) for f in group.features
                ],
                source=source,
                online=True,
                description=f"monthly snapshots from table {group.table}",
            )
        )
    return objects


def export_offline_sources(settings: Settings, engine: sa.Engine) -> None:
    """Local profile: derive the Parquet offline sources from the SQL snapshot tables.

    Timestamps are written as timestamp[us, tz=UTC]: date32 breaks Feast's file store and
    nanosecond precision breaks its materialization.
    """
    for group in FEATURE_GROUPS:
        table = db.SNAPSHOT_TABLES[group.table]
        with engine.connect() as conn:
            frame = pd.read_sql(sa.select(table), conn)
        frame[SNAPSHOT_TIMESTAMP] = db.to_utc(frame[SNAPSHOT_TIMESTAMP]).astype("datetime64[us, UTC]")
        path = offline_source_path(settings, group)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        write_atomically(Path(path), partial(pq.write_table, table))
        log_event(log, "offline source exported", table=group.table, rows=len(frame), path=path)


def apply(settings: Settings, store: FeatureStore) -> None:
    """`feast apply`: register the entity and feature views (and create online tables)."""
    objects = definitions(settings)
    store.apply(objects)
    log_event(
        log,
        "feast apply done",
        project=settings.feast_project,
        profile=settings.feast_profile,
        feature_views=[g.view for g in FEATURE_GROUPS],
    )


def materialize(settings: Settings, store: FeatureStore, engine: sa.Engine) -> None:
    """Load every snapshot into the online store; the newest value per user wins."""
    snapshots = db.list_snapshots(engine)
    if not snapshots:
        raise RuntimeError("no snapshots in the database: run `python -m jobs.datagen` first")
    start = db.snapshot_timestamp(snapshots[0]) - timedelta(seconds=1)
    end = db.snapshot_timestamp(snapshots[-1]) + timedelta(seconds=1)
    log_event(log, "materializing", start=start.isoformat(), end=end.isoformat(), feature_views=len(FEATURE_GROUPS))
    store.materialize(start_date=start, end_date=end)
    log_event(log, "materialization done", newest_snapshot=snapshots[-1].isoformat())
