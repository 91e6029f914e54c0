"""Soak test of the real API: `python -m tools.soak [--seconds 300] [--report reports/soak.json]`.

Starts `python -m api` (one worker, 127.0.0.1, the STREAMFLOW_* data of the environment),
warms it up, then sends bounded /predict load (tools.traffic, round after round, until --seconds
have passed) and samples the server process between rounds. It passes (exit 0) when:
- no request failed (5xx or transport error; the 404s of traffic's unknown ids are answers);
- the server's RSS grew less than --max-rss-growth from the end of the warm-up to the end;
- its open file descriptors (/proc/<pid>/fd) did not grow;
- /metrics counted every request sent, once: api_requests_total{route="/predict"} moved by
  exactly the number of answers received.
It prints a table of the samples and the checks, and writes them to --report as JSON.
`make soak` runs it for 5 minutes; tests/integration/test_soak.py runs a 30-second variant.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from streamflow.files import write_atomically
from tools import traffic
from tools.api_process import running_api

# Sockets of the last round's client may still be closing server-side when a round ends: let
# them settle before counting descriptors, the same way at every sample.
SETTLE_SECONDS = 0.5


@dataclass
class Sample:
    elapsed_s: float
    requests: int  # answers received so far, warm-up excluded
    rss_kib: int
    open_fds: int


@dataclass
class SoakResult:
    seconds: float
    concurrency: int
    pid: int
    statuses: dict[str, int] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    metrics_counted: float = 0.0
    checks: dict[str, dict] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if not status.isdigit() or status.startswith("5"))

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check["ok"] for check in self.checks.values())


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def predict_requests_counted(base_url: str) -> float:
    """api_requests_total summed over every status of route /predict, as /metrics says now."""
    text = httpx.get(f"{base_url}/metrics", timeout=10.0).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "api_requests_total" and sample.labels.get("route") == "/predict"
    )


def _load(url: str, requests: int, concurrency: int, seconds: float, known_users: int, seed: int) -> Counter:
    statuses, _ = asyncio.run(
        traffic.run(url, requests, concurrency=concurrency, max_seconds=seconds, known_users=known_users, seed=seed)
    )
    return statuses


def _sample(pid: int, started: float, requests: int) -> Sample:
    time.sleep(SETTLE_SECONDS)
    return Sample(round(time.monotonic() - started, 1), requests, rss_kib(pid), open_fds(pid))


def soak(
    env: Mapping[str, str],
    seconds: float,
    concurrency: int = 4,
    warmup_requests: int = 500,
    round_seconds: float = 10.0,
    round_requests: int = 5000,
    known_users: int = 1000,
    max_rss_growth: float = 0.05,
    log_path: str | None = None,
    progress: bool = True,
) -> SoakResult:
    """Bounded: at most `seconds` of load (plus warm-up), at most `round_requests` per round."""
    with running_api(env, log_path=log_path) as api:
        pid = api.process.pid
        result = SoakResult(seconds=seconds, concurrency=concurrency, pid=pid)
        # Warm-up: first lookups, lazy imports, allocator pools; the baseline is taken after it.
        _load(api.base_url, warmup_requests, concurrency, 60.0, known_users, seed=0)
        counted_before = predict_requests_counted(api.base_url)
        started = time.monotonic()
        deadline = started + seconds
        statuses: Counter = Counter()
        result.samples.append(_sample(pid, started, 0))
        _print_row(result.samples[-1], progress, header=True)
        rounds = 0
        while (remaining := deadline - time.monotonic()) > 0:
            rounds += 1
            statuses += _load(
                api.base_url, round_requests, concurrency, min(round_seconds, remaining), known_users, seed=rounds
            )
            if api.process.poll() is not None:
                break  # the server died: nothing left to sample; the checks below say so
            result.samples.append(_sample(pid, started, sum(statuses.values())))
            _print_row(result.samples[-1], progress)
        result.statuses = dict(statuses)
        alive = api.process.poll() is None
        if alive:
            result.metrics_counted = predict_requests_counted(api.base_url) - counted_before
    first, last = result.samples[0], result.samples[-1]
    growth = (last.rss_kib - first.rss_kib) / first.rss_kib
    result.checks = {
        "errors": {"measured": result.errors, "limit": "0", "ok": result.errors == 0 and result.sent > 0},
        "rss_growth": {
            "measured": f"{growth:+.2%} ({first.rss_kib} -> {last.rss_kib} KiB)",
            "limit": f"< {max_rss_growth:.0%}",
            "ok": growth < max_rss_growth,
        },
        "open_fds": {
            "measured": f"{first.open_fds} -> {last.open_fds}",
            "limit": "no growth",
            "ok": last.open_fds <= first.open_fds,
        },
        "metrics_count": {
            "measured": f"{result.metrics_counted:.0f} counted / {result.sent} answered",
            "limit": "equal",
            "ok": result.metrics_counted == result.sent,
        },
        "server_alive": {"measured": "yes" if alive else "no", "limit": "yes", "ok": alive},
    }
    return result


def _print_row(sample: Sample, enabled: bool, header: bool = False) -> None:
    if not enabled:
        return
    if header:
        print(f"{'t (s)':>8} {'requests':>10} {'RSS (MiB)':>10} {'fds':>5}")
    print(
        f"{sample.elapsed_s:>8.1f} {sample.requests:>10} {sample.rss_kib / 1024:>10.1f} {sample.open_fds:>5}",
        flush=True,
    )


def print_summary(result: SoakResult) -> None:
    elapsed = result.samples[-1].elapsed_s if result.samples else 0.0
    rate = result.sent / elapsed if elapsed else 0.0
    print(
        f"\n{result.sent} requests in {elapsed:.0f}s (~{rate:.0f}/s, concurrency "
        f"{result.concurrency}), server pid {result.pid}: "
        + ", ".join(f"{status}={n}" for status, n in sorted(result.statuses.items()))
    )
    print(f"{'check':<15} {'measured':<40} {'limit':<10} result")
    for name, check in result.checks.items():
        print(f"{name:<15} {check['measured']!s:<40} {check['limit']:<10} {'ok' if check['ok'] else 'FAIL'}")


def write_report(result: SoakResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**asdict(result), "sent": result.sent, "errors": result.errors, "passed": result.passed}
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2) + "\n"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="load duration after the warm-up")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--warmup-requests", type=int, default=500)
    parser.add_argument("--round-seconds", type=float, default=10.0, help="sample the server this often")
    parser.add_argument("--round-requests", type=int, default=5000, help="upper bound on requests per round")
    parser.add_argument("--known-users", type=int, default=1000, help="pick ids among the first N demo users")
    parser.add_argument("--max-rss-growth", type=float, default=0.05, help="allowed RSS growth (0.05 = 5 %%)")
    parser.add_argument("--report", type=Path, default=Path("reports/soak.json"))
    parser.add_argument("--api-log", default=None, help="write the server's log here")
    args = parser.parse_args(argv)
    if (
        min(
            args.seconds,
            args.concurrency,
            args.warmup_requests,
            args.round_seconds,
            args.round_requests,
            args.known_users,
            args.max_rss_growth,
        )
        <= 0
    ):
        parser.error("every numeric option must be positive")
    env = {k: v for k, v in os.environ.items() if k.startswith("STREAMFLOW_")}
    print(f"soak: starting the API (Feast import takes ~15 s), then {args.seconds:.0f}s of /predict load", flush=True)
    result = soak(
        env,
        args.seconds,
        args.concurrency,
        args.warmup_requests,
        args.round_seconds,
        args.round_requests,
        args.known_users,
        args.max_rss_growth,
        args.api_log,
    )
    print_summary(result)
    write_report(result, args.report)
    print(f"report: {args.report}")
    if not result.passed:
        print("FAIL: see the checks above", file=sys.stderr)
    return 0 if result.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
