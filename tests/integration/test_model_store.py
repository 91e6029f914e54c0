"""The database model store (what a cluster uses): round trip, newest wins, tampering refused."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from streamflow import model
from streamflow.settings import Settings


def _database_store(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, model_store="database", database_url=f"sqlite:///{tmp_path / 'models.db'}")


def _fields(trained_on: str, created_at: str) -> dict:
    return {
        "trained_on": trained_on,
        "algorithm": "test",
        "auc": 0.5,
        "n_train": 1,
        "n_test": 1,
        "created_at": created_at,
    }


def test_database_store_round_trip_newest_wins(demo_settings: Settings, tmp_path: Path) -> None:
    trained = model.load(demo_settings)
    store = _database_store(tmp_path)
    with pytest.raises(model.ModelArtifactError, match=r"no model in table model_artifacts|cannot read table"):
        model.load(store)
    with pytest.raises(model.ModelArtifactError, match=r"no model in table model_artifacts|cannot read table"):
        model.current_version(store)
    older = model.save(trained.estimator, store, **_fields("2024-01-31", "2024-02-01T00:00:00+00:00"))
    assert model.current_version(store) == older.version
    newer = model.save(trained.estimator, store, **_fields("2024-02-29", "2024-03-01T00:00:00+00:00"))
    assert model.current_version(store) == newer.version != older.version  # without reading the artifact
    loaded = model.load(store)
    assert asdict(loaded.metadata) == asdict(newer)
    rows = np.zeros((3, 14))
    np.testing.assert_array_equal(loaded.churn_probability(rows), trained.churn_probability(rows))
    assert not (tmp_path / "model").exists(), "the database store writes nothing to model_dir"


def test_directory_store_names_its_current_version(demo_settings: Settings) -> None:
    assert model.current_version(demo_settings) == model.load(demo_settings).version


def test_database_store_refuses_a_tampered_payload(demo_settings: Settings, tmp_path: Path) -> None:
    store = _database_store(tmp_path)
    saved = model.save(model.load(demo_settings).estimator, store, **_fields("2024-01-31", "2024-02-01T00:00:00+00:00"))
    engine = sa.create_engine(store.database_url_obj)
    with engine.begin() as conn:
        payload = conn.execute(sa.select(model.model_artifacts.c.payload)).scalar_one()
        tampered = bytearray(payload)
        tampered[len(tampered) // 2] ^= 0xFF
        conn.execute(sa.update(model.model_artifacts).values(payload=bytes(tampered)))
    with pytest.raises(model.ModelArtifactError, match=f"{saved.artifact} fails its checksum"):
        model.load(store)
