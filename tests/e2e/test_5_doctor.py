"""Proof 6 (before the upgrade and uninstall of test_7): `make doctor` passes on the good install and names the fault on
a broken one: a ServiceMonitor with the wrong `release` label, a deleted PrometheusRule."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from tests.e2e.conftest import FULLNAME, NAMESPACE, make


def _doctor() -> subprocess.CompletedProcess[str]:
    return make("doctor", timeout=300)


def _verdicts(output: str) -> dict[str, str]:
    """check name -> its worst result, from the doctor's table."""
    order = {"ok": 0, "warn": 1, "FAIL": 2}
    verdicts: dict[str, str] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in order and order[parts[0]] >= order[verdicts.get(parts[1], "ok")]:
            verdicts[parts[1]] = parts[0]
    return verdicts


def test_doctor_passes_on_the_good_install():
    result = _doctor()
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts = _verdicts(result.stdout)
    for check in ("crds", "release", "servicemonitor", "prometheusrule", "targets", "drift-status", "cronjob"):
        assert verdicts.get(check) == "ok", (check, result.stdout)


@contextmanager
def _restored(kube, resource: str, name: str) -> Iterator[dict]:
    """Whatever the test does to the object, it is put back as it was."""
    saved = kube.json("-n", NAMESPACE, "get", resource, name)
    try:
        yield saved
    finally:
        for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            saved["metadata"].pop(key, None)
        kube.run("-n", NAMESPACE, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(saved))


def test_doctor_names_a_wrong_release_label(kube):
    with _restored(kube, "servicemonitor", f"{FULLNAME}-api"):
        kube.run("-n", NAMESPACE, "label", "servicemonitor", f"{FULLNAME}-api", "release=not-kps", "--overwrite")
        result = _doctor()
    assert result.returncode != 0
    failing = [line for line in result.stdout.splitlines() if line.startswith("FAIL") and "servicemonitor" in line]
    assert failing and "release=not-kps" in failing[0], result.stdout
    assert "release=kps" in result.stdout  # what the Prometheus selects, so the fix is plain


def test_doctor_names_a_deleted_rule(kube):
    with _restored(kube, "prometheusrule", FULLNAME):
        kube.run("-n", NAMESPACE, "delete", "prometheusrule", FULLNAME)
        result = _doctor()
    assert result.returncode != 0
    assert _verdicts(result.stdout).get("prometheusrule") == "FAIL", result.stdout
    assert "no prometheusrules" in result.stdout
