"""What /predict needs at hand: the verified model and the Feast online store.

Both are loaded at start-up and, if missing (the bootstrap job may still be running in a
cluster), retried at most every `ready_retry_seconds` by /ready and /predict; until then the
API answers 503 with the reason instead of failing to start.

The hot path (docs/performance.md):
- features are read with the online store's own reader (Feast's `OnlineStore.online_read`), one
  call per feature view, with the views resolved once per registry version: Feast's
  `get_online_features` re-plans the same 14-feature request on every call (0.7 ms vs 0.25 ms);
- a user's features and prediction are immutable until the next materialization (the model is
  loaded once), so each worker keeps the last `prediction_cache_size` of them. A background task
  refreshes the registry every `prediction_cache_check_seconds` and empties the cache when a
  feature view was materialized or re-applied: a prediction is at most that much older than
  the store.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from api.metrics import ApiMetrics
from streamflow import model as model_artifact
from streamflow.features import ENTITY_KEY, FEATURE_GROUPS, encode_row
from streamflow.logs import log_event
from streamflow.settings import Settings

log = logging.getLogger("streamflow.api")

READINESS_PROBE_USER = "__readiness_probe__"  # never a real id (the request schema forbids '_' first)


class ServiceUnavailable(Exception):
    """A dependency of /predict is not ready; the message says which and why."""


class UnknownUser(Exception):
    """The online store has no features for this user."""


@dataclass(frozen=True)
class Prediction:
    probability: float
    model_version: str
    features: dict[str, Any]


class OnlineFeatureReader:
    """One user's 14 feature values, straight from the online store's reader."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.registry_version: tuple = ()
        self._plan: list[tuple[Any, list[str]]] = []
        self.refresh()

    def refresh(self) -> bool:
        """Re-read the registry; True when a view was applied or materialized since last time."""
        self.store.refresh_registry()
        views = {view.name: view for view in self.store.list_feature_views(allow_cache=True)}
        missing = [group.view for group in FEATURE_GROUPS if group.view not in views]
        if missing:
            raise LookupError(f"feature views {missing} are not in the Feast registry: run feast apply (make bootstrap)")
        self._plan = [(views[g.view], [f.name for f in g.features]) for g in FEATURE_GROUPS]
        # Feast appends an interval per materialization (even of the same window) and stamps
        # last_updated on every apply.
        version = tuple(
            (view.name, view.last_updated_timestamp, len(view.materialization_intervals))
            for view, _ in self._plan
        )
        changed, self.registry_version = version != self.registry_version, version
        return changed

    def read(self, user_id: str) -> dict[str, Any]:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import feast_value_type_to_python_type

        key = EntityKey(join_keys=[ENTITY_KEY], entity_values=[Value(string_val=user_id)])
        values: dict[str, Any] = {}
        online_store, config = self.store.provider.online_store, self.store.config
        for view, names in self._plan:
            [(_, row)] = online_store.online_read(config, view, [key], names)
            for name in names:
                value = row.get(name) if row else None
                values[name] = None if value is None else feast_value_type_to_python_type(value)
        return values


