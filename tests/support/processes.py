"""Run the project's CLIs as child processes, the way make and a CronJob run them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# users in the data set the test session bootstraps (tests/conftest.py)
TEST_USERS = 2000


def data_env(data_dir: Path, **settings: object) -> dict[str, str]:
    """STREAMFLOW_* variables for a self-contained data directory."""
    env = {
        "STREAMFLOW_DATA_DIR": str(data_dir),
        "STREAMFLOW_REPORTS_DIR": str(data_dir / "reports"),
        "STREAMFLOW_LOG_FORMAT": "json",
    }
    env.update({f"STREAMFLOW_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def _child_env(env: Mapping[str, str]) -> dict[str, str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFLOW_")}
    child_env.update(env)
    return child_env


def run_module(module: str, *args: str, env: Mapping[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=_child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class RunningModule:
    """A CLI started in the background; its stderr (the log) is read line by line."""

    process: subprocess.Popen
    stderr_lines: list[str] = field(default_factory=list)


def start_module(module: str, *args: str, env: Mapping[str, str]) -> RunningModule:
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=_child_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = RunningModule(process)
    stderr = process.stderr
    assert stderr is not None  # stderr=PIPE
    threading.Thread(target=lambda: running.stderr_lines.extend(iter(stderr.readline, "")), daemon=True).start()
    return running


def wait_for_output(running: RunningModule, needle: str, timeout: float) -> str:
    """The first log line containing `needle`; fails if the process ends or time runs out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(running.stderr_lines):
            if needle in line:
                return line
        assert running.process.poll() is None, (
            f"exited {running.process.returncode} before logging {needle!r}:\n" + "".join(running.stderr_lines[-20:])
        )
        time.sleep(0.2)
    raise AssertionError(f"no log line with {needle!r} within {timeout}s")


def finish(running: RunningModule, timeout: float) -> subprocess.CompletedProcess:
    stdout = running.process.stdout.read() if running.process.stdout else ""
    returncode = running.process.wait(timeout=timeout)
    time.sleep(0.1)  # let the reader thread take the last lines
    return subprocess.CompletedProcess(running.process.args, returncode, stdout, "".join(running.stderr_lines))


def must_succeed(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    )
    return result
