"""In-process /predict latency on the cache-miss path (feature lookup + model), how it moves
when the online store holds 1M users instead of 1k, and what the compiled model runtime buys
(the same small store served with `model_runtime=sklearn`).

The 1M-user store: materializing a million users takes ~11 minutes here (Feast converts every
value to a protobuf in Python), longer than the whole benchmark may run. So a 1k-user store is
bootstrapped for real, copied, and the copy grows to N users by re-keying its materialized rows
under new ids (keys serialized by Feast's own `serialize_entity_key`, values the stored protobufs).
To SQLite and to Feast's reader it is a store of N users: the same tables, row count, key format
and indexes. Built once per size and kept under the bench data directory.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import time
from collections import defaultdict
from pathlib import Path

from prometheus_client import CollectorRegistry
from threadpoolctl import threadpool_limits

from api.metrics import ApiMetrics
from api.serving import ServingState
from jobs import bootstrap
from streamflow.feature_repo import online_store_path
from streamflow.features import ENTITY_KEY, FEATURE_GROUPS
from streamflow.settings import Settings
from streamflow.users import user_id

GROW_BATCH_USERS = 20_000


def bootstrapped(data_dir: Path, n_users: int, seed: int) -> Settings:
    """A real embedded default of n_users (data, Feast apply + materialize, model); kept if done."""
    settings = Settings(data_dir=data_dir, reports_dir=data_dir / "reports", n_users=n_users, seed=seed)
    marker = data_dir / ".bootstrapped"
    if not marker.exists():
        bootstrap.bootstrap(settings)
        marker.touch()
    return settings


def grown_copy(base: Settings, data_dir: Path, n_users: int, progress=print) -> Settings:
    """A copy of `base` whose online store holds n_users users (see the module docstring)."""
    # model and database stay the base's (already derived); only the Feast files are copied
    settings = base.model_copy(update={"data_dir": data_dir, "n_users": n_users})
    marker = data_dir / f".grown-{n_users}"
    if marker.exists():
        return settings
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.copytree(base.feast_dir, settings.feast_dir)
    from streamflow.feature_repo import open_store

    store = open_store(settings)
    # the copied registry points at the base's Parquet files: fine, only the online store is read
    _grow(store_file(settings), store.config, base.feast_project, base.n_users, n_users, progress)
    marker.touch()
    return settings


def store_file(settings: Settings) -> Path:
    """The bench store's SQLite file (bench stores are always the local profile)."""
    path = online_store_path(settings)
    if path is None:
        raise RuntimeError(f"the latency bench needs the local Feast profile, not {settings.feast_profile!r}")
    return path


def _grow(db_path: Path, config, project: str, have: int, want: int, progress) -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    version = config.entity_key_serialization_version
    connection = sqlite3.connect(db_path)
    tables = [f"{project}_{group.view}" for group in FEATURE_GROUPS]
    columns = "entity_key, feature_name, value, value_text, vector_value, event_ts, created_ts"
    templates = {}
    for table in tables:  # each existing user's rows, without the key: the values to re-key
        by_user = defaultdict(list)
        for row in connection.execute(f'SELECT {columns} FROM "{table}" ORDER BY entity_key'):
            by_user[row[0]].append(row[1:])
        templates[table] = list(by_user.values())
        if len(templates[table]) != have:
            raise RuntimeError(f"{table} holds {len(templates[table])} users, expected {have}: rebuild the base store")
    started = time.monotonic()
    for first in range(have, want, GROW_BATCH_USERS):
        ids = [user_id(i) for i in range(first, min(first + GROW_BATCH_USERS, want))]
        keys = [
            serialize_entity_key(
                EntityKey(join_keys=[ENTITY_KEY], entity_values=[Value(string_val=u)]),
                entity_key_serialization_version=version,
            )
            for u in ids
        ]
        with connection:
            for table in tables:
                source = templates[table]
                connection.executemany(
                    f'INSERT INTO "{table}" ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?)',
                    ((key, *row) for i, key in enumerate(keys) for row in source[(first + i) % have]),
                )
        done = first + len(ids)
        progress(f"online store: {done:,}/{want:,} users ({time.monotonic() - started:.0f} s)")
    connection.close()


def serving_state(settings: Settings) -> ServingState:
    """The API's own serving code with the prediction cache off: every call is a miss."""
    state = ServingState(settings.model_copy(update={"prediction_cache_size": 0}), ApiMetrics(CollectorRegistry()))
    state.load()
    if not state.is_ready:
        raise RuntimeError(f"cannot serve from {settings.data_dir}: {state.errors}")
    return state


