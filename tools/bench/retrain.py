"""The guarded retrain job when the guard lets it through: two historical retrievals through
Feast, the challenger's fit, and both models scored on the held-out month.

The data set is a full bootstrap of n users (tools.bench.latency.bootstrapped, kept between
runs). A drift run of February against March comes first, so the history holds the breach the
guard needs (breaches_in_row=1); the job runs in dry-run mode, so the data set's model stays.
"""

from __future__ import annotations

from streamflow.settings import Settings
from tools.bench import drift
from tools.bench.child import run_measured


def measure(settings: Settings, label: str) -> dict[str, float]:
    run_measured(
        settings, "jobs.drift", "--reference", drift.REFERENCE.isoformat(), "--current", drift.CURRENT.isoformat()
    )
    job = run_measured(settings, "jobs.retrain", "--mode", "dry-run", env={"STREAMFLOW_RETRAIN_BREACHES_IN_ROW": "1"})
    outcome = job.stdout.strip().splitlines()[-1]
    if "-> waiting" in outcome or "-> cooldown" in outcome:
        raise RuntimeError(f"the guard stopped the retrain job, nothing was measured: {outcome}")
    return {f"retrain_seconds_{label}": job.seconds, f"retrain_peak_rss_mb_{label}": job.peak_rss_mb}
