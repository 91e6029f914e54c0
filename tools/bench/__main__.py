"""`make bench`: run the benchmarks, print a table, write reports/bench.json.

    python -m tools.bench [--only overhead,throughput,latency,drift,retrain,promotion] [--rounds 3] [--seconds 8]
                          [--drift-users 100000,1000000] [--store-users 1000,1000000]
                          [--retrain-users 5000,100000]

Bench data (generated and bootstrapped once per size, then reused) lives under
<data_dir>/bench; the throughput servers read the demo data set (make bootstrap).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from streamflow import __version__
from streamflow.settings import get_settings

PARTS = ("overhead", "throughput", "latency", "drift", "retrain", "promotion")


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def _label(n_users: int) -> str:
    return f"{n_users // 1_000_000}m" if n_users % 1_000_000 == 0 else f"{n_users // 1000}k"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds per throughput server (median)")
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per round")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument(
        "--overhead-instances",
        type=int,
        default=4,
        help="API processes per variant (with / without metrics) for the paired overhead runs",
    )
    parser.add_argument("--overhead-sweeps", type=int, default=1, help="times every overhead pair is measured")
    parser.add_argument("--overhead-seconds", type=float, default=4.0, help="wrk duration of one overhead pair")
    parser.add_argument("--lookups", type=int, default=3000, help="in-process predictions per store")
    parser.add_argument("--store-users", type=_sizes, default=[1000, 1_000_000], help="small,large online store")
    parser.add_argument("--drift-users", type=_sizes, default=[100_000, 1_000_000], help="users per month")
    parser.add_argument("--retrain-users", type=_sizes, default=[5000, 100_000], help="users per month")
    parser.add_argument(
        "--sample-rows",
        type=int,
        default=100_000,
        help="also run the largest drift size sampled to this many users (accuracy cost)",
    )
    parser.add_argument("--out", type=Path, default=Path("reports/bench.json"))
    args = parser.parse_args(argv)
    if args.overhead_instances < 2:  # the A/A pairs, the method's noise floor, need two per variant
        parser.error("--overhead-instances must be at least 2")
    unknown = set(args.only.split(",")) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {PARTS}")
    return args


def step(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = get_settings()
    bench_dir = settings.data_dir / "bench"
    parts = args.only.split(",")
    results: dict[str, float] = {}
    raw: dict[str, object] = {}
    started = time.monotonic()

    if "drift" in parts:
        from tools.bench import drift

        for n_users in args.drift_users:
            label = _label(n_users)
            step(f"drift: data set of {n_users:,} users per month (generated once, then reused)")
            data = drift.data_set(bench_dir / f"drift-{label}", n_users, settings.seed)
            step(f"drift: the whole job on {n_users:,} users, then the scipy bound")
            sample = args.sample_rows if n_users == max(args.drift_users) else None
            results |= drift.measure(data, label, sample_rows=sample)
            step(
                f"drift {label}: {results[f'drift_seconds_{label}']:.1f} s, peak RSS "
                f"{results[f'drift_peak_rss_mb_{label}']:.0f} MB, "
                f"{results[f'drift_vs_scipy_ratio_{label}']:.1f}x scipy"
            )

    if "retrain" in parts:
        from tools.bench import latency, retrain

        for n_users in args.retrain_users:
            label = _label(n_users)
            step(f"retrain: bootstrapped data set of {n_users:,} users (built once, then reused)")
            data = latency.bootstrapped(bench_dir / f"store-{label}", n_users, settings.seed)
            results |= retrain.measure(data, label)
            step(f"retrain {label}: {results[f'retrain_seconds_{label}']:.1f} s")

    if "latency" in parts:
        from tools.bench import latency

        small_users, large_users = args.store_users
        step(f"latency: online stores of {small_users:,} and {large_users:,} users (built once, then reused)")
        small = latency.bootstrapped(bench_dir / f"store-{_label(small_users)}", small_users, settings.seed)
        large = latency.grown_copy(small, bench_dir / f"store-{_label(large_users)}", large_users, progress=step)
        results |= latency.measure(small, large, args.lookups, seed=settings.seed)
        step(
            f"latency: p50 {results['inprocess_predict_p50_ms']:.2f} ms, x{results['latency_vs_users_ratio']:.2f} "
            f"with {large_users:,} users"
        )

    demo_env = {"STREAMFLOW_DATA_DIR": str(settings.data_dir.resolve())}
    bench_users = min(1000, settings.n_users)
    if "overhead" in parts:
        from tools.bench import throughput

        step(
            f"overhead: {args.overhead_instances} API processes with metrics and {args.overhead_instances} "
            "without, every pair loaded at the same moment on one core"
        )
        pairs = throughput.measure_overhead(
            demo_env,
            args.overhead_instances,
            args.overhead_sweeps,
            args.overhead_seconds,
            args.connections,
            users=bench_users,
            progress=step,
        )
        results |= throughput.summarize_overhead(pairs)
        raw["overhead_pairs"] = throughput.raw_pairs(pairs)

    if "promotion" in parts:
        from tools.bench import promotion

        step("promotion: /predict load while a new model version is promoted halfway through")
        results |= promotion.measure(settings, bench_dir / "promotion")
        step(
            f"promotion: {results['promotion_failed_requests']:.0f} failed of {results['promotion_requests']:.0f}, "
            f"p99 {results['promotion_p99_ms']:.1f} ms, served after {results['promotion_switch_seconds']:.1f} s"
        )

    if "throughput" in parts:
        from tools.bench import throughput

        step(f"throughput: starting {len(throughput.SERVERS)} servers (API variants and the bare app)")
        runs = throughput.measure(
            demo_env, args.rounds, args.seconds, args.connections, users=bench_users, progress=step
        )
        results |= throughput.summarize(runs)
        raw["throughput_runs"] = throughput.raw(runs)

    seconds = round(time.monotonic() - started, 1)
    meta = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "version": __version__,
        "python": platform.python_version(),
        "seconds": seconds,
        "args": {k: str(v) for k, v in vars(args).items()},
        **raw,
    }
    document = {**{k: round(v, 4) for k, v in results.items()}, "meta": meta}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    width = max(map(len, results), default=10)
    print()
    for key, value in results.items():
        print(f"  {key:<{width}}  {value:>12,.3f}")
    print(f"\nwrote {args.out} ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
