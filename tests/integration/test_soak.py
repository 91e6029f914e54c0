"""A short soak of the real API (`make soak` runs the same module for 5 minutes).

Bounded /predict load against uvicorn on 127.0.0.1 for ~30 s after a warm-up; asserts behaviour,
not speed: no failed request, RSS growth under 5 %, no descriptor growth, and /metrics counting
exactly the requests sent.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.processes import data_env
from tools import soak

SECONDS = 30
MAX_RSS_GROWTH = 0.05


def test_short_soak_has_no_errors_no_leaks_and_exact_metrics(
    demo_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    for name, value in data_env(demo_dir).items():
        monkeypatch.setenv(name, value)  # the CLI serves the STREAMFLOW_* data of its environment
    report_path = tmp_path / "soak.json"
    code = soak.main(
        [
            "--seconds",
            str(SECONDS),
            "--report",
            str(report_path),
            "--max-rss-growth",
            str(MAX_RSS_GROWTH),
            "--api-log",
            str(tmp_path / "api.log"),
        ]
    )
    out = capsys.readouterr().out
    report = json.loads(report_path.read_text())
    samples = report["samples"]
    # the properties themselves, from the measured numbers (not only the module's verdict)
    assert report["sent"] > 0 and report["errors"] == 0, out
    assert set(report["statuses"]) <= {"200", "404"} and report["statuses"].get("200", 0) > 0, out
    assert report["metrics_counted"] == report["sent"], out
    assert len(samples) >= 3, out
    assert samples[-1]["rss_kib"] < samples[0]["rss_kib"] * (1 + MAX_RSS_GROWTH), out
    assert samples[-1]["open_fds"] <= samples[0]["open_fds"], out
    assert samples[-1]["requests"] == report["sent"]
    assert report["passed"] is True and code == 0, out
    assert "rss_growth" in out and "open_fds" in out  # the table is printed