def predict_latencies_ms(state: ServingState, user_ids: list[str]) -> list[float]:
    latencies = []
    for user in user_ids:
        started = time.perf_counter()
        state.predict(user)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def random_users(n_users: int, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [user_id(rng.randrange(n_users)) for _ in range(count)]


def interleaved(
    states: dict[str, ServingState], sizes: dict[str, int], lookups: int, seed: int
) -> dict[str, list[float]]:
    """Latencies (ms) of `lookups` random users per state, one call each in turn, order rotating."""
    users = {name: random_users(sizes[name], lookups, seed) for name in states}
    samples: dict[str, list[float]] = {name: [] for name in states}
    names = list(states)
    for index in range(lookups):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            samples[name] += predict_latencies_ms(states[name], [users[name][index]])
    return samples


def resident_share(path: Path) -> float | None:
    """Share of the file's bytes in the OS page cache (util-linux `fincore`); None without it."""
    fincore = shutil.which("fincore")
    if fincore is None:
        return None
    result = subprocess.run(
        [fincore, "--bytes", "--noheadings", "--raw", "--output", "RES", str(path)], capture_output=True, text=True
    )
    if result.returncode != 0 or not result.stdout.strip():  # e.g. a file system without mincore
        return None
    return int(result.stdout.split()[0]) / max(path.stat().st_size, 1)


def read_through(path: Path) -> None:
    """Read the whole file once, so its pages are in the OS page cache."""
    with path.open("rb") as file:
        while file.read(1 << 22):
            pass


def evict(path: Path) -> None:
    """Ask the kernel to drop the file's (clean) pages from the page cache: a cold store."""
    with path.open("rb") as file:
        os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def measure(small: Settings, large: Settings, lookups: int, seed: int) -> dict[str, float]:
    """p50/p99 of the miss path on the small store, the large/small p50 ratio with both stores in
    the page cache, the large store cold, and the small store with scikit-learn serving the model."""
    # the model's OpenMP threads as `python -m api` sets them (STREAMFLOW_MODEL_THREADS)
    with threadpool_limits(limits=small.model_threads):
        return _measure(small, large, lookups, seed)


def _measure(small: Settings, large: Settings, lookups: int, seed: int) -> dict[str, float]:
    states = {
        "small": serving_state(small),
        "large": serving_state(large),
        "sklearn": serving_state(small.model_copy(update={"model_runtime": "sklearn"})),
    }
    sizes = {"small": small.n_users, "large": large.n_users, "sklearn": small.n_users}
    large_file = store_file(large)
    # This VM reclaims page-cache pages it deems cold even with memory free (a 2.5 GB store fell
    # from 100 % to 88 % resident within minutes), and a lookup that reads from disk costs several
    # times one that does not. The ratio is about the store's size, not the disk: both stores are
    # read into the page cache first, the share still resident afterwards is reported, and the
    # cold store is measured on its own below.
    for settings in (small, large):
        read_through(store_file(settings))
    for name, state in states.items():  # warm-up: first reads open connections and fill SQLite's cache
        predict_latencies_ms(state, random_users(sizes[name], 200, seed))
    # Pairs interleaved call by call: whatever slows this shared machine for a moment slows both
    # alike (rounds of hundreds of calls each moved the ratio by ±0.2). Two passes, so that
    # scikit-learn's much larger working set does not evict the CPU caches the lookups use.
    by_store = interleaved({name: states[name] for name in ("small", "large")}, sizes, lookups, seed + 1)
    resident_after = resident_share(large_file)
    by_runtime = interleaved({name: states[name] for name in ("small", "sklearn")}, sizes, lookups, seed + 3)
    evict(large_file)
    resident_cold = resident_share(large_file)
    cold = predict_latencies_ms(states["large"], random_users(sizes["large"], lookups, seed + 2))
    results = {
        "inprocess_predict_p50_ms": statistics.median(by_store["small"]),
        "inprocess_predict_p99_ms": percentile(by_store["small"], 99),
        "inprocess_predict_p50_ms_large_store": statistics.median(by_store["large"]),
        "latency_vs_users_ratio": statistics.median(by_store["large"]) / statistics.median(by_store["small"]),
        "inprocess_predict_p50_ms_sklearn": statistics.median(by_runtime["sklearn"]),
        "inprocess_predict_p99_ms_sklearn": percentile(by_runtime["sklearn"], 99),
        "sklearn_vs_compiled_p50_ratio": statistics.median(by_runtime["sklearn"])
        / statistics.median(by_runtime["small"]),
        "inprocess_predict_p50_ms_large_store_cold": statistics.median(cold),
        "inprocess_predict_p99_ms_large_store_cold": percentile(cold, 99),
        "latency_large_store_users": float(large.n_users),
        "latency_small_store_users": float(small.n_users),
    }
    if resident_after is not None and resident_cold is not None:
        results["latency_large_store_resident_share"] = resident_after
        results["latency_large_store_cold_resident_share"] = resident_cold
    return results
