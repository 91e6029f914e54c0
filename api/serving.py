"""What /predict needs at hand: the verified model and the Feast online store.

Both are loaded at start-up and, if missing (the bootstrap job may still be running in a
cluster), retried at most every `ready_retry_seconds` by /ready and /predict; until then the
API answers 503 with the reason instead of failing to start. A store that fails while serving
is dropped and re-opened the same way, so the API recovers by itself when it comes back.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from api.metrics import ApiMetrics
from streamflow import model as model_artifact
from streamflow.feature_repo import online_store_path, open_store
from streamflow.features import ENTITY_KEY, FEATURE_NAMES, FEATURE_REFS
from streamflow.logs import log_event
from streamflow.settings import Settings

log = logging.getLogger("streamflow.api")

READINESS_PROBE_USER = "__readiness_probe__"  # never a real id (the request schema forbids '_' first)


class ServiceUnavailable(Exception):
    """A dependency of /predict is not ready; the message says which and why."""


class ServingState:
    def __init__(self, settings: Settings, metrics: ApiMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.model: model_artifact.ChurnModel | None = None
        self.store: Any = None
        self._store_path = online_store_path(settings)  # the SQLite file (local profile), else None
        self._store_file: tuple[int, int] | None = None  # (device, inode) the store's connection opened
        self.errors: dict[str, str] = {"model": "not loaded yet", "feature_store": "not opened yet"}
        self._last_attempt = float("-inf")
        self._lock = threading.Lock()
        self._features = list(FEATURE_REFS)

    # -- loading ----------------------------------------------------------------------------
    def load(self) -> None:
        """Try to load whatever is not loaded yet; record why not."""
        with self._lock:
            self._last_attempt = time.monotonic()
            if self.model is None:
                self._load_model()
            if self.store is None:
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
        try:
            # Checked first: sqlite3 would create an empty file in place of a missing one, and
            # that empty file would then stand in for the real store once it came back.
            store_file = self._store_file_id()
            store = open_store(self.settings)
            # The first online read sets up connections and registry caches (50-500 ms):
            # pay it here, not in a user's request.
            self._probe(store)
        except Exception as exc:  # Feast raises many types; any of them means "not usable"
            self.errors["feature_store"] = (str(exc) if isinstance(exc, ServiceUnavailable)
                                            else f"{type(exc).__name__}: {exc}".splitlines()[0])
            log_event(log, "feature store not usable", logging.ERROR, reason=self.errors["feature_store"])
            return
        self.store, self._store_file = store, store_file
        self.errors.pop("feature_store", None)
        log_event(log, "feature store opened", profile=self.settings.feast_profile)

    def _store_file_id(self) -> tuple[int, int] | None:
        """(device, inode) of the local online store file; None for a store that is a server."""
        if self._store_path is None:
            return None
        try:
            stat = self._store_path.stat()
        except FileNotFoundError:
            raise ServiceUnavailable(f"online store file {self._store_path} is missing") from None
        return stat.st_dev, stat.st_ino

    def _check_store_file(self) -> None:
        """Feast's SQLite store keeps one connection for good: with the file moved away or
        replaced, it would go on reading the old file unseen (and /ready would say ok). So the
        open store must still be the file at the configured path; if not, it is dropped, and
        re-opened by the usual retry."""
        if self.store is None or self._store_path is None:
            return
        try:
            same_file = self._store_file_id() == self._store_file
        except ServiceUnavailable as exc:
            self._drop_store(str(exc))
            raise
        if not same_file:
            self._drop_store(f"online store file {self._store_path} was replaced; re-opening it",
                             logging.WARNING)
            self.load()

    def _drop_store(self, reason: str, level: int = logging.ERROR) -> None:
        """Forget a store that failed, so the next retry opens a fresh one (no broken
        connection is ever reused)."""
        store, self.store, self._store_file = self.store, None, None
        self.errors["feature_store"] = reason
        self.metrics.ready.set(0)
        # Feast's SQLite store closes nothing itself (its close() is a no-op): close the cached
        # connection here, or each drop would leak a file descriptor.
        try:
            connection = store._get_provider().online_store._conn  # Feast internals: guarded
        except AttributeError:
            connection = None
        if connection is not None:
            connection.close()
        log_event(log, "feature store dropped", level, reason=reason)

    def retry_if_due(self) -> None:
        if not self.is_ready and time.monotonic() - self._last_attempt >= self.settings.ready_retry_seconds:
            self.load()

    @property
    def is_ready(self) -> bool:
        return self.model is not None and self.store is not None

    # -- serving ------------------------------------------------------------------------------
    def require_model(self) -> model_artifact.ChurnModel:
        self.retry_if_due()
        if self.model is None:
            raise ServiceUnavailable(f"model not loaded: {self.errors.get('model')}")
        return self.model

    def online_features(self, user_id: str) -> dict[str, Any]:
        """The 14 feature values of one user (None where the store has none)."""
        self.retry_if_due()
        try:
            self._check_store_file()
        except ServiceUnavailable as exc:
            self.metrics.feature_lookup_errors.inc()
            raise ServiceUnavailable(f"feature store not available: {exc}") from None
        if self.store is None:
            raise ServiceUnavailable(f"feature store not available: {self.errors.get('feature_store')}")
        started = time.perf_counter()
        try:
            response = self.store.get_online_features(
                features=self._features, entity_rows=[{ENTITY_KEY: user_id}]
            ).to_dict()
        except Exception as exc:
            self.metrics.feature_lookup_errors.inc()
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            log_event(log, "online feature lookup failed", logging.ERROR, error=error)
            self._drop_store(f"lookup failed: {error}")
            raise ServiceUnavailable("feature store lookup failed; retry later") from None
        finally:
            self.metrics.feature_lookup.observe(time.perf_counter() - started)
        return {name: response[name][0] for name in FEATURE_NAMES}

    def check_store(self) -> str:
        """'ok' if the online store answers a lookup now, else the reason."""
        try:
            self._check_store_file()
        except ServiceUnavailable as exc:
            return str(exc)
        if self.store is None:
            return self.errors.get("feature_store", "not opened")
        try:
            self._probe(self.store)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            self._drop_store(f"lookup failed: {reason}")
            return reason
        return "ok"

    def _probe(self, store: Any) -> None:
        """A lookup of a user that never exists: proves the online tables answer."""
        store.get_online_features(features=self._features, entity_rows=[{ENTITY_KEY: READINESS_PROBE_USER}])
