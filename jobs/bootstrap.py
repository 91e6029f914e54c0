"""Bootstrap the embedded default (or a cluster's database) from nothing, idempotently.

    python -m jobs.bootstrap [--force] [--wait-for-database SECONDS]

1. demo data into the snapshot database (kept if present),
2. local profile: Parquet offline sources exported from the SQL tables,
3. `feast apply` and materialization of every snapshot into the online store,
4. the churn model trained on the oldest snapshot (kept if present).
"""

from __future__ import annotations

import argparse
import logging
import time

from jobs import datagen, train
from streamflow import db, feature_repo, model
from streamflow.logs import configure_logging, log_event
from streamflow.settings import Settings, settings_or_exit

log = logging.getLogger("streamflow.bootstrap")


def bootstrap(settings: Settings, *, force: bool = False, wait_for_database: float = 0.0) -> None:
    started = time.perf_counter()
    engine = db.make_engine(settings)
    db.wait_until_reachable(engine, wait_for_database)
    generated = datagen.generate(settings, engine, force=force)
    if settings.feast_profile == "local":
        feature_repo.export_offline_sources(settings, engine)
    store = feature_repo.open_store(settings)
    feature_repo.apply(settings, store)
    feature_repo.materialize(settings, store, engine)
    try:
        existing = model.load(settings)
    except model.ModelArtifactError:
        existing = None
    if existing is None or generated:
        train.train(settings)
    else:
        log_event(log, "model present; keeping it", version=existing.version)
    log_event(
        log,
        "bootstrap done",
        seconds=round(time.perf_counter() - started, 1),
        profile=settings.feast_profile,
        database=settings.database_url_safe,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.bootstrap", description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="regenerate data and retrain")
    parser.add_argument(
        "--wait-for-database",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="retry connecting this long first (a Kubernetes Job may start before its database)",
    )
    args = parser.parse_args(argv)
    settings = settings_or_exit("bootstrap")
    configure_logging(settings.log_level, settings.log_format)
    bootstrap(settings, force=args.force, wait_for_database=args.wait_for_database)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
