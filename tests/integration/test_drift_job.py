"""The drift job CLI end to end on the embedded default, and its failure modes."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobs.drift.cli import resolve_snapshots
from jobs.drift.report import ReportShapeError, extract
from streamflow import db
from streamflow.drift import ANNOTATION_PREFIX, Action
from streamflow.features import FEATURE_NAMES
from streamflow.settings import Settings
from tests.support.drift import DriftRun, assert_failed_cleanly, read_status, run_drift
from tests.support.processes import TEST_USERS, data_env, run_module

LINE = re.compile(
    r"^\[Evidently\] report_html=(?P<html>\S+\.html) report_json=(?P<json>\S+\.json) "
    r"drift_share=(?P<share>\d\.\d\d) -> (?:(?P<no>NO_ACTION) drift_share=(?P=share) < (?P<t1>\d\.\d\d)"
    r"|(?P<yes>RETRAINING_TRIGGERED) \(SIMULÉ\) drift_share=(?P=share) >= (?P<t2>\d\.\d\d)) "
    r"\(target_drift=(?P<target>[\d.e-]+)\)$"
)


def report_json(line: str) -> Path:
    """The JSON report a decision line names (the line must have the seed's format)."""
    match = LINE.match(line)
    assert match, line
    return Path(match["json"])


def independent_share(report_json: Path) -> tuple[float, list[str]]:
    """Read drift per feature straight from Evidently's ValueDrift entries in the saved JSON."""
    document = json.loads(report_json.read_text())
    drifted = []
    for metric in document["metrics"]:
        config = metric["config"]
        if (
            config["type"].endswith(":ValueDrift")
            and config["column"] in FEATURE_NAMES
            and metric["value"] >= config["threshold"]
        ):
            drifted.append(config["column"])
    return len(drifted) / len(FEATURE_NAMES), drifted


def test_january_vs_february_is_no_action(drift_runs: dict[str, DriftRun]) -> None:
    run = drift_runs["jan_feb"]
    assert run.returncode == 0, run.stderr[-2000:]
    match = LINE.match(run.last_line)
    assert match and match["no"] == Action.NO_ACTION and match["t1"] == "0.30", run.last_line
    assert float(match["share"]) < 0.30
    assert run.annotations[ANNOTATION_PREFIX + "decision"] == Action.NO_ACTION
    assert run.annotations[ANNOTATION_PREFIX + "reference"] == "2024-01-31"


def test_an_unreachable_pushgateway_is_logged_and_loses_no_decision(drift_runs) -> None:
    run = drift_runs["jan_feb"]
    records = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    failed = [r for r in records if r["message"].startswith("pushgateway push failed")]
    assert len(failed) == 1 and failed[0]["level"] == "warning"
    assert failed[0]["pushgateway"].startswith("http://127.0.0.1:") and failed[0]["reason"]
    assert run.returncode == 0 and LINE.match(run.last_line)
    assert run.annotations[ANNOTATION_PREFIX + "decision"] == Action.NO_ACTION


def test_default_run_compares_the_two_latest_snapshots_and_triggers_retraining(drift_runs) -> None:
    run = drift_runs["latest"]
    assert run.returncode == 0, run.stderr[-2000:]
    match = LINE.match(run.last_line)
    assert match and match["yes"] == Action.RETRAIN, run.last_line
    assert float(match["share"]) >= 0.30 and float(match["target"]) >= 0.1
    notes = run.annotations
    assert notes[ANNOTATION_PREFIX + "decision"] == Action.RETRAIN
    assert (notes[ANNOTATION_PREFIX + "reference"], notes[ANNOTATION_PREFIX + "current"]) == (
        "2024-02-29",
        "2024-03-31",
    )
    assert notes[ANNOTATION_PREFIX + "target-drifted"] == "true"
    assert Path(notes[ANNOTATION_PREFIX + "report-html"]).stat().st_size > 100_000


@pytest.mark.parametrize("name", ["jan_feb", "latest"])
def test_drift_share_matches_the_saved_report(drift_runs, name: str) -> None:
    run = drift_runs[name]
    match = LINE.match(run.last_line)
    assert match
    share, drifted = independent_share(Path(match["json"]))
    assert f"{share:.2f}" == match["share"]
    summary = json.loads(Path(match["json"]).read_text())["streamflow"]
    assert summary["drift_share"] == pytest.approx(share)
    assert summary["drifted_features"] == drifted
    assert {f["method"] for f in summary["features"]} == {"wasserstein", "jensenshannon"}
    assert len(summary["features"]) == 14 and summary["target"]["column"] == "churn_label"
    assert run.annotations[ANNOTATION_PREFIX + "drift-share"] == f"{share:.4f}"


def test_decision_is_logged_as_a_structured_record(drift_runs) -> None:
    records = [json.loads(line) for line in drift_runs["latest"].stderr.splitlines() if line.startswith("{")]
    decisions = [r for r in records if r["message"] == "drift decision"]
    assert len(decisions) == 1 and decisions[0]["decision"] == Action.RETRAIN
    assert decisions[0]["drifted_features"] and decisions[0]["reference"] == "2024-02-29"


def test_user_id_is_not_treated_as_a_feature(drift_runs) -> None:
    document = json.loads(report_json(drift_runs["jan_feb"].last_line).read_text())
    columns = {m["config"].get("column") for m in document["metrics"]}
    assert "user_id" not in columns


# -- failures: one line, non-zero, old status kept -----------------------------------------------
def test_missing_snapshot_fails_with_the_date_and_keeps_status(demo_settings: Settings, drift_runs) -> None:
    before = read_status(demo_settings)
    assert before  # the runs above wrote a status
    run = run_drift(demo_settings, "--reference", "2024-02-29", "--current", "2024-04-30")
    assert_failed_cleanly(run, before, 3, "as_of=2024-04-30", "empty")


@pytest.mark.parametrize("passed_as", ["variable", "secret file"])
def test_unreachable_database_fails_with_exit_3(
    demo_settings: Settings, drift_runs, passed_as: str, tmp_path: Path
) -> None:
    before = read_status(demo_settings)
    url = "postgresql://nobody:secret-pw@127.0.0.1:9/none"
    if passed_as == "variable":
        env = data_env(demo_settings.data_dir, database_url=url)
    else:  # how the chart passes it: a Secret mounted as files, named like the variables
        (tmp_path / "streamflow_database_url").write_text(url + "\n")
        env = data_env(demo_settings.data_dir, secrets_dir=tmp_path)
    result = run_module("jobs.drift", env=env)
    run = DriftRun(result.returncode, result.stdout, result.stderr, read_status(demo_settings))
    last = assert_failed_cleanly(run, before, 3, "database", "127.0.0.1:9")
    assert "secret-pw" not in run.stderr, "the database password must never be logged"
    assert "***" in last


def test_invalid_settings_are_a_usage_error(demo_settings: Settings) -> None:
    result = run_module("jobs.drift", env=data_env(demo_settings.data_dir, drift_threshold="lots"))
    last = result.stderr.strip().splitlines()[-1]
    # one line naming the variable to fix, as the user sets it, and its value
    assert result.returncode == 2 and "STREAMFLOW_DRIFT_THRESHOLD='lots'" in last


def test_reference_after_current_is_a_usage_error() -> None:
    with pytest.raises(Exception, match="must be before"):
        resolve_snapshots([date(2024, 1, 31), date(2024, 2, 29)], date(2024, 2, 29), date(2024, 1, 31))
    assert resolve_snapshots([date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31)], None, None) == (
        date(2024, 2, 29),
        date(2024, 3, 31),
    )
    assert resolve_snapshots([date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31)], date(2024, 1, 31), None) == (
        date(2024, 1, 31),
        date(2024, 3, 31),
    )


