"""What /predict needs at hand, and keeping it so: the verified model and the Feast online store.

ServingState orchestrates four pieces: the model (`streamflow.model`), the online feature reader
(`api.online_features`), the store file's identity (`api.store_file`) and the prediction cache
(`api.prediction_cache`).

Both the model and the store are loaded at start-up and, if missing (the bootstrap job may still
be running in a cluster), retried at most every `ready_retry_seconds` by /ready and /predict;
until then the API answers 503 with the reason instead of failing to start. A store that fails
while serving is dropped and re-opened the same way, so the API recovers by itself when it comes
back; a store file replaced under the open store is re-opened at once.

Loading off the event loop. Loading the model (checksum, unpickling, compiling its trees) and
opening the store (Feast's import on first use takes 8-13 s here, the first read 50-500 ms) block
for a long time, so `load_off_loop` runs them in a worker thread (`asyncio.to_thread`), one load
at a time. The thread only loads: it builds a new model and reader and returns them, and the
event loop installs them, so the state requests read is only ever changed on the loop (the
registry watcher's thread aside, which refreshes the reader's plan and empties the cache).
The request that starts a load awaits it, so its answer reflects the retry (a /ready that finds
the model arrived answers 200). Requests that arrive while a load runs do not wait for it nor
start another: they answer from the state as it is, 503 with the last reason. Waiting would pile
requests up behind a load that can take seconds, and a readiness probe that times out says less
than a 503 with the reason. The fast path (model and store loaded, prediction cached) does not
go near any of this: one check of two attributes, no lock, no thread.

The hot path (docs/performance.md): features are read per feature view with the store's own
reader; predictions are cached per worker (a user's features and prediction are immutable until
the next materialization). A background task refreshes the registry every
`prediction_cache_check_seconds` and empties the cache when a feature view was materialized or
re-applied: a prediction is at most that much older than the store. A store that is gone still
answers 503 first: the cache never hides an outage.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api.errors import ServiceUnavailable, UnknownUser
from api.metrics import ApiMetrics
from api.online_features import READINESS_PROBE_USER, OnlineFeatureReader
from api.prediction_cache import PredictionCache
from api.store_file import FileId, StoreFile, StoreFileMissing
from streamflow import model as model_artifact
from streamflow.feature_repo import online_store_path
from streamflow.features import encode_row
from streamflow.logs import first_line, log_event
from streamflow.settings import Settings

log = logging.getLogger("streamflow.api")

ModelLoader = Callable[[Settings], model_artifact.ChurnModel]  # blocking; raises ModelArtifactError
ReaderOpener = Callable[[Settings], OnlineFeatureReader]  # blocking; raises anything


class StoreFileReplaced(ServiceUnavailable):
    """The open store reads a file that is no longer the one at its path; it was dropped."""


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


@dataclass
class _Loaded:
    """What one load attempt produced, in its worker thread: new objects only."""

    model: model_artifact.ChurnModel | None = None
    model_error: str | None = None
    reader: OnlineFeatureReader | None = None
    store_file: FileId | None = None
    store_error: str | None = None


class ServingState:
    def __init__(
        self,
        settings: Settings,
        metrics: ApiMetrics,
        *,
        load_model: ModelLoader = model_artifact.load,
        open_reader: ReaderOpener = OnlineFeatureReader.open,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.model: model_artifact.ChurnModel | None = None
        self.reader: OnlineFeatureReader | None = None
        self.store_file = StoreFile(online_store_path(settings))  # path None: the store is a server
        self.errors: dict[str, str] = {"model": "not loaded yet", "feature_store": "not opened yet"}
        size = settings.prediction_cache_size
        self.cache = PredictionCache(self._compute, size, hits=metrics.cache_hit, misses=metrics.cache_miss)
        self._load_model, self._open_reader = load_model, open_reader
        self._last_attempt = float("-inf")
        self._loading: asyncio.Task[None] | None = None  # the load in progress, on the event loop
        self._load_lock = threading.Lock()  # one load at a time, also for load() called from tools

    @property
    def is_ready(self) -> bool:
        return self.model is not None and self.reader is not None

    # -- loading ----------------------------------------------------------------------------
    def load(self) -> None:
        """Load whatever is not loaded yet, here and now (blocking); record why not. For tools
        and tests: the app loads with load_off_loop."""
        self._last_attempt = time.monotonic()
        self._install(self._attempt(self.model is None, self.reader is None))

    async def load_off_loop(self) -> None:
        """Load whatever is not loaded yet in a worker thread and wait for it; if a load is
        already running, return at once instead (see the module docstring)."""
        if self._loading is not None:
            return
        self._last_attempt = time.monotonic()
        self._loading = loading = asyncio.create_task(self._load_in_thread())
        # shielded: a request that goes away does not cancel the load others depend on
        await asyncio.shield(loading)

    async def _load_in_thread(self) -> None:
        try:
            loaded = await asyncio.to_thread(self._attempt, self.model is None, self.reader is None)
            self._install(loaded)
        finally:
            self._loading = None

    async def retry_if_due(self) -> None:
        """Load what is missing if the last attempt is `ready_retry_seconds` old."""
        if not self.is_ready and time.monotonic() - self._last_attempt >= self.settings.ready_retry_seconds:
            await self.load_off_loop()

    def _attempt(self, need_model: bool, need_store: bool) -> _Loaded:
        """Blocking, in a worker thread: builds what is asked for, changes no shared state."""
        loaded = _Loaded()
        with self._load_lock:
            if need_model:
                try:
                    loaded.model = self._load_model(self.settings)
                except model_artifact.ModelArtifactError as exc:
                    loaded.model_error = str(exc)
                    log_event(log, "model not loaded", logging.ERROR, reason=str(exc))
            if need_store:
                try:
                    loaded.store_file = self.store_file.identify()  # first: see StoreFile.identify
                    loaded.reader = self._open_reader(self.settings)
                except Exception as exc:  # Feast raises many types; any of them means "not usable"
                    loaded.store_file = None
                    loaded.store_error = (
                        str(exc) if isinstance(exc, ServiceUnavailable) else f"{type(exc).__name__}: {first_line(exc)}"
                    )
                    log_event(log, "feature store not usable", logging.ERROR, reason=loaded.store_error)
        return loaded

    def _install(self, loaded: _Loaded) -> None:
        """On the event loop (or the caller of load()): make what was loaded the state served."""
        if loaded.model is not None:
            replaced = (self.model.version, self.model.runtime) if self.model is not None else None
            self.model = model = loaded.model
            self.errors.pop("model", None)
            self.metrics.model_served(model.version, model.runtime, replaced)
            if replaced is not None:
                self.cache.clear()  # cached predictions are the replaced model's
            log_event(
                log,
                "model loaded" if replaced is None else "model replaced",
                version=model.version,
                trained_on=model.metadata.trained_on,
                runtime=model.runtime,
                replaced=replaced[0] if replaced else None,
            )
        elif loaded.model_error is not None:
            self.errors["model"] = loaded.model_error
        if loaded.reader is not None:
            self.reader, self.store_file.opened = loaded.reader, loaded.store_file
            self.cache.clear()  # a re-opened store may hold other data than the one that failed
            self.errors.pop("feature_store", None)
            log_event(log, "feature store opened", profile=self.settings.feast_profile)
        elif loaded.store_error is not None:
            self.errors["feature_store"] = loaded.store_error
        self.metrics.ready.set(1 if self.is_ready else 0)

    def _check_store_file(self) -> None:
        """The open store must still read the file at its path. If the file is gone or was
        replaced, the store is dropped and StoreFileMissing or StoreFileReplaced raised: a new
        file is re-opened at once by the caller, a missing one by the usual retry."""
        if self.reader is None:
            return
        try:
            replaced = self.store_file.replaced()
        except StoreFileMissing as exc:
            self._drop_store(str(exc))
            raise
        if replaced:
            reason = f"online store file {self.store_file.path} was replaced; re-opening it"
            self._drop_store(reason, logging.WARNING)
            raise StoreFileReplaced(reason)

    def _drop_store(self, reason: str, level: int = logging.ERROR) -> None:
        """Forget a store that failed, so the next retry opens a fresh one (no broken
        connection is ever reused)."""
        reader, self.reader, self.store_file.opened = self.reader, None, None
        self.errors["feature_store"] = reason
        self.metrics.ready.set(0)
        if reader is not None:
            reader.close()
        log_event(log, "feature store dropped", level, reason=reason)

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

    def check_model(self) -> _Loaded | None:
        """Blocking, in a worker thread: the store's model if it is not the one served (a
        promotion), loaded and verified; None when nothing changed or the new one is refused (a
        model that fails its checksum or cannot be read is logged and never served: the current
        one keeps serving)."""
        served = self.model
        if served is None:  # the ordinary retry loads the first model
            return None
        try:
            if model_artifact.current_version(self.settings) == served.version:
                return None
            with self._load_lock:
                return _Loaded(model=self._load_model(self.settings))
        except model_artifact.ModelArtifactError as exc:
            log_event(
                log,
                "new model refused; the current one keeps serving",
                logging.ERROR,
                serving=served.version,
                reason=first_line(exc),
            )
            return None

    async def watch_registry(self) -> None:
        """Every prediction_cache_check_seconds, off the event loop: check the registry (a new
        materialization empties the cache) and the model store (a promoted model is loaded in the
        thread and installed here, on the loop: requests in flight finish with the model they
        started with, the next ones get the new one)."""
        while True:
            await asyncio.sleep(self.settings.prediction_cache_check_seconds)
            await asyncio.to_thread(self.check_registry)
            promoted = await asyncio.to_thread(self.check_model)
            if promoted is not None and self._loading is None:
                self._install(promoted)

    # -- serving ------------------------------------------------------------------------------
    async def serve(self, user_id: str) -> Prediction:
        """What POST /predict answers: a due retry first (off the loop), then predict(); the
        predicted outcome counted. Raises UnknownUser or ServiceUnavailable."""
        if self.model is None or self.reader is None:
            await self.retry_if_due()
        try:
            prediction = self.predict(user_id)
        except StoreFileReplaced:
            await self.load_off_loop()  # at once, not after ready_retry_seconds
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
        except StoreFileReplaced as exc:
            raise StoreFileReplaced(f"feature store not available: {exc}") from None
        except StoreFileMissing as exc:
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
        """What GET /ready answers: a due retry first (off the loop), then whether the model is
        loaded and the online store answers a lookup now."""
        await self.retry_if_due()
        model_check = "ok" if self.model is not None else self.errors.get("model", "not loaded")
        checks = {"model": model_check, "feature_store": await self.check_store()}
        readiness = Readiness(checks, self.model.version if self.model is not None else None)
        self.metrics.ready.set(1 if readiness.ready else 0)
        return readiness

    async def check_store(self) -> str:
        """'ok' if the online store answers a lookup now, else the reason."""
        try:
            self._check_store_file()
        except StoreFileMissing as exc:
            return str(exc)
        except StoreFileReplaced:
            await self.load_off_loop()  # at once, not after ready_retry_seconds
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
