"""Run the project's CLIs as child processes, the way make and a CronJob run them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_env(data_dir: Path, **settings: object) -> dict[str, str]:
    """STREAMFLOW_* variables for a self-contained data directory."""
    env = {
        "STREAMFLOW_DATA_DIR": str(data_dir),
        "STREAMFLOW_REPORTS_DIR": str(data_dir / "reports"),
        "STREAMFLOW_LOG_FORMAT": "json",
    }
    env.update({f"STREAMFLOW_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def run_module(module: str, *args: str, env: Mapping[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFLOW_")}
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=child_env, capture_output=True,
        text=True, timeout=timeout, check=False,
    )


def must_succeed(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    return result