def test_sampling_is_explicit_logged_and_recorded_in_the_report(
    demo_settings: Settings, drift_runs, tmp_path: Path
) -> None:
    full = json.loads(report_json(drift_runs["jan_feb"].last_line).read_text())["streamflow"]
    assert full["sampling"] is None
    run = run_drift(
        demo_settings,
        "--reference",
        "2024-01-31",
        "--current",
        "2024-02-29",
        "--sample-rows",
        "1000",
        "--output-dir",
        str(tmp_path),
    )
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    sampling = [r for r in records if r["message"].startswith("sampling both months")]
    assert len(sampling) == 1 and sampling[0]["level"] == "warning"
    assert sampling[0]["rows"] == 1000 and sampling[0]["seed"] == demo_settings.seed
    assert sampling[0]["reference_rows"] == 2000 and sampling[0]["current_rows_used"] == 1000
    report = json.loads(report_json(run.last_line).read_text())["streamflow"]
    assert report["sampling"] == {
        "rows": 1000,
        "seed": demo_settings.seed,
        "reference_rows_used": 1000,
        "current_rows_used": 1000,
    }
    assert report["rows"] == {"reference": 2000, "current": 2000}


# -- snapshot problems through the real CLI, on a copy of the data (the shared set stays intact) --
MARCH = db.snapshot_timestamp(date(2024, 3, 31))
USAGE = db.SNAPSHOT_TABLES["usage_agg_30d_snapshots"]


def _text_in_row(column: str, first: bool):
    """Put text into one numeric cell of March: the first row read, or the last. ADBC's SQLite
    driver infers a column's type from its first batch, so the two fail in different places."""

    def mutate(conn: sa.Connection) -> None:
        rowid: sa.ColumnElement[int] = sa.literal_column("rowid")
        pick = sa.select((sa.func.min if first else sa.func.max)(rowid)).where(USAGE.c.as_of == MARCH)
        conn.execute(USAGE.update().where(rowid == pick.scalar_subquery()).values({column: sa.literal_column("'n/a'")}))

    return mutate


