"""Start the real API (`python -m api`) as a child process on a free loopback port.

Used by `make demo` and by the tests that talk to uvicorn over real HTTP.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ApiProcess:
    base_url: str
    process: subprocess.Popen

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10.0)


@contextmanager
def running_api(
    env: Mapping[str, str],
    workers: int = 1,
    ready_timeout: float = 180.0,
    log_path: str | None = None,
    port: int | None = None,
    ready_path: str = "/ready",
    command: Sequence[str] | None = None,
    cpus: set[int] | None = None,
) -> Iterator[ApiProcess]:
    """Run the API until the block ends; waits for `ready_path` to answer 200 (/ready: model
    verified, store answering; /health: the process serves, e.g. to watch it fail requests).

    `command` replaces `python -m api` (the benchmark's bare app, same host and port); `cpus`
    pins the server and its workers to those cores."""
    port = port or free_port()
    child_env = {
        **os.environ,
        **env,
        "STREAMFLOW_API_HOST": "127.0.0.1",
        "STREAMFLOW_API_PORT": str(port),
        "STREAMFLOW_API_WORKERS": str(workers),
    }
    log_file = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    process = subprocess.Popen(
        list(command or [sys.executable, "-m", "api"]),
        env=child_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        preexec_fn=pin,
    )
    api = ApiProcess(f"http://127.0.0.1:{port}", process)
    try:
        _wait_ready(api, ready_timeout, ready_path)
        yield api
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log_path:
            log_file.close()  # type: ignore[union-attr]


def _wait_ready(api: ApiProcess, timeout: float, path: str) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with api.client() as client:
        while time.monotonic() < deadline:
            if api.process.poll() is not None:
                raise RuntimeError(f"API exited with code {api.process.returncode} before it was ready")
            try:
                response = client.get(path)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.TransportError as exc:
                last = str(exc)
            time.sleep(0.5)
    raise RuntimeError(f"API {path} not 200 after {timeout:.0f}s: {last}")
