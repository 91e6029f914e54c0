"""The churn model artifact: a pickled scikit-learn classifier plus verified metadata.

`model.json` names the artifact file, its sha256, the feature order and a version. The API
loads a model only after the checksum matches: a pickle is code, so an unverified or
half-written file is never unpickled.
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

from streamflow.features import FEATURE_NAMES

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


def save(estimator: Any, model_dir: Path, **fields: Any) -> ModelMetadata:
    """Write the artifact, then its metadata (last, atomically: readers see old or new, never half)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    version = f"{fields['trained_on'].replace('-', '')}-{digest[:10]}"
    artifact = f"model-{digest[:16]}.joblib"
    _atomic_write(model_dir / artifact, payload)
    metadata = ModelMetadata(version=version, artifact=artifact, sha256=digest,
                             feature_names=list(FEATURE_NAMES), **fields)
    _atomic_write(model_dir / METADATA_FILE, json.dumps(asdict(metadata), indent=2).encode())
    return metadata


def load(model_dir: Path) -> ChurnModel:
    meta_path = model_dir / METADATA_FILE
    try:
        metadata = ModelMetadata(**json.loads(meta_path.read_text()))
    except FileNotFoundError:
        raise ModelArtifactError(f"no model metadata at {meta_path}: run `make bootstrap` (or jobs.train)") from None
    except (ValueError, TypeError) as exc:
        raise ModelArtifactError(f"unreadable model metadata {meta_path}: {exc}") from None
    if metadata.feature_names != list(FEATURE_NAMES):
        raise ModelArtifactError(f"model {metadata.version} was trained on other features: retrain it")
    artifact_path = model_dir / metadata.artifact
    try:
        payload = artifact_path.read_bytes()
    except FileNotFoundError:
        raise ModelArtifactError(f"model artifact {artifact_path} is missing") from None
    digest = hashlib.sha256(payload).hexdigest()
    if digest != metadata.sha256:
        raise ModelArtifactError(
            f"model artifact {artifact_path} fails its checksum (sha256 {digest[:12]}…, "
            f"expected {metadata.sha256[:12]}…): refusing to load it"
        )
    return ChurnModel(estimator=joblib.load(io.BytesIO(payload)), metadata=metadata)
