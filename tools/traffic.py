"""Bounded demo traffic: `python -m tools.traffic --url http://127.0.0.1:8000 [--requests 500]`.

Sends at most --requests POST /predict calls (and never runs longer than --max-seconds), mostly
for known users and a few unknown ids (so dashboards show 404s too), with --concurrency
connections. Prints the status counts and latency percentiles it saw; exit 1 on any 5xx or
transport error.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections import Counter

import httpx

from streamflow.users import user_id

UNKNOWN_USER_SHARE = 0.05


def user_id_for(index: int, rng: random.Random, known_users: int) -> str:
    if rng.random() < UNKNOWN_USER_SHARE:
        return f"unknown-{index}"
    return user_id(rng.randrange(known_users))


async def run(
    url: str, requests: int, concurrency: int, max_seconds: float, known_users: int, seed: int
) -> tuple[Counter, list[float]]:
    rng = random.Random(seed)
    ids = [user_id_for(i, rng, known_users) for i in range(requests)]
    statuses: Counter = Counter()
    latencies: list[float] = []
    deadline = time.monotonic() + max_seconds
    queue: asyncio.Queue[str] = asyncio.Queue()
    for id_ in ids:
        queue.put_nowait(id_)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty() and time.monotonic() < deadline:
            next_id = queue.get_nowait()
            started = time.perf_counter()
            try:
                response = await client.post("/predict", json={"user_id": next_id})
                statuses[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - started)

    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return statuses, latencies


def wait_for_health(url: str, seconds: float) -> None:
    """Wait until /health answers (a port-forward takes a moment to listen)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            raise SystemExit(f"no answer from {url}/health within {seconds:.0f}s")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.traffic", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--requests", type=int, default=500, help="upper bound on requests sent")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="upper bound on duration")
    parser.add_argument("--known-users", type=int, default=1000, help="pick ids among the first N demo users")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--wait-seconds", type=float, default=0.0, help="first wait this long for /health")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.max_seconds <= 0 or args.known_users < 1:
        parser.error("--requests, --concurrency, --known-users and --max-seconds must be positive")
    if args.wait_seconds > 0:
        wait_for_health(args.url.rstrip("/"), args.wait_seconds)
    started = time.monotonic()
    statuses, latencies = asyncio.run(
        run(args.url.rstrip("/"), args.requests, args.concurrency, args.max_seconds, args.known_users, args.seed)
    )
    elapsed = time.monotonic() - started
    sent = sum(statuses.values())
    print(
        f"sent {sent} requests in {elapsed:.1f}s to {args.url}: "
        + ", ".join(f"{status}={count}" for status, count in sorted(statuses.items()))
    )
    if latencies:
        cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
        print(f"latency p50={cuts[49] * 1000:.1f}ms p95={cuts[94] * 1000:.1f}ms p99={cuts[98] * 1000:.1f}ms")
    failed = sum(count for status, count in statuses.items() if not status.isdigit() or status.startswith("5"))
    return 1 if failed or sent == 0 else 0


if __name__ == "__main__":
    raise SystemExit(main())