class ServingState:
    def __init__(self, settings: Settings, metrics: ApiMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.model: model_artifact.ChurnModel | None = None
        self.reader: OnlineFeatureReader | None = None
        self.errors: dict[str, str] = {"model": "not loaded yet", "feature_store": "not opened yet"}
        self._last_attempt = float("-inf")
        self._lock = threading.Lock()
        size = settings.prediction_cache_size
        self._predict = lru_cache(maxsize=size)(self._compute) if size else self._compute

    # -- loading ----------------------------------------------------------------------------
    def load(self) -> None:
        """Try to load whatever is not loaded yet; record why not."""
        with self._lock:
            self._last_attempt = time.monotonic()
            if self.model is None:
                self._load_model()
            if self.reader is None:
                self._open_store()
            self.metrics.ready.set(1 if self.is_ready else 0)

    def _load_model(self) -> None:
        try:
            loaded = model_artifact.load(self.settings)
        except model_artifact.ModelArtifactError as exc:
            self.errors["model"] = str(exc)
            log_event(log, "model not loaded", logging.ERROR, reason=str(exc))
            return
        self.model = loaded
        self.errors.pop("model", None)
        self.metrics.model_info.labels(loaded.version).set(1)
        log_event(log, "model loaded", version=loaded.version, trained_on=loaded.metadata.trained_on)

    def _open_store(self) -> None:
        from streamflow.feature_repo import open_store

        try:
            reader = OnlineFeatureReader(open_store(self.settings))
            # The first online read sets up connections and caches (50-500 ms): pay it here,
            # not in a user's request.
            reader.read(READINESS_PROBE_USER)
        except Exception as exc:  # Feast raises many types; any of them means "not usable"
            self.errors["feature_store"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            log_event(log, "feature store not usable", logging.ERROR, reason=self.errors["feature_store"])
            return
        self.reader = reader
        self.errors.pop("feature_store", None)
        log_event(log, "feature store opened", profile=self.settings.feast_profile)

    def retry_if_due(self) -> None:
        if not self.is_ready and time.monotonic() - self._last_attempt >= self.settings.ready_retry_seconds:
            self.load()

    @property
    def is_ready(self) -> bool:
        return self.model is not None and self.reader is not None

    # -- cache validity -------------------------------------------------------------------------
    def check_registry(self) -> None:
        """Empty the prediction cache if the registry records a new materialization or apply."""
        reader = self.reader
        if reader is None:
            return
        try:
            changed = reader.refresh()
        except Exception as exc:  # a registry blip: keep serving, try again next interval
            log_event(log, "registry check failed", logging.WARNING, error=f"{type(exc).__name__}: {exc}")
            return
        if changed and hasattr(self._predict, "cache_clear"):
            self._predict.cache_clear()
            log_event(log, "feature registry changed; prediction cache emptied")

    async def watch_registry(self) -> None:
        """Run check_registry every prediction_cache_check_seconds, off the event loop."""
        while True:
            await asyncio.sleep(self.settings.prediction_cache_check_seconds)
            await asyncio.to_thread(self.check_registry)

    # -- serving ------------------------------------------------------------------------------
    def predict(self, user_id: str) -> Prediction:
        """The prediction for one user; raises UnknownUser or ServiceUnavailable."""
        self.retry_if_due()
        if self.model is None:
            raise ServiceUnavailable(f"model not loaded: {self.errors.get('model')}")
        if self.reader is None:
            raise ServiceUnavailable(f"feature store not available: {self.errors.get('feature_store')}")
        cache_info = getattr(self._predict, "cache_info", None)  # None when the cache is off
        misses_before = cache_info().misses if cache_info else None
        prediction = self._predict(user_id)
        hit = cache_info is not None and cache_info().misses == misses_before
        (self.metrics.cache_hit if hit else self.metrics.cache_miss).inc()
        return prediction

    def _compute(self, user_id: str) -> Prediction:
        assert self.model is not None
        features = self.online_features(user_id)
        if all(value is None for value in features.values()):
            raise UnknownUser(user_id)  # exceptions are not cached: a new user shows up at once
        probability = float(self.model.churn_probability(encode_row(features))[0])
        return Prediction(probability, self.model.version, features)

    def online_features(self, user_id: str) -> dict[str, Any]:
        """The 14 feature values of one user (None where the store has none)."""
        assert self.reader is not None
        started = time.perf_counter()
        try:
            return self.reader.read(user_id)
        except Exception as exc:
            self.metrics.feature_lookup_errors.inc()
            log_event(log, "online feature lookup failed", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            raise ServiceUnavailable("feature store lookup failed; retry later") from None
        finally:
            self.metrics.feature_lookup.observe(time.perf_counter() - started)

    def check_store(self) -> str:
        """'ok' if the online store answers a lookup now, else the reason."""
        if self.reader is None:
            return self.errors.get("feature_store", "not opened")
        try:
            self.reader.read(READINESS_PROBE_USER)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}".splitlines()[0]
        return "ok"
