"""/predict throughput and tail latency over loopback, with wrk (Debian) as the load generator.

Servers, all started once and measured in interleaved rounds (the order rotates each round):
  api             the API as deployed (metrics middleware on, prediction cache on), 1 worker
  api-no-cache    the same with STREAMFLOW_PREDICTION_CACHE_SIZE=0: every request reads the store
  bare            a FastAPI endpoint validating the same body and returning a constant
  api-2w, bare-2w the API and the bare app with two uvicorn workers
One-worker servers are pinned to one core and wrk to the other, so the server has a core of its
own; two-worker servers and their wrk share both cores (all this machine has). Ratios are taken
per round, then the median over rounds.

The metrics' cost is a few per cent, below what those rounds resolve here: on this shared VM one
run's throughput moves by ±15 % from one second to the next, and two identical API processes
differ by 1-3 % for as long as they live (measured; fixing the hash seed and turning off address
randomization did not remove it). So `measure_overhead` compares the API with and without its
middleware *at the same moment*: two servers pinned to the same core, each loaded by its own wrk
at once, so whatever slows the core slows both and the scheduler gives each half of it; and it
does so for every pair of several processes per variant, so no one process's bias decides. The
same pairing between processes of one variant (A/A) shows what the method resolves.

One more bias, measured and not explained: the first API process a run starts serves 2-4 % fewer
requests per CPU-second than identical processes started after it, for its whole life (also with
a process started and stopped before it, so not a cold page cache). Both measurements therefore
start one API process first that is never measured, and every measured process comes after it.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

from tools.api_process import free_port, running_api
from tools.toolchain import debian_binary

LUA_SCRIPT = Path(__file__).with_name("predict.lua")
SERVER_CPUS, LOAD_CPUS = {1}, {0}
WARM_UP_SECONDS = 5  # measured: with 3 s the first round still ran ~20 % slow for every server


def _server_env(data_env: dict[str, str], settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """A measured server's environment: the data set, its variant's settings, quiet logs."""
    return {**data_env, **(settings or {}), "STREAMFLOW_LOG_LEVEL": "WARNING"}


def _take_the_first_slot(stack: ExitStack, data_env: dict[str, str]) -> None:
    """Start an API process that is never measured (see the module docstring)."""
    stack.enter_context(running_api(_server_env(data_env), cpus=SERVER_CPUS))


@dataclass(frozen=True)
class Server:
    name: str
    workers: int = 1
    env: tuple[tuple[str, str], ...] = ()
    bare: bool = False


SERVERS = (
    Server("api"),
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
    return wrk_together([url], seconds, connections, users, cpus)[0]


def wrk_together(urls: list[str], seconds: float, connections: int, users: int, cpus: set[int] | None) -> list[WrkRun]:
    """One wrk process per URL, all running at the same time; their results in URL order."""
    command = [str(debian_binary("wrk", "wrk")), "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(LUA_SCRIPT)]
    if cpus:
        command = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *command]
    processes = [
        subprocess.Popen(
            [*command, url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={"BENCH_USERS": str(users), "PATH": "/usr/bin:/bin"},
        )
        for url in urls
    ]
    outputs = [process.communicate(timeout=seconds + 60) for process in processes]
    return [
        _parsed(url, process.returncode, *output) for url, process, output in zip(urls, processes, outputs, strict=True)
    ]


def _parsed(url: str, returncode: int, stdout: str, stderr: str) -> WrkRun:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({returncode}) against {url}: {(stderr or stdout).strip()[-500:]}")
    raw = json.loads(lines[-1])
    return WrkRun(
        requests_per_second=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        failures=raw["socket_errors"] + raw["non_2xx"],
    )


def _command(server: Server, port: int) -> list[str] | None:
    if not server.bare:
        return None  # python -m api
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "tools.bench.bare_app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(server.workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def measure(
    data_env: dict[str, str], rounds: int, seconds: float, connections: int, users: int, progress=print
) -> dict[str, list[WrkRun]]:
    runs: dict[str, list[WrkRun]] = {s.name: [] for s in SERVERS}
    with ExitStack() as stack:
        _take_the_first_slot(stack, data_env)
        urls = {}
        for server in SERVERS:
            port = free_port()
            pinned = server.workers == 1
            api = stack.enter_context(
                running_api(
                    _server_env(data_env, dict(server.env)),
                    workers=server.workers,
                    port=port,
                    command=_command(server, port),
                    cpus=SERVER_CPUS if pinned else None,
                )
            )
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
                progress(
                    f"round {round_index + 1}/{rounds} {server.name}: {run.requests_per_second:,.0f} req/s "
                    f"p99 {run.p99_ms:.1f} ms"
                )
    return runs


@dataclass(frozen=True)
class PairedRun:
    """Two servers loaded at the same moment on the same core."""

    first: str
    second: str
    first_rps: float
    second_rps: float
    same_variant: bool  # an A/A pair

    @property
    def ratio(self) -> float:
        return self.first_rps / self.second_rps


METRICS_ON, METRICS_OFF = "metrics", "no-metrics"


def measure_overhead(
    data_env: dict[str, str], instances: int, sweeps: int, seconds: float, connections: int, users: int, progress=print
) -> list[PairedRun]:
    """Every with-middleware process against every process without it, and the processes of each
    variant against each other (A/A), `sweeps` times over; see the module docstring."""
    variants = {METRICS_ON: {}, METRICS_OFF: {"STREAMFLOW_METRICS_ENABLED": "false"}}
    pairs: list[PairedRun] = []
    with ExitStack() as stack:
        _take_the_first_slot(stack, data_env)
        servers: dict[str, str] = {}
        names_of: dict[str, list[str]] = {variant: [] for variant in variants}
        for index in range(instances):  # started alternately: neither variant is all early or all late
            for variant, env in variants.items():
                name = f"{variant}-{index + 1}"
                api = stack.enter_context(running_api(_server_env(data_env, env), cpus=SERVER_CPUS))
                servers[name] = api.base_url
                names_of[variant].append(name)
                progress(f"started {name}")
        for url in servers.values():  # one at a time: each fills its prediction cache at full speed
            wrk(url, WARM_UP_SECONDS, connections, users, LOAD_CPUS)
        with_without = [(a, b, False) for a in names_of[METRICS_ON] for b in names_of[METRICS_OFF]]
        same = [(a, b, True) for group in names_of.values() for i, a in enumerate(group) for b in group[i + 1 :]]
        for sweep in range(sweeps):
            for first, second, same_variant in with_without + same:
                runs = wrk_together([servers[first], servers[second]], seconds, connections, users, LOAD_CPUS)
                if any(run.failures for run in runs):
                    raise RuntimeError(f"requests failed while measuring {first} against {second}")
                pair = PairedRun(first, second, runs[0].requests_per_second, runs[1].requests_per_second, same_variant)
                pairs.append(pair)
                progress(
                    f"sweep {sweep + 1}/{sweeps} {first} {pair.first_rps:,.0f} req/s vs {second} "
                    f"{pair.second_rps:,.0f} req/s: {pair.ratio:.3f}"
                )
    return pairs


def summarize_overhead(pairs: list[PairedRun]) -> dict[str, float]:
    with_without = [p.ratio for p in pairs if not p.same_variant]  # always with metrics ÷ without
    # an A/A ratio and its inverse are equally likely: the spread is how far either strays from 1
    same = [max(p.ratio, 1 / p.ratio) for p in pairs if p.same_variant]
    return {
        "metrics_overhead_ratio": statistics.median(with_without),
        "metrics_overhead_ratio_min": min(with_without),
        "metrics_overhead_ratio_max": max(with_without),
        "aa_ratio_median_deviation": statistics.median(same) - 1,
        "metrics_overhead_pairs": float(len(with_without)),
    }


def _ratio(runs: dict[str, list[WrkRun]], a: str, b: str) -> float:
    pairs = zip(runs[a], runs[b], strict=True)
    return statistics.median(x.requests_per_second / y.requests_per_second for x, y in pairs)


def _median(runs: list[WrkRun], field: str) -> float:
    return statistics.median(getattr(run, field) for run in runs)


def summarize(runs: dict[str, list[WrkRun]]) -> dict[str, float]:
    failures = {name: sum(r.failures for r in rs) for name, rs in runs.items() if any(r.failures for r in rs)}
    if failures:
        raise RuntimeError(f"requests failed during the benchmark (a failing server measures nothing): {failures}")
    results = {
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


def raw_pairs(pairs: list[PairedRun]) -> list[dict]:
    return [asdict(p) for p in pairs]
