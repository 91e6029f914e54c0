"""`make deploy` talks and fails fast: a planted failing bootstrap Job ends `make deploy` with a
non-zero exit, the Job's log lines and the likely fix, long before Helm's 20-minute timeout (Helm
alone would wait it out: its --wait-for-jobs counts retries and misses a podFailurePolicy's
FailJob); the failed Job stays to be read, and the next good `make deploy` puts the release back."""

from __future__ import annotations

import subprocess
import time

from tests.e2e.conftest import FULLNAME, NAMESPACE, make


def _deploy(values: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = make("deploy", f"HELM_ARGS=-f tests/e2e/e2e-values.yaml -f {values}", timeout=900)
    return result, time.monotonic() - started


def test_a_failing_bootstrap_stops_make_deploy_with_its_log_and_the_fix(kube):
    failed, seconds = _deploy("tests/e2e/failing-bootstrap-values.yaml")
    print(f"make deploy with a failing bootstrap ended after {seconds:.0f}s (exit {failed.returncode})")
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, output
    assert f"FAILED: {FULLNAME}-bootstrap-" in output
    assert "bootstrap failed (bad settings): STREAMFLOW_DRIFT_THRESHOLD='not-a-number'" in output  # its log line
    assert "likely fix:" in output
    # the failed pod stays, for `kubectl logs`
    pods = kube.json("-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=bootstrap")["items"]
    assert any(pod["status"]["phase"] == "Failed" for pod in pods)

    repaired, seconds = _deploy("/dev/null")
    print(f"the good make deploy after it took {seconds:.0f}s")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    jobs = kube.json("-n", NAMESPACE, "get", "jobs", "-l", "app.kubernetes.io/component=bootstrap")["items"]
    newest = max(jobs, key=lambda job: int(job["metadata"]["name"].rsplit("-", 1)[1]))
    assert newest["status"].get("succeeded") == 1
    # the failed revision's Job stays to be read (`kubectl logs job/...`), done: it runs no more
    assert all(job["status"].get("succeeded") or job["status"].get("failed") for job in jobs)
