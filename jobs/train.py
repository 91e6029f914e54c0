"""Train the churn model on one snapshot and write a verified artifact.

    python -m jobs.train [--as-of 2024-01-31]

Features come from Feast's historical retrieval (the same path the drift job uses), labels from
the `labels` table. Reports ROC AUC on a stratified held-out split.
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, date, datetime

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from streamflow import db, model
from streamflow.datasets import snapshot_frame
from streamflow.feature_repo import open_store
from streamflow.features import MODEL_CATEGORICAL_MASK, TARGET, encode_frame
from streamflow.logs import configure_logging, log_event
from streamflow.settings import Settings, get_settings

log = logging.getLogger("streamflow.train")

HELD_OUT_FRACTION = 0.2


def fit(features: np.ndarray, labels: np.ndarray, seed: int) -> HistGradientBoostingClassifier:
    """The model StreamFlow serves, fitted on encoded rows (the retrain job's challenger too)."""
    # Shallow trees: churn's log-odds are close to additive in the features, and predict time
    # grows with trees x depth; 100 trees of depth 3 held out better than 200 unrestricted ones.
    return HistGradientBoostingClassifier(
        categorical_features=list(MODEL_CATEGORICAL_MASK),
        max_iter=100,
        learning_rate=0.05,
        max_depth=3,
        random_state=seed,
    ).fit(features, labels)


def train(settings: Settings, as_of: date | None = None) -> model.ModelMetadata:
    engine = db.make_engine(settings)
    snapshots = db.list_snapshots(engine)
    if not snapshots:
        raise SystemExit("no snapshots in the database: run `python -m jobs.datagen` first")
    as_of = as_of or snapshots[0]
    frame = snapshot_frame(engine, open_store(settings), as_of)
    features, labels = encode_frame(frame), frame[TARGET].to_numpy()
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=HELD_OUT_FRACTION, stratify=labels, random_state=settings.seed
    )
    estimator = fit(x_train, y_train, settings.seed)
    auc = float(roc_auc_score(y_test, estimator.predict_proba(x_test)[:, 1]))
    metadata = model.save(
        estimator,
        settings,
        trained_on=as_of.isoformat(),
        algorithm="sklearn.HistGradientBoostingClassifier",
        auc=round(auc, 4),
        n_train=len(y_train),
        n_test=len(y_test),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    log_event(
        log,
        "model trained",
        version=metadata.version,
        trained_on=metadata.trained_on,
        auc=metadata.auc,
        n_train=metadata.n_train,
        n_test=metadata.n_test,
        store=settings.model_store,
    )
    return metadata


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.train", description=__doc__.split("\n")[0])
    parser.add_argument("--as-of", type=date.fromisoformat, help="snapshot to train on (default: oldest)")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    metadata = train(settings, args.as_of)
    print(f"model {metadata.version} trained on {metadata.trained_on}: held-out AUC={metadata.auc:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
