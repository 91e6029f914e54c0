"""The compiled model runtime: Treelite serves the same probabilities as scikit-learn, its
conversion is verified at load on every split threshold, and a refused conversion falls back to
scikit-learn instead of serving wrong numbers."""

from __future__ import annotations

import copy
import json
import logging

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from streamflow import db, model
from streamflow.datasets import load_snapshot
from streamflow.features import encode_frame
from streamflow.settings import Settings


@pytest.fixture(scope="module")
def snapshot_rows(demo_settings: Settings) -> np.ndarray:
    engine = db.make_engine(demo_settings)
    return np.vstack([encode_frame(load_snapshot(engine, as_of)) for as_of in db.list_snapshots(engine)])


def test_treelite_serves_scikit_learns_probabilities(demo_settings: Settings, snapshot_rows: np.ndarray) -> None:
    loaded = model.load(demo_settings)
    assert loaded.runtime == "treelite"
    rng = np.random.default_rng(7)
    with_missing = snapshot_rows.copy()
    with_missing[rng.random(with_missing.shape) < 0.15] = np.nan  # every column, categories too
    for rows in (snapshot_rows, with_missing, snapshot_rows[:1]):
        expected = loaded.estimator.predict_proba(rows)[:, 1]
        np.testing.assert_allclose(loaded.churn_probability(rows), expected, rtol=0, atol=1e-12)


def test_sklearn_runtime_is_a_setting(demo_settings: Settings) -> None:
    loaded = model.load(demo_settings.model_copy(update={"model_runtime": "sklearn"}))
    assert loaded.runtime == "sklearn" and loaded.compiled is None


def test_the_probe_puts_every_feature_on_each_threshold_and_just_above(demo_settings: Settings) -> None:
    compiled, reason = model.compile_trees(model.load(demo_settings).estimator)
    assert reason == "ok"
    probe = model.threshold_probe(compiled)
    splits = [
        (node["split_feature_id"], node["threshold"])
        for tree in json.loads(compiled.dump_as_json(pretty_print=False))["trees"]
        for node in tree["nodes"]
        if "threshold" in node
    ]
    assert len(splits) > 100  # 100 trees of depth 3: hundreds of numeric splits
    for feature, threshold in splits:
        column = probe[:, feature]
        assert threshold in column and np.nextafter(threshold, np.inf) in column, (feature, threshold)
    assert np.isnan(probe).any(axis=0).all(), "every feature is also probed missing"


def test_a_conversion_one_ulp_off_is_refused_and_scikit_learn_serves(
    demo_settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import treelite

    estimator = model.load(demo_settings).estimator
    # What a converter bug at a boundary would do: the first tree's root threshold moved by one
    # ulp. Random rows would almost never land on it; the probe does.
    shifted = copy.deepcopy(estimator)
    shifted._predictors[0][0].nodes[0]["num_threshold"] = np.nextafter(
        shifted._predictors[0][0].nodes[0]["num_threshold"], -np.inf
    )
    convert = treelite.sklearn.import_model
    monkeypatch.setattr(treelite.sklearn, "import_model", lambda _: convert(shifted))
    compiled, reason = model.compile_trees(estimator)
    assert compiled is None and "disagree" in reason, reason
    with caplog.at_level(logging.WARNING, logger="streamflow.model"):
        loaded = model.load(demo_settings)
    assert loaded.runtime == "sklearn"
    assert any("compiled model refused" in r.getMessage() for r in caplog.records)
    rows = np.zeros((2, 14))
    np.testing.assert_array_equal(loaded.churn_probability(rows), estimator.predict_proba(rows)[:, 1])


def test_a_model_treelite_cannot_take_is_served_by_scikit_learn(snapshot_rows: np.ndarray) -> None:
    labels = np.arange(len(snapshot_rows)) % 2
    compiled, reason = model.compile_trees(DummyClassifier().fit(snapshot_rows, labels))
    assert compiled is None and "cannot convert DummyClassifier" in reason, reason
