"""What /predict needs at hand: the verified model and the Feast online store.

ServingState orchestrates four pieces: the model (`streamflow.model`), the online feature reader
(`api.online_features`), the store file's identity (`api.store_file`) and the prediction cache
(`api.prediction_cache`); the routes only turn what it returns or raises into HTTP answers.

Both are loaded at start-up and, if missing (the bootstrap job may still be running in a
cluster), retried at most every `ready_retry_seconds` by /ready and /predict; until then the
API answers 503 with the reason instead of failing to start. A store that fails while serving
is dropped and re-opened the same way, so the API recovers by itself when it comes back.

The hot path (docs/performance.md):
- features are read with the online store's own reader (`api.online_features`);
- a user's features and prediction are immutable until the next materialization (the model is
  loaded once), so each worker keeps the last `prediction_cache_size` of them. A background task
  refreshes the registry every `prediction_cache_check_seconds` and empties the cache when a
  feature view was materialized or re-applied: a prediction is at most that much older than
  the store. A store that is gone still answers 503 first: the cache never hides an outage.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from api.errors import ServiceUnavailable, UnknownUser
from api.metrics import ApiMetrics
from api.online_features import READINESS_PROBE_USER, OnlineFeatureReader
from api.prediction_cache import PredictionCache
from api.store_file import StoreFile, StoreFileMissing
from streamflow import model as model_artifact
from streamflow.feature_repo import online_store_path
from streamflow.features import encode_row
from streamflow.logs import first_line, log_event
from streamflow.settings import Settings

log = logging.getLogger("streamflow.api")


@dataclass(frozen=True)
class Prediction:
    probability: float
    label: int  # 1 = predicted to churn (probability >= prediction_threshold)
    model_version: str
    features: dict[str, Any]


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]  # per dependency: "ok" or the reason it is not ready
    model_version: str | None

    @property
    def ready(self) -> bool:
        return all(check == "ok" for check in self.checks.values())


class ServingState:
    def __init__(self, settings: Settings, metrics: ApiMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.model: model_artifact.ChurnModel | None = None
        self.reader: OnlineFeatureReader | None = None
        self.store_file = StoreFile(online_store_path(settings))  # path None: the store is a server
        self.errors: dict[str, str] = {"model": "not loaded yet", "feature_store": "not opened yet"}
        self._last_attempt = float("-inf")
        self._lock = threading.Lock()
        size = settings.prediction_cache_size
        self.cache = PredictionCache(self._compute, size, hits=metrics.cache_hit, misses=metrics.cache_miss)

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
        self.metrics.model_info.labels(loaded.version, loaded.runtime).set(1)
        log_event(
            log, "model loaded", version=loaded.version, trained_on=loaded.metadata.trained_on, runtime=loaded.runtime
        )

    def _open_store(self) -> None:
        try:
            store_file = self.store_file.identify()  # first: see StoreFile.identify
            reader = OnlineFeatureReader.open(self.settings)  # its first read included
        except Exception as exc:  # Feast raises many types; any of them means "not usable"
            self.errors["feature_store"] = (
                str(exc) if isinstance(exc, ServiceUnavailable) else f"{type(exc).__name__}: {first_line(exc)}"
            )
            log_event(log, "feature store not usable", logging.ERROR, reason=self.errors["feature_store"])
            return
        self.reader, self.store_file.opened = reader, store_file
        self.cache.clear()  # a re-opened store may hold other data than the one that failed
        self.errors.pop("feature_store", None)
        log_event(log, "feature store opened", profile=self.settings.feast_profile)

    def _check_store_file(self) -> None:
        """The open store must still read the file at its path (api.store_file). A missing file
        drops the store and raises StoreFileMissing (re-opened by the usual retry); a replaced
        one is dropped and re-opened at once."""
        if self.reader is None:
            return
        try:
            replaced = self.store_file.replaced()
        except StoreFileMissing as exc:
            self._drop_store(str(exc))
            raise
        if replaced:
            self._drop_store(f"online store file {self.store_file.path} was replaced; re-opening it", logging.WARNING)
            self.load()

    def _drop_store(self, reason: str, level: int = logging.ERROR) -> None:
        """Forget a store that failed, so the next retry opens a fresh one (no broken
        connection is ever reused)."""
        reader, self.reader, self.store_file.opened = self.reader, None, None
        self.errors["feature_store"] = reason
        self.metrics.ready.set(0)
        if reader is not None:
            reader.close()
        log_event(log, "feature store dropped", level, reason=reason)

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
        if changed:
            self.cache.clear()
            log_event(log, "feature registry changed; prediction cache emptied")

    async def watch_registry(self) -> None:
        """Run check_registry every prediction_cache_check_seconds, off the event loop."""
        while True:
            await asyncio.sleep(self.settings.prediction_cache_check_seconds)
            await asyncio.to_thread(self.check_registry)

    # -- serving ------------------------------------------------------------------------------
    async def serve(self, user_id: str) -> Prediction:
        """What POST /predict answers: a due retry first, then predict(); the predicted outcome
        counted. Raises UnknownUser or ServiceUnavailable."""
        self.retry_if_due()
        prediction = self.predict(user_id)
        (self.metrics.predicted_churn if prediction.label else self.metrics.predicted_stay).inc()
        return prediction

    def predict(self, user_id: str) -> Prediction:
        """The prediction for one user from what is loaded now (no retry: see serve); raises
        UnknownUser or ServiceUnavailable."""
        if self.model is None:
            raise ServiceUnavailable(f"model not loaded: {self.errors.get('model')}")
        try:
            self._check_store_file()  # one stat(): cheap enough for every request
        except ServiceUnavailable as exc:
            self.metrics.feature_lookup_errors.inc()
            raise ServiceUnavailable(f"feature store not available: {exc}") from None
        if self.reader is None:
            raise ServiceUnavailable(f"feature store not available: {self.errors.get('feature_store')}")
        return self.cache.get(user_id)

    def _compute(self, user_id: str) -> Prediction:
        model = self.model
        if model is None:  # predict() checked it; a model is never unloaded
            raise ServiceUnavailable(f"model not loaded: {self.errors.get('model')}")
        features = self.online_features(user_id)
        if all(value is None for value in features.values()):
            raise UnknownUser(user_id)  # exceptions are not cached: a new user shows up at once
        probability = float(model.churn_probability(encode_row(features))[0])
        label = int(probability >= self.settings.prediction_threshold)
        return Prediction(probability, label, model.version, features)

    def online_features(self, user_id: str) -> dict[str, Any]:
        """The 14 feature values of one user (None where the store has none)."""
        reader = self.reader
        if reader is None:
            raise ServiceUnavailable(f"feature store not available: {self.errors.get('feature_store')}")
        started = time.perf_counter()
        try:
            return reader.read(user_id)
        except Exception as exc:
            self.metrics.feature_lookup_errors.inc()
            error = f"{type(exc).__name__}: {first_line(exc)}"
            log_event(log, "online feature lookup failed", logging.ERROR, error=error)
            self._drop_store(f"lookup failed: {error}")
            raise ServiceUnavailable("feature store lookup failed; retry later") from None
        finally:
            self.metrics.feature_lookup.observe(time.perf_counter() - started)

    # -- readiness ----------------------------------------------------------------------------
    async def readiness(self) -> Readiness:
        """What GET /ready answers: a due retry first, then whether the model is loaded and the
        online store answers a lookup now."""
        self.retry_if_due()
        model_check = "ok" if self.model is not None else self.errors.get("model", "not loaded")
        checks = {"model": model_check, "feature_store": self.check_store()}
        readiness = Readiness(checks, self.model.version if self.model is not None else None)
        self.metrics.ready.set(1 if readiness.ready else 0)
        return readiness

    def check_store(self) -> str:
        """'ok' if the online store answers a lookup now, else the reason."""
        try:
            self._check_store_file()
        except ServiceUnavailable as exc:
            return str(exc)
        reader = self.reader
        if reader is None:
            return self.errors.get("feature_store", "not opened")
        try:
            reader.read(READINESS_PROBE_USER)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {first_line(exc)}"
            self._drop_store(f"lookup failed: {reason}")
            return reason
        return "ok"
