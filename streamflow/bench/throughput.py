"""/predict throughput and tail latency over loopback, with wrk (Debian) as the load generator.

Servers, all started once and measured in interleaved rounds (the order rotates each round):
  api             the API as deployed (metrics middleware on, prediction cache on), 1 worker
  api-no-metrics  the same with STREAMFLOW_METRICS_ENABLED=false (no request middleware)
  api-no-cache    the same with STREAMFLOW_PREDICTION_CACHE_SIZE=0: every request reads the store
  bare            a FastAPI endpoint validating the same body and returning a constant
  api-2w, bare-2w the API and the bare app with two uvicorn workers
One-worker servers are pinned to one core and wrk to the other, so the server has a core of its
own; two-worker servers and their wrk share both cores (all this machine has). Ratios are taken
per round, then the median over rounds.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

from api.process import free_port, running_api
from streamflow.devtools import debian_binary

LUA_SCRIPT = Path(__file__).with_name("predict.lua")
SERVER_CPUS, LOAD_CPUS = {1}, {0}
WARM_UP_SECONDS = 5  # measured: with 3 s the first round still ran ~20 % slow for every server


@dataclass(frozen=True)
class Server:
    name: str
    workers: int = 1
    env: tuple[tuple[str, str], ...] = ()
    bare: bool = False


SERVERS = (
    Server("api"),
    Server("api-no-metrics", env=(("STREAMFLOW_METRICS_ENABLED", "false"),)),
    Server("api-no-cache", env=(("STREAMFLOW_PREDICTION_CACHE_SIZE", "0"),)),
    Server("bare", bare=True),
    Server("api-2w", workers=2),
    Server("bare-2w", workers=2, bare=True),
)


@dataclass(frozen=True)
class WrkRun:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    failures: int  # socket errors + non-2xx answers


def wrk(url: str, seconds: float, connections: int, users: int, cpus: set[int] | None) -> WrkRun:
    """One wrk run of POST /predict cycling through `users` known user ids."""
    command = [str(debian_binary("wrk", "wrk")), "-t1", f"-c{connections}", f"-d{seconds:g}s",
               "-s", str(LUA_SCRIPT), url]
    if cpus:
        command = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False,
                            env={"BENCH_USERS": str(users), "PATH": "/usr/bin:/bin"})
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({result.returncode}) against {url}: "
                           f"{(result.stderr or result.stdout).strip()[-500:]}")
    raw = json.loads(lines[-1])
    return WrkRun(
        requests_per_second=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000, p99_ms=raw["p99_us"] / 1000,
        failures=raw["socket_errors"] + raw["non_2xx"],
    )


def _command(server: Server, port: int) -> list[str] | None:
    if not server.bare:
        return None  # python -m api
    return [sys.executable, "-m", "uvicorn", "streamflow.bench.bare_app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(server.workers),
            "--no-access-log", "--log-level", "warning"]


def measure(data_env: dict[str, str], rounds: int, seconds: float, connections: int, users: int,
            progress=print) -> dict[str, list[WrkRun]]:
    runs: dict[str, list[WrkRun]] = {s.name: [] for s in SERVERS}
    with ExitStack() as stack:
        urls = {}
        for server in SERVERS:
            port = free_port()
            pinned = server.workers == 1
            api = stack.enter_context(running_api(
                {**data_env, **dict(server.env), "STREAMFLOW_LOG_LEVEL": "WARNING"}, workers=server.workers,
                port=port, command=_command(server, port), cpus=SERVER_CPUS if pinned else None))
            urls[server.name] = (api.base_url, LOAD_CPUS if pinned else None)
            progress(f"started {server.name} ({server.workers} worker{'s' if server.workers > 1 else ''})")
        for url, cpus in urls.values():  # warm-up: prediction caches, connections, lazy imports
            wrk(url, WARM_UP_SECONDS, connections, users, cpus)
        for round_index in range(rounds):
            shift = round_index % len(SERVERS)
            for server in SERVERS[shift:] + SERVERS[:shift]:
                url, cpus = urls[server.name]
                run = wrk(url, seconds, connections, users, cpus)
                runs[server.name].append(run)
                progress(f"round {round_index + 1}/{rounds} {server.name}: {run.requests_per_second:,.0f} req/s "
                         f"p99 {run.p99_ms:.1f} ms")
    return runs


def _ratio(runs: dict[str, list[WrkRun]], a: str, b: str) -> float:
    return statistics.median(x.requests_per_second / y.requests_per_second for x, y in zip(runs[a], runs[b], strict=True))


def _median(runs: list[WrkRun], field: str) -> float:
    return statistics.median(getattr(run, field) for run in runs)


def summarize(runs: dict[str, list[WrkRun]]) -> dict[str, float]:
    failures = {name: sum(r.failures for r in rs) for name, rs in runs.items() if any(r.failures for r in rs)}
    if failures:
        raise RuntimeError(f"requests failed during the benchmark (a failing server measures nothing): {failures}")
    results = {
        "metrics_overhead_ratio": _ratio(runs, "api", "api-no-metrics"),
        "predict_vs_bare_ratio": _ratio(runs, "api", "bare"),
        "predict_p99_ms": _median(runs["api"], "p99_ms"),
        "bare_p99_ms": _median(runs["bare"], "p99_ms"),
        "predict_vs_bare_ratio_2w": _ratio(runs, "api-2w", "bare-2w"),
        "predict_p99_ms_2w": _median(runs["api-2w"], "p99_ms"),
        "bare_p99_ms_2w": _median(runs["bare-2w"], "p99_ms"),
        "predict_uncached_vs_bare_ratio": _ratio(runs, "api-no-cache", "bare"),
        "predict_uncached_p99_ms": _median(runs["api-no-cache"], "p99_ms"),
    }
    for name, server_runs in runs.items():
        results[f"rps_{name.replace('-', '_')}"] = _median(server_runs, "requests_per_second")
    return results


def raw(runs: dict[str, list[WrkRun]]) -> dict[str, list[dict]]:
    return {name: [asdict(r) for r in rs] for name, rs in runs.items()}
