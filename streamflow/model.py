"""The churn model artifact: a pickled scikit-learn classifier plus verified metadata.

The metadata names the artifact, its sha256, the feature order and a version. The API loads a
model only after the checksum matches: a pickle is code, so an unverified or half-written
artifact is never unpickled.

Two stores (setting `model_store`): `directory` (model_dir/model.json + model-<sha>.joblib, the
embedded default) and `database` (table `model_artifacts` in the snapshot database, newest row
wins: what a cluster uses, so API replicas on any node share one model without a shared volume).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from streamflow.db import make_engine
from streamflow.features import FEATURE_NAMES
from streamflow.settings import Settings

METADATA_FILE = "model.json"


class ModelArtifactError(Exception):
    """The artifact is missing, corrupt or does not match this code's features."""


@dataclass(frozen=True)
class ModelMetadata:
    version: str
    artifact: str
    sha256: str
    feature_names: list[str]
    trained_on: str
    algorithm: str
    auc: float
    n_train: int
    n_test: int
    created_at: str


@dataclass(frozen=True)
class ChurnModel:
    estimator: Any
    metadata: ModelMetadata

    @property
    def version(self) -> str:
        return self.metadata.version

    def churn_probability(self, rows: np.ndarray) -> np.ndarray:
        """Probability of churn for (n, 14) encoded rows; numpy in, numpy out (no DataFrame)."""
        return self.estimator.predict_proba(rows)[:, 1]


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# In a cluster the model lives in the database: every API replica, on any node, reads the same
# artifact, and no ReadWriteMany volume is needed. One row per version, written in one
# transaction, so a reader sees a whole artifact or none.
_model_metadata = sa.MetaData()
model_artifacts = sa.Table(
    "model_artifacts",
    _model_metadata,
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.String(32), nullable=False, index=True),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
)


def save(estimator: Any, settings: Settings, **fields: Any) -> ModelMetadata:
    """Store a trained estimator in the configured model store; returns its metadata."""
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    metadata = ModelMetadata(version=f"{fields['trained_on'].replace('-', '')}-{digest[:10]}",
                             artifact=f"model-{digest[:16]}.joblib", sha256=digest,
                             feature_names=list(FEATURE_NAMES), **fields)
    metadata_json = json.dumps(asdict(metadata), indent=2)
    if settings.model_store == "database":
        engine = make_engine(settings)
        _model_metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.delete(model_artifacts).where(model_artifacts.c.version == metadata.version))
            conn.execute(sa.insert(model_artifacts).values(
                version=metadata.version, created_at=metadata.created_at, metadata=metadata_json,
                payload=payload))
    else:
        # Artifact first, metadata last and atomically: readers see the old model or the new one.
        model_dir = _model_dir(settings)
        model_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(model_dir / metadata.artifact, payload)
        _atomic_write(model_dir / METADATA_FILE, metadata_json.encode())
    return metadata


def load(settings: Settings) -> ChurnModel:
    """The current model from the configured store, after its checksum and features are verified."""
    if settings.model_store == "database":
        metadata, payload, where = _read_from_database(settings)
    else:
        metadata, payload, where = _read_from_directory(_model_dir(settings))
    if metadata.feature_names != list(FEATURE_NAMES):
        raise ModelArtifactError(f"model {metadata.version} was trained on other features: retrain it")
    if payload is None:
        raise ModelArtifactError(f"model artifact {where}/{metadata.artifact} is missing")
    digest = hashlib.sha256(payload).hexdigest()
    if digest != metadata.sha256:
        raise ModelArtifactError(
            f"model artifact {where}/{metadata.artifact} fails its checksum (sha256 {digest[:12]}…, "
            f"expected {metadata.sha256[:12]}…): refusing to load it"
        )
    return ChurnModel(estimator=joblib.load(io.BytesIO(payload)), metadata=metadata)


def _model_dir(settings: Settings) -> Path:
    assert settings.model_dir is not None  # derived from data_dir by Settings
    return settings.model_dir


def _parse_metadata(metadata_json: str, where: str) -> ModelMetadata:
    try:
        return ModelMetadata(**json.loads(metadata_json))
    except (ValueError, TypeError) as exc:
        raise ModelArtifactError(f"unreadable model metadata in {where}: {exc}") from None


# Each store reader returns (metadata, artifact bytes or None when absent, where it looked).
def _read_from_directory(model_dir: Path) -> tuple[ModelMetadata, bytes | None, str]:
    where = str(model_dir)
    try:
        metadata = _parse_metadata((model_dir / METADATA_FILE).read_text(), where)
    except FileNotFoundError:
        raise ModelArtifactError(
            f"no model metadata at {model_dir / METADATA_FILE}: run `make bootstrap` (or jobs.train)"
        ) from None
    try:
        payload = (model_dir / metadata.artifact).read_bytes() if metadata.artifact else None
    except (FileNotFoundError, IsADirectoryError):
        payload = None
    return metadata, payload, where


def _read_from_database(settings: Settings) -> tuple[ModelMetadata, bytes | None, str]:
    where = f"table model_artifacts of {settings.database_url_safe}"
    query = (sa.select(model_artifacts.c.metadata, model_artifacts.c.payload)
             .order_by(model_artifacts.c.created_at.desc(), model_artifacts.c.version.desc()).limit(1))
    try:
        with make_engine(settings).connect() as conn:
            row = conn.execute(query).first()
    except SQLAlchemyError as exc:
        reason = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0]
        raise ModelArtifactError(f"cannot read {where}: {reason}") from None
    if row is None:
        raise ModelArtifactError(f"no model in {where}: run the bootstrap job (or jobs.train)")
    return _parse_metadata(row.metadata, where), bytes(row.payload), where
