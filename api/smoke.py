"""Smoke check of a running API: `python -m api.smoke http://host:port` (the chart's `helm test`).

Passes (exit 0) when /ready answers 200 and /metrics exposes the series that users'
PromQL and the dashboards depend on; otherwise prints one line per problem and exits 1.
"""

from __future__ import annotations

import argparse
import sys

import httpx

# sample names, as PromQL sees them (a counter family "api_requests" exposes api_requests_total)
REQUIRED_SERIES = ("api_requests_total", "api_request_latency_seconds_bucket", "api_requests_in_flight")


def problems(base_url: str, timeout: float = 10.0) -> list[str]:
    found: list[str] = []
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        try:
            ready = client.get("/ready")
            metrics = client.get("/metrics")
        except httpx.HTTPError as exc:
            return [f"cannot reach {base_url}: {exc}"]
    if ready.status_code != 200:
        found.append(f"/ready answered {ready.status_code}: {ready.text[:300]}")
    if metrics.status_code != 200:
        found.append(f"/metrics answered {metrics.status_code}")
    else:
        exposed = {
            line.split("{")[0].split(" ")[0] for line in metrics.text.splitlines() if line and not line.startswith("#")
        }
        found += [f"/metrics lacks {series}" for series in REQUIRED_SERIES if series not in exposed]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.smoke", description=__doc__.split("\n")[0])
    parser.add_argument("url", help="base URL of the API, e.g. http://streamflow-api:8000")
    args = parser.parse_args(argv)
    found = problems(args.url.rstrip("/"))
    for problem in found:
        print(f"FAIL {problem}", file=sys.stderr)
    if not found:
        print(f"OK {args.url}: ready, metrics exposed")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
