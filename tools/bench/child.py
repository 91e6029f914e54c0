"""Run one of StreamFlow's jobs as its CronJob runs it (`python -m <module>` in a child process
with the data set's STREAMFLOW_* settings), timing it and reading its peak RSS from the kernel."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from streamflow.settings import Settings


@dataclass(frozen=True)
class ChildRun:
    seconds: float
    peak_rss_mb: float
    stdout: str


def run_measured(settings: Settings, module: str, *args: str, env: Mapping[str, str] | None = None) -> ChildRun:
    """`python -m module args` on `settings`' data; fails naming the module when it exits non-zero."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFLOW_")}
    child_env |= {
        "STREAMFLOW_DATA_DIR": str(settings.data_dir),
        "STREAMFLOW_REPORTS_DIR": str(settings.reports_dir),
        "STREAMFLOW_LOG_FORMAT": "json",
        "STREAMFLOW_N_USERS": str(settings.n_users),
        **(env or {}),
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    returncode = os.waitstatus_to_exitcode(status)
    if returncode != 0:
        raise RuntimeError(f"{module} exited {returncode} on {settings.data_dir}: {output[-500:]}")
    return ChildRun(seconds, usage.ru_maxrss / 1024, output)  # ru_maxrss is in KiB on Linux
