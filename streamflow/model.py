"""The churn model artifact: a pickled scikit-learn classifier plus verified metadata.

The metadata names the artifact, its sha256, the feature order and a version. The API loads a
model only after the checksum matches: a pickle is code, so an unverified or half-written
artifact is never unpickled.

Serving runs the same trees through Treelite's compiled predictor (GTIL) instead of
scikit-learn's `predict_proba`, which spends most of its time on per-call validation and one Cython call per
tree on a single row (docs/performance.md). The artifact stays the scikit-learn estimator: the
trees are converted when the model is loaded and, before they serve, checked against
scikit-learn on rows that sit on every split threshold of the model. A model the converter
cannot take, or whose conversion disagrees, is served by scikit-learn itself (logged).

Two stores (setting `model_store`): `directory` (model_dir/model.json + model-<sha>.joblib, the
embedded default) and `database` (table `model_artifacts` in the snapshot database, newest row
wins: what a cluster uses, so API replicas on any node share one model without a shared volume).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sqlalchemy as sa
import treelite
from sqlalchemy.exc import SQLAlchemyError

from streamflow.db import make_engine
from streamflow.features import FEATURE_NAMES
from streamflow.files import write_atomically
from streamflow.logs import first_line, log_event
from streamflow.settings import Settings

log = logging.getLogger("streamflow.model")

METADATA_FILE = "model.json"
# Largest |compiled - scikit-learn| probability accepted on the probe rows: both add the same
# float64 leaf values, so only summation order may differ.
COMPILED_TOLERANCE = 1e-9


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
    compiled: Any = None  # the same trees as a Treelite model; None: scikit-learn serves
    threads: int = 1

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def runtime(self) -> str:
        return "treelite" if self.compiled is not None else "sklearn"

    def churn_probability(self, rows: np.ndarray) -> np.ndarray:
        """Probability of churn for (n, 14) encoded rows; numpy in, numpy out (no DataFrame)."""
        if self.compiled is not None:
            return _compiled_probability(self.compiled, rows, self.threads)
        return self.estimator.predict_proba(rows)[:, 1]


def _compiled_probability(compiled: Any, rows: np.ndarray, threads: int) -> np.ndarray:
    # (rows, targets, classes) = (n, 1, 1) for a binary classifier: the positive class, after the
    # model's sigmoid
    return treelite.gtil.predict(compiled, np.ascontiguousarray(rows, dtype=np.float64), nthread=threads)[:, 0, 0]


def compile_trees(estimator: Any, threads: int = 1) -> tuple[Any, str]:
    """The estimator's trees as a Treelite model, verified against the estimator; (None, reason)
    when it cannot be converted or the conversion disagrees."""
    try:
        with warnings.catch_warnings():
            # Treelite casts scikit-learn's category list to ints; the list ends in NaN when the
            # training data had missing categories, and NaN is routed by the split's missing-value
            # direction, not by that list (the probe below covers missing values)
            warnings.filterwarnings("ignore", "invalid value encountered in cast", RuntimeWarning)
            compiled = treelite.sklearn.import_model(estimator)
    except Exception as exc:  # the converter raises several types for what it does not support
        return None, f"Treelite cannot convert {type(estimator).__name__}: {type(exc).__name__}: {exc}"
    probe = threshold_probe(compiled)
    difference = float(
        np.max(np.abs(_compiled_probability(compiled, probe, threads) - estimator.predict_proba(probe)[:, 1]))
    )
    if not difference <= COMPILED_TOLERANCE:
        return None, f"compiled trees disagree with scikit-learn by {difference:.3g} on the probe rows"
    return compiled, "ok"


def threshold_probe(compiled: Any) -> np.ndarray:
    """Rows that put every feature on each of its split thresholds, just above each, on every
    category the model splits on, and on missing values: where a converted tree could go the
    other way than the original."""
    model = json.loads(compiled.dump_as_json(pretty_print=False))
    values: list[set[float]] = [{math.nan} for _ in range(model["num_feature"])]
    for tree in model["trees"]:
        for node in tree["nodes"]:
            if "threshold" in node:
                values[node["split_feature_id"]].update((node["threshold"], np.nextafter(node["threshold"], np.inf)))
            elif "category_list" in node:
                values[node["split_feature_id"]].update(map(float, node["category_list"]))
    n_rows = max(len(v) for v in values)
    # each column cycles through its own values, so every value meets a mix of the others
    rng = np.random.default_rng(0)
    return np.column_stack([rng.permutation(np.resize(sorted(v, key=_nan_last), n_rows)) for v in values])


def _nan_last(value: float) -> tuple[bool, float]:
    return math.isnan(value), value


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
    metadata = ModelMetadata(
        version=f"{fields['trained_on'].replace('-', '')}-{digest[:10]}",
        artifact=f"model-{digest[:16]}.joblib",
        sha256=digest,
        feature_names=list(FEATURE_NAMES),
        **fields,
    )
    metadata_json = json.dumps(asdict(metadata), indent=2)
    if settings.model_store == "database":
        engine = make_engine(settings)
        _model_metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.delete(model_artifacts).where(model_artifacts.c.version == metadata.version))
            conn.execute(
                sa.insert(model_artifacts).values(
                    version=metadata.version, created_at=metadata.created_at, metadata=metadata_json, payload=payload
                )
            )
    else:
        # Artifact first, metadata last and atomically: readers see the old model or the new one.
        model_dir = _model_dir(settings)
        model_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(model_dir / metadata.artifact, lambda tmp: tmp.write_bytes(payload))
        write_atomically(model_dir / METADATA_FILE, lambda tmp: tmp.write_text(metadata_json))
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
    estimator = joblib.load(io.BytesIO(payload))
    compiled = None
    if settings.model_runtime == "treelite":
        compiled, reason = compile_trees(estimator, settings.model_threads)
        if compiled is None:
            log_event(
                log,
                "compiled model refused; scikit-learn serves it",
                logging.WARNING,
                version=metadata.version,
                reason=reason,
            )
    return ChurnModel(estimator=estimator, metadata=metadata, compiled=compiled, threads=settings.model_threads)


def current_version(settings: Settings) -> str:
    """The version the store holds now, read without the artifact: a cheap check a server can
    make often to notice a promoted model (load() then verifies it before it serves)."""
    if settings.model_store == "database":
        row = _newest_row(settings, model_artifacts.c.version)
        if row is None:
            raise ModelArtifactError(f"no model in {_database_where(settings)}: run the bootstrap job (or jobs.train)")
        return str(row.version)
    metadata_path = _model_dir(settings) / METADATA_FILE
    try:
        return _parse_metadata(metadata_path.read_text(), str(metadata_path)).version
    except FileNotFoundError:
        raise ModelArtifactError(f"no model metadata at {metadata_path}") from None


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


def _database_where(settings: Settings) -> str:
    return f"table model_artifacts of {settings.database_url_safe}"


def _newest_row(settings: Settings, *columns: sa.ColumnElement[Any]) -> sa.Row[Any] | None:
    """The newest model's `columns` in the database store (None when it holds none)."""
    query = sa.select(*columns).order_by(model_artifacts.c.created_at.desc(), model_artifacts.c.version.desc()).limit(1)
    # a fresh engine per read, disposed here: the API asks for the current version every few
    # seconds in every worker, and an engine left to the garbage collector keeps its pool open
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            return conn.execute(query).first()
    except SQLAlchemyError as exc:
        reason = first_line(getattr(exc, "orig", None) or exc)
        raise ModelArtifactError(f"cannot read {_database_where(settings)}: {reason}") from None
    finally:
        engine.dispose()


def _read_from_database(settings: Settings) -> tuple[ModelMetadata, bytes | None, str]:
    where = _database_where(settings)
    row = _newest_row(settings, model_artifacts.c.metadata, model_artifacts.c.payload)
    if row is None:
        raise ModelArtifactError(f"no model in {where}: run the bootstrap job (or jobs.train)")
    return _parse_metadata(row.metadata, where), bytes(row.payload), where
