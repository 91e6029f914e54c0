"""All StreamFlow settings, in one place.

Every component (data generator, bootstrap, training, API, drift job) reads a `Settings` built
from environment variables prefixed `STREAMFLOW_` (e.g. `STREAMFLOW_DATABASE_URL`). Paths that
are not set explicitly are derived from `data_dir`, so one variable moves the whole embedded
default elsewhere.
"""

from __future__ import annotations

import os
import sys
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

from streamflow.drift import ExitCode

# Secrets may also come as files, one per setting, named like the variable in lower case (e.g.
# `streamflow_database_url`): how Kubernetes hands a Secret to a pod without putting it in the
# environment. The directory is itself given by a variable, read once here.
SECRETS_DIR = os.environ.get("STREAMFLOW_SECRETS_DIR") or None
ENV_PREFIX = "STREAMFLOW_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", secrets_dir=SECRETS_DIR)

    # --- storage -------------------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="root of the embedded default's files")
    database_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL of the snapshot database; default: SQLite file in data_dir. "
        "A secret: it may carry a password, so it is never logged in clear.",
    )
    feast_profile: Literal["local", "postgres"] = Field(
        "local",
        description="local: Parquet offline store derived from the SQL tables + SQLite online "
        "store; postgres: offline store, online store and registry in the snapshot database",
    )
    feast_project: str = "streamflow"
    model_store: Literal["directory", "database"] = Field(
        "directory",
        description="directory: model_dir on local disk; database: table model_artifacts in the "
        "snapshot database (a cluster: every API replica reads the same model, no shared volume)",
    )
    model_dir: Path | None = None
    reports_dir: Path = Path("reports")

    # --- demo data -----------------------------------------------------------------------
    n_users: int = Field(5000, ge=10, le=1_000_000)
    seed: int = 42

    # --- drift job -----------------------------------------------------------------------
    drift_threshold: float = Field(0.30, gt=0.0, le=1.0)
    drift_reference: date | None = None
    drift_current: date | None = None
    drift_sample_rows: int | None = Field(
        None,
        ge=1000,
        description="compare a seeded random sample of this many users per month instead of all "
        "(off by default; logged and recorded in the report when on)",
    )
    status_sink: Literal["file", "configmap"] = "file"
    status_configmap: str = "streamflow-drift-status"
    status_namespace: str | None = Field(
        None, description="namespace of the status ConfigMap; default: the pod's own, else 'default'"
    )
    status_file: Path | None = None
    pushgateway_url: str | None = Field(
        None,
        description="Prometheus Pushgateway the drift job pushes its outcome to (e.g. "
        "http://127.0.0.1:9091); unset: no push",
    )

    # --- guarded retraining (jobs/retrain.py) ------------------------------------------------
    retrain_mode: Literal["dry-run", "promote"] = Field(
        "dry-run",
        description="dry-run: record and print what the retrain job would do and why; promote: "
        "write a challenger that won into the model store, where the API picks it up",
    )
    retrain_breaches_in_row: int = Field(
        2, ge=1, le=24, description="decided drift runs in a row that must have triggered retraining"
    )
    retrain_cooldown_days: float = Field(
        30.0, ge=0.0, description="days after a promotion during which no other model is trained"
    )
    retrain_auc_margin: float = Field(
        0.005,
        ge=0.0,
        le=0.5,
        description="AUC by which the challenger must beat the champion on the held-out labelled "
        "month (and its log loss must not be worse)",
    )

    # --- API -------------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_workers: int = Field(1, ge=1, le=64)
    prediction_threshold: float = Field(0.5, gt=0.0, lt=1.0, description="probability that counts as churn")
    metrics_enabled: bool = Field(True, description="off only to measure the metrics' cost")
    prometheus_multiproc_dir: Path | None = Field(
        None, description="needed when api_workers > 1; default: data_dir/prometheus-multiproc"
    )
    model_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="OpenMP threads of the model in each API process (`python -m api` sets "
        "OMP_NUM_THREADS from it): a one-row prediction gains nothing from more, and OpenMP's idle "
        "threads spin and burn CPU on a busy machine",
    )
    model_runtime: Literal["treelite", "sklearn"] = Field(
        "treelite",
        description="treelite: the model's trees compiled by Treelite (verified against "
        "scikit-learn at load; many times faster on one row); sklearn: predict_proba",
    )
    ready_retry_seconds: float = Field(
        5.0, ge=0.0, description="how often /ready retries loading a missing model or store"
    )
    prediction_cache_size: int = Field(
        50_000,
        ge=0,
        description="users whose features and prediction each worker keeps (LRU); 0 = off. Valid "
        "until the feature registry records a new materialization or apply",
    )
    prediction_cache_check_seconds: float = Field(
        10.0,
        gt=0.0,
        description="how often each worker checks the registry for a new materialization and the "
        "model store for a promoted model (loaded, verified and swapped in without a restart)",
    )

    # --- logging ---------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["plain", "json"] = "plain"

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        if self.database_url is None:
            self.database_url = SecretStr(f"sqlite:///{(self.data_dir / 'streamflow.db').resolve()}")
        if self.model_dir is None:
            self.model_dir = self.data_dir / "model"
        if self.status_file is None:
            self.status_file = self.data_dir / "status" / f"{self.status_configmap}.json"
        if self.prometheus_multiproc_dir is None:
            self.prometheus_multiproc_dir = self.data_dir / "prometheus-multiproc"
        if self.feast_profile == "postgres" and not self.database_url_obj.drivername.startswith("postgresql"):
            raise ValueError("STREAMFLOW_FEAST_PROFILE=postgres needs a postgresql:// STREAMFLOW_DATABASE_URL")
        return self

    @property
    def database_url_obj(self) -> URL:
        """The database URL, with PostgreSQL pinned to the psycopg 3 driver Feast also uses."""
        assert self.database_url is not None
        url = make_url(self.database_url.get_secret_value())
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url

    @property
    def database_url_safe(self) -> str:
        """The database URL with any password masked: the only form that may be logged."""
        return self.database_url_obj.render_as_string(hide_password=True)

    @property
    def feast_dir(self) -> Path:
        """Feast's local files: registry, SQLite online store, Parquet offline sources."""
        return self.data_dir / "feast"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own `Settings(...)` instead."""
    return Settings()


def describe_settings_error(exc: ValidationError) -> str:
    """One line naming each refused variable, its value and why, e.g.
    `STREAMFLOW_API_PORT='tcp://10.96.0.7:8000': Input should be a valid integer`."""
    problems = []
    for error in exc.errors():
        field = "_".join(str(part) for part in error["loc"]) or "settings"
        value = f"={error['input']!r}" if isinstance(error.get("input"), str | int | float) else ""
        problems.append(f"{ENV_PREFIX}{field.upper()}{value}: {error['msg']}")
    return "; ".join(problems)


def settings_or_exit(process: str) -> Settings:
    """get_settings() for a process's entry point: bad settings end it with one line naming the
    variable to fix and exit code 2 (ExitCode.USAGE), never a traceback."""
    try:
        return get_settings()
    except ValidationError as exc:
        print(f"{process} failed (bad settings): {describe_settings_error(exc)}", file=sys.stderr)
        raise SystemExit(ExitCode.USAGE) from None
