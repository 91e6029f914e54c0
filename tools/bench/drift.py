"""The whole drift job (data load, Evidently, reports, status sink) at 100k and 1M users per month,
against a lower bound: the same per-column distances in plain scipy on in-memory arrays.

Data sets are generated once per size (jobs.datagen, seeded) and kept under the bench data
directory. The job runs as the CronJob runs it (`python -m jobs.drift`), in a child process
whose peak RSS is read from the kernel (wait4).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.spatial import distance

from jobs import datagen
from streamflow import db
from streamflow.datasets import load_snapshot
from streamflow.drift import DISTANCE_THRESHOLD
from streamflow.features import CATEGORICAL_FEATURES, NUMERICAL_FEATURES, TARGET
from streamflow.settings import Settings
from tools.bench.child import run_measured

MONTH_INDEXES = (1, 2)  # the months that drift
REFERENCE, CURRENT = (datagen.SNAPSHOT_DATES[i] for i in MONTH_INDEXES)


@dataclass(frozen=True)
class JobRun:
    seconds: float
    peak_rss_mb: float
    scores: dict[str, float]  # per column, from the saved report


def data_set(data_dir: Path, n_users: int, seed: int) -> Settings:
    settings = Settings(
        data_dir=data_dir, reports_dir=data_dir / "reports", n_users=n_users, seed=seed, log_format="json"
    )
    # only the two months compared; kept if the tables are already filled
    datagen.generate(settings, db.make_engine(settings), months=MONTH_INDEXES)
    return settings


def run_job(settings: Settings, extra_args: tuple[str, ...] = ()) -> JobRun:
    child = run_measured(
        settings, "jobs.drift", "--reference", REFERENCE.isoformat(), "--current", CURRENT.isoformat(), *extra_args
    )
    report_json = child.stdout.strip().splitlines()[-1].split("report_json=", 1)[1].split()[0]
    section = json.loads(Path(report_json).read_text())["streamflow"]
    scores = {f["column"]: f["score"] for f in section["features"]} | {TARGET: section["target"]["score"]}
    return JobRun(child.seconds, child.peak_rss_mb, scores)


def _numerical(reference: np.ndarray, current: np.ndarray) -> float:
    reference, current = reference[~np.isnan(reference)], current[~np.isnan(current)]
    return stats.wasserstein_distance(reference, current) / max(float(np.std(reference)), 0.001)


def _categorical(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance of the category frequencies; codes < 0 are missing values."""
    reference, current = reference[reference >= 0], current[current >= 0]
    size = int(max(reference.max(initial=0), current.max(initial=0))) + 1
    ref_counts, cur_counts = np.bincount(reference, minlength=size), np.bincount(current, minlength=size)
    seen = (ref_counts + cur_counts) > 0
    return float(distance.jensenshannon(ref_counts[seen] / len(reference), cur_counts[seen] / len(current)))


def scipy_bound(settings: Settings) -> tuple[float, dict[str, float]]:
    """Seconds for the per-column distances on in-memory arrays (loading not timed), and the scores."""
    engine = db.make_engine(settings)
    frames = [load_snapshot(engine, day) for day in (REFERENCE, CURRENT)]
    numerical = {c: [f[c].to_numpy(dtype=np.float64) for f in frames] for c in NUMERICAL_FEATURES}
    categorical = {c: [f[c].cat.codes.to_numpy(dtype=np.int64) for f in frames] for c in CATEGORICAL_FEATURES}
    categorical[TARGET] = [f[TARGET].to_numpy(dtype=np.int64) for f in frames]
    started = time.perf_counter()
    scores = {c: _numerical(*arrays) for c, arrays in numerical.items()}
    scores |= {c: _categorical(*arrays) for c, arrays in categorical.items()}
    return time.perf_counter() - started, scores


def max_score_difference(job: dict[str, float], bound: dict[str, float]) -> float:
    """The bound must compute the job's distances, or its time bounds nothing."""
    return max(abs(job[c] - bound[c]) for c in bound)


def measure(settings: Settings, label: str, sample_rows: int | None = None) -> dict[str, float]:
    """The job, its scipy bound and, with sample_rows, what sampling that many users costs in
    accuracy: the largest change of any column's score against the full months."""
    job = run_job(settings)
    bound_seconds, bound_scores = scipy_bound(settings)
    difference = max_score_difference(job.scores, bound_scores)
    if difference > 1e-6:
        raise RuntimeError(f"scipy bound disagrees with the report by {difference:.2e} at {label}")
    drifted = sum(score >= DISTANCE_THRESHOLD for score in job.scores.values())
    sampled = {}
    if sample_rows is not None and sample_rows < settings.n_users:
        sampled_job = run_job(settings, ("--sample-rows", str(sample_rows)))
        sampled = {
            f"drift_sampled_seconds_{label}": sampled_job.seconds,
            f"drift_sampled_max_score_change_{label}": max_score_difference(sampled_job.scores, job.scores),
            f"drift_sampled_rows_{label}": float(sample_rows),
        }
    return {
        f"drift_seconds_{label}": job.seconds,
        f"drift_peak_rss_mb_{label}": job.peak_rss_mb,
        f"drift_scipy_seconds_{label}": bound_seconds,
        f"drift_vs_scipy_ratio_{label}": job.seconds / bound_seconds,
        f"drift_columns_drifted_{label}": float(drifted),
    } | sampled
