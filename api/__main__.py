"""Run the API: `python -m api` (host, port and workers from STREAMFLOW_API_*).

With more than one worker, prometheus_client's multiprocess mode is switched on here, before
any worker imports it: a clean PROMETHEUS_MULTIPROC_DIR, shared by the workers.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import uvicorn

from streamflow.logs import configure_logging
from streamflow.settings import Settings, settings_or_exit


def limit_model_threads(settings: Settings) -> None:
    """OpenMP reads OMP_NUM_THREADS once, when scikit-learn's compiled code is first loaded: set
    it before the app (and, with several workers, every worker process) imports the model."""
    os.environ["OMP_NUM_THREADS"] = str(settings.model_threads)


def main() -> None:
    settings = settings_or_exit("api")
    configure_logging(settings.log_level, settings.log_format)
    limit_model_threads(settings)
    if settings.api_workers > 1:
        assert settings.prometheus_multiproc_dir is not None  # derived from data_dir by Settings
        multiproc_dir = Path(settings.prometheus_multiproc_dir)
        multiproc_dir.mkdir(parents=True, exist_ok=True)
        # Stale files from a previous run would add up. Empty the directory but keep it: in a
        # pod it is an emptyDir mount point, which cannot be removed.
        for stale in multiproc_dir.iterdir():
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc_dir)
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
