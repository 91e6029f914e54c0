"""tools.watch: which pod states end a `make deploy` / `make drift-now` early, and with which fix.

The pods are the JSON the API server returns, in the states the kubelet and scheduler report.
"""

from __future__ import annotations

import time

import pytest

from tools import watch

NOW = time.time()


def _iso(seconds_ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - seconds_ago))


def _pod(*statuses: dict, conditions: tuple[dict, ...] = (), name: str = "streamflow-bootstrap-abc12") -> dict:
    return {
        "metadata": {"name": name, "namespace": "streamflow", "creationTimestamp": _iso(10)},
        "spec": {"containers": [{"name": status["name"]} for status in statuses]},
        "status": {"phase": "Pending", "containerStatuses": list(statuses), "conditions": list(conditions)},
    }


def _waiting(reason: str, message: str = "") -> dict:
    return {
        "name": "bootstrap",
        "image": "streamflow-jobs:g1234567",
        "state": {"waiting": {"reason": reason, "message": message}},
    }


def test_a_running_or_starting_pod_is_no_failure():
    assert watch.failure_of(_pod({"name": "api", "state": {"running": {}}, "ready": False}), NOW) is None
    assert watch.failure_of(_pod(_waiting("ContainerCreating")), NOW) is None
    done = {"name": "bootstrap", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    assert watch.failure_of(_pod(done), NOW) is None


@pytest.mark.parametrize("reason", ["ErrImageNeverPull", "ImagePullBackOff", "ErrImagePull"])
def test_a_missing_image_names_the_image_and_make_images(reason):
    failure = watch.failure_of(_pod(_waiting(reason)), NOW)
    assert failure is not None and failure.reason == reason
    assert "streamflow-jobs:g1234567" in failure.hint and "make images" in failure.hint


def test_a_failed_container_is_reported_with_its_exit_code():
    failed = {"name": "bootstrap", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}
    failure = watch.failure_of(_pod(failed), NOW)
    assert failure is not None
    assert (failure.container, failure.reason, failure.previous) == ("bootstrap", "exit 3 (Error)", False)
    assert "logs streamflow-bootstrap-abc12 -c bootstrap" in failure.hint


def test_a_crash_loop_reads_the_previous_log_and_an_oom_says_memory():
    looping = _waiting("CrashLoopBackOff") | {"lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
    failure = watch.failure_of(_pod(looping), NOW)
    assert failure is not None and failure.previous
    assert "memory" in failure.hint


def test_a_missing_secret_is_named():
    failure = watch.failure_of(_pod(_waiting("CreateContainerConfigError", 'secret "pg" not found')), NOW)
    assert failure is not None and 'secret "pg" not found' in failure.hint


def test_unschedulable_fails_only_after_the_grace_period():
    def unschedulable(seconds_ago: float) -> dict:
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient cpu.",
            "lastTransitionTime": _iso(seconds_ago),
        }
        return _pod(conditions=(condition,))

    assert watch.failure_of(unschedulable(5), NOW) is None  # a PVC may still be binding
    failure = watch.failure_of(unschedulable(watch.UNSCHEDULABLE_GRACE_SECONDS + 10), NOW)
    assert failure is not None and "Insufficient cpu" in failure.hint and "values-small" in failure.hint


def test_timestamps_are_read_as_utc():
    assert watch._timestamp("1970-01-01T00:01:00Z") == 60
    assert watch._timestamp(None) is None