SNAPSHOT_PROBLEMS = {
    "month-empty-in-one-table": (
        lambda conn: conn.execute(
            db.SNAPSHOT_TABLES["support_agg_90d_snapshots"]
            .delete()
            .where(db.SNAPSHOT_TABLES["support_agg_90d_snapshots"].c.as_of == MARCH)
        ),
        ("as_of=2024-03-31", "empty", "support_agg_90d_snapshots"),
    ),
    "feature-column-missing": (
        lambda conn: conn.execute(sa.text("ALTER TABLE usage_agg_30d_snapshots DROP COLUMN avg_session_mins_7d")),
        ("avg_session_mins_7d", "usage_agg_30d_snapshots"),
    ),
    "feature-column-all-missing": (
        lambda conn: conn.execute(USAGE.update().where(USAGE.c.as_of == MARCH).values(watch_hours_30d=None)),
        ("watch_hours_30d", "no values", "2024-03-31"),
    ),
    "text-in-numeric-first-row": (_text_in_row("watch_hours_30d", first=True), ("watch_hours_30d", "2024-03-31")),
    "text-in-numeric-later-row": (_text_in_row("skips_7d", first=False), ("skips_7d", "2024-03-31")),
}


@pytest.fixture
def copied_settings(demo_dir: Path, drift_runs, tmp_path: Path) -> Settings:
    """A copy of the session's data set, with the status the drift runs wrote: free to break."""
    data_dir = tmp_path / "data"
    shutil.copytree(demo_dir, data_dir, ignore=shutil.ignore_patterns("reports"))
    return Settings(data_dir=data_dir, reports_dir=data_dir / "reports", n_users=TEST_USERS)


@pytest.mark.parametrize("problem", SNAPSHOT_PROBLEMS)
def test_snapshot_problem_fails_with_one_line_naming_it(copied_settings: Settings, problem: str) -> None:
    mutate, needles = SNAPSHOT_PROBLEMS[problem]
    with db.make_engine(copied_settings).begin() as conn:
        mutate(conn)
    before = read_status(copied_settings)
    assert before
    run = run_drift(copied_settings)  # the two latest months: February vs March
    assert_failed_cleanly(run, before, 3, *needles)
    assert not (copied_settings.reports_dir / "drift").exists() or not any(
        (copied_settings.reports_dir / "drift").iterdir()
    ), "no report for a failed run"


# -- the report reader refuses shapes it does not know --------------------------------------------
@pytest.fixture(scope="module")
def saved_report(drift_runs) -> dict:
    return json.loads(report_json(drift_runs["latest"].last_line).read_text())


def test_extract_reads_the_real_report(saved_report: dict) -> None:
    result = extract(saved_report)
    assert result.drift_share == pytest.approx(saved_report["streamflow"]["drift_share"])
    assert result.drifted_count == len(result.drifted_features) >= 5


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda r: r["metrics"].__setitem__(
                slice(None), [m for m in r["metrics"] if not m["config"]["type"].endswith(":DriftedColumnsCount")]
            ),
            "DriftedColumnsCount",
        ),
        (
            lambda r: [
                m["config"].__setitem__("type", "evidently:metric_v3:ColumnsDrifted")
                for m in r["metrics"]
                if m["config"]["type"].endswith(":DriftedColumnsCount")
            ],
            "DriftedColumnsCount",
        ),
        (
            lambda r: [
                m.__setitem__("value", {"drifted": 3})
                for m in r["metrics"]
                if m["config"]["type"].endswith(":DriftedColumnsCount")
            ],
            "share",
        ),
        (
            lambda r: [
                m.__setitem__("value", {"count": 0, "share": 0.0})
                for m in r["metrics"]
                if m["config"]["type"].endswith(":DriftedColumnsCount")
            ],
            "per-column",
        ),
        (
            lambda r: r["metrics"].__setitem__(
                slice(None), [m for m in r["metrics"] if m["config"].get("column") != "skips_7d"]
            ),
            "skips_7d",
        ),
        (lambda r: r.pop("metrics"), "metrics"),
    ],
    ids=[
        "count-metric-missing",
        "count-metric-renamed",
        "value-reshaped",
        "count-disagrees",
        "column-missing",
        "no-metrics",
    ],
)
def test_changed_report_shape_fails_instead_of_reporting_zero(saved_report: dict, mutate, message: str) -> None:
    report = json.loads(json.dumps(saved_report))
    mutate(report)
    with pytest.raises(ReportShapeError, match=message):
        extract(report)
