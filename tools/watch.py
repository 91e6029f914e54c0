"""Watch a release's pods while a command (helm upgrade, a Job) runs: say what it waits for, fail fast.

    python3 -m tools.watch --namespace NS --selector app.kubernetes.io/instance=R -- helm upgrade --install ...
    python3 -m tools.watch --namespace NS --job JOB --timeout 1800

`helm upgrade --install` returns before anything runs, and with `--wait` it blocks silently (and
hangs on a WaitForFirstConsumer PVC): a failure only surfaces as a bare timeout. After the command,
this waits for the --rollout Deployments and the newest --jobs Job, and prints, when something
changed (every 30 s at least), the phase of each pod of the release with the elapsed time. A pod
that fails for good (crash loop, an image the node does not have, a missing Secret, a pod the
scheduler cannot place) stops the command within seconds, with that container's last log lines
and the likely fix, exit 1. A failed run of a Job is told at once the same way, but the Job
decides: it may retry (backoffLimit); the watch ends when the Job has failed for good.

Standard library only (it runs with the user's python3 and kubectl, no venv): kubectl is KUBECTL
or `kubectl` on PATH.
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

POLL_SECONDS = 2.0
# A pod the scheduler cannot place may only be waiting for a PVC to bind or a node to be
# ready: give it this long before calling it a failure.
UNSCHEDULABLE_GRACE_SECONDS = 45.0
LOG_LINES = 25
# Pods created this long before the watch began still count as this run's (clock granularity)
CLOCK_SKEW_SECONDS = 5.0

IMAGE_MISSING = {"ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff", "InvalidImageName"}
HINTS = {
    "image": "the node does not have image {image}: build and load it with "
    "`make images CLUSTER=<kind|minikube|local>`, "
    "then `make deploy` again (the same tag is passed to both)",
    "config": "a Secret or ConfigMap the pod needs is missing: {message}",
    "crash": "the container fails: read its log above, fix the cause, then `make deploy` again "
    "(`kubectl -n {namespace} logs {pod} -c {container}` shows it again)",
    "oom": "the container ran out of memory: raise its resources.limits.memory in the chart values",
    "unschedulable": "the scheduler cannot place the pod: {message}; free the node or lower the requests "
    "(charts/streamflow/values-small.yaml)",
}


@dataclass(frozen=True)
class Failure:
    pod: str
    container: str
    reason: str
    hint: str
    previous: bool = False  # its log is the previous (crashed) instance's


def kubectl(*args: str) -> str:
    command = [os.environ.get("KUBECTL", "kubectl"), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} …: {result.stderr.strip()[-500:]}")
    return result.stdout


def _containers(pod: dict) -> list[dict]:
    status = pod.get("status", {})
    return status.get("initContainerStatuses", []) + status.get("containerStatuses", [])


def failure_of(pod: dict, now: float) -> Failure | None:
    """Why `pod` has failed for good, or None while it may still come up."""
    name = pod["metadata"]["name"]
    namespace = pod["metadata"]["namespace"]
    for container in _containers(pod):
        state = container.get("state", {})
        waiting = state.get("waiting", {})
        terminated = state.get("terminated") or {}
        reason = waiting.get("reason") or terminated.get("reason") or ""
        fill = {"image": container.get("image", "?"), "message": waiting.get("message", ""), "namespace": namespace,
                "pod": name, "container": container["name"]}  # fmt: skip
        if reason in IMAGE_MISSING:
            return Failure(name, container["name"], reason, HINTS["image"].format(**fill))
        if reason == "CreateContainerConfigError":
            return Failure(name, container["name"], reason, HINTS["config"].format(**fill))
        if reason == "CrashLoopBackOff":
            last = container.get("lastState", {}).get("terminated", {})
            kind = "oom" if last.get("reason") == "OOMKilled" else "crash"
            return Failure(name, container["name"], reason, HINTS[kind].format(**fill), previous=True)
        if terminated and terminated.get("exitCode", 0) != 0:
            kind = "oom" if reason == "OOMKilled" else "crash"
            return Failure(
                name, container["name"], f"exit {terminated['exitCode']} ({reason})", HINTS[kind].format(**fill)
            )
    for condition in pod.get("status", {}).get("conditions", []):
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            since = _timestamp(condition.get("lastTransitionTime"))
            if since is not None and now - since > UNSCHEDULABLE_GRACE_SECONDS:
                message = condition.get("message", "")
                return Failure(name, "", "Unschedulable", HINTS["unschedulable"].format(message=message))
    return None


def _timestamp(value: str | None) -> float | None:
    """Seconds since the epoch of a Kubernetes timestamp (RFC 3339, UTC)."""
    if not value:
        return None
    return calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))


def describe(pod: dict) -> str:
    """One pod in a few words: its owner kind, phase and readiness."""
    name = pod["metadata"]["name"]
    phase = pod.get("status", {}).get("phase", "?")
    containers = _containers(pod)
    waiting = [c["state"]["waiting"].get("reason", "") for c in containers if "waiting" in c.get("state", {})]
    ready = sum(1 for c in pod.get("status", {}).get("containerStatuses", []) if c.get("ready"))
    total = len(pod.get("spec", {}).get("containers", []))
    detail = f" {','.join(filter(None, waiting))}" if any(waiting) else ""
    return f"{name} {phase}{detail} {ready}/{total}"


def logs(namespace: str, failure: Failure) -> str:
    if not failure.container:
        return ""
    args = ["-n", namespace, "logs", failure.pod, "-c", failure.container, f"--tail={LOG_LINES}"]
    try:
        return kubectl(*args, *(["--previous"] if failure.previous else []))
    except RuntimeError as error:
        return f"(no log: {error})"


def report(namespace: str, failure: Failure) -> None:
    where = f"{failure.pod}" + (f", container {failure.container}" if failure.container else "")
    print(f"FAILED: {where}: {failure.reason}", file=sys.stderr)
    text = logs(namespace, failure)
    if text.strip():
        print(f"--- last {LOG_LINES} log lines ---", file=sys.stderr)
        print(text.rstrip(), file=sys.stderr)
        print("---", file=sys.stderr)
    print(f"likely fix: {failure.hint}", file=sys.stderr)


def pods(namespace: str, selector: str) -> list[dict]:
    return json.loads(kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "json"))["items"]


def current(namespace: str, pod: dict) -> bool:
    """False for a pod on its way out: terminating, or made by a Job that is gone or being deleted
    (the bootstrap Job of the revision an upgrade replaces may retry once more meanwhile)."""
    if pod["metadata"].get("deletionTimestamp"):
        return False
    for owner in pod["metadata"].get("ownerReferences", []):
        if owner.get("kind") == "Job":
            try:
                job = json.loads(kubectl("-n", namespace, "get", "job", owner["name"], "-o", "json"))
            except RuntimeError:
                return False
            return not job["metadata"].get("deletionTimestamp")
    return True


def job_of(pod: dict) -> str | None:
    """The name of the Job that made the pod, if a Job did."""
    return next((o["name"] for o in pod["metadata"].get("ownerReferences", []) if o.get("kind") == "Job"), None)


def job_state(namespace: str, job: str) -> str:
    """'Complete', 'Failed' or '' from a Job's conditions."""
    found = json.loads(kubectl("-n", namespace, "get", "job", job, "-o", "json"))
    for condition in found.get("status", {}).get("conditions", []):
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return condition["type"]
    return ""


class Progress:
    """Prints the pods' states when they change, with the elapsed time (every 30 s at least)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.last_line = ""
        self.last_print = 0.0

    def show(self, line: str) -> None:
        now = time.monotonic()
        if line != self.last_line or now - self.last_print > 30:
            print(f"[{now - self.started:6.0f}s] {line}", flush=True)
            self.last_line, self.last_print = line, now


def rollout_done(namespace: str, deployment: str) -> bool:
    """`kubectl rollout status`'s test: the newest spec observed, every replica updated and available."""
    found = json.loads(kubectl("-n", namespace, "get", "deployment", deployment, "-o", "json"))
    wanted, status = found["spec"].get("replicas", 1), found.get("status", {})
    return status.get("observedGeneration", 0) >= found["metadata"]["generation"] and (
        status.get("updatedReplicas", 0) == status.get("availableReplicas", 0) == status.get("replicas", 0) == wanted
    )


def newest_job(namespace: str, selector: str) -> str | None:
    jobs = json.loads(kubectl("-n", namespace, "get", "jobs", "-l", selector, "-o", "json"))["items"]
    newest = max(jobs, key=lambda job: job["metadata"]["creationTimestamp"], default=None)
    return newest["metadata"]["name"] if newest else None


def watch(
    namespace: str,
    selector: str,
    command: list[str] | None,
    job: str | None,
    timeout: float,
    rollouts: tuple[str, ...] = (),
    jobs_selector: str | None = None,
) -> int:
    """Run `command` (or wait for `job`) while watching the pods; with a command, once it succeeded,
    wait on for each Deployment of `rollouts` and the newest Job of `jobs_selector` to finish."""
    # Only pods made by this run: a failed pod of an earlier CronJob run is history, not this failure
    since = time.time() - CLOCK_SKEW_SECONDS
    process = subprocess.Popen(command) if command else None
    progress = Progress()
    deadline = time.monotonic() + timeout
    suspects: dict[str, Failure] = {}
    told: set[str] = set()
    command_name = ""
    try:
        while True:
            found = [
                pod
                for pod in pods(namespace, selector)
                if (_timestamp(pod["metadata"].get("creationTimestamp")) or 0) >= since and current(namespace, pod)
            ]
            now = time.time()
            seen: dict[str, Failure] = {}
            for pod in found:
                failure = failure_of(pod, now)
                if failure is None:
                    continue
                owner = job_of(pod)
                if owner and failure.reason != "Unschedulable":
                    # A Job may retry (backoffLimit): tell this attempt now, stop once the Job has
                    # failed for good (Helm's --wait-for-jobs counts retries only: it would miss
                    # a podFailurePolicy's FailJob and wait for its timeout)
                    if failure.pod not in told:
                        report(namespace, failure)
                        told.add(failure.pod)
                    if job_state(namespace, owner) == "Failed":
                        print(f"FAILED: job {owner} failed; `kubectl -n {namespace} logs job/{owner}`", file=sys.stderr)
                        return 1
                    continue
                # twice in a row: by the second look Helm has deleted what the new revision replaces
                if suspects.get(failure.pod) == failure:
                    report(namespace, failure)
                    return 1
                seen[failure.pod] = failure
            suspects = seen
            waiting_for = f"job {job}" if job else (" ".join([Path(command[0]).name, *command[1:3]]) if command else "")
            states = "; ".join(describe(pod) for pod in found) or "no pods yet"
            progress.show(f"waiting for {command_name or waiting_for}: {states}")
            if process is not None and process.poll() is not None:
                if process.returncode != 0 or not (rollouts or jobs_selector):
                    return process.returncode
                waited = [f"deployment/{d}" for d in rollouts if not rollout_done(namespace, d)]
                newest = newest_job(namespace, jobs_selector) if jobs_selector else None
                state = job_state(namespace, newest) if newest else "Complete"
                if state == "Failed":
                    print(f"FAILED: job {newest} failed; `kubectl -n {namespace} logs job/{newest}`", file=sys.stderr)
                    return 1
                if state != "Complete":
                    waited.append(f"job/{newest}")
                if not waited:
                    return 0
                command_name = f"{' '.join(waited)} (after {Path(command[0]).name})" if command else ""
            if job and job_state(namespace, job) == "Complete":
                return 0
            if job and job_state(namespace, job) == "Failed":
                print(f"FAILED: job {job} failed{' (its pods above)' if told else ''}", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print(f"FAILED: still waiting after {timeout:.0f}s: {states}", file=sys.stderr)
                return 1
            time.sleep(POLL_SECONDS)
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tools.watch", description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--selector", help="label selector of the pods to watch (the release's)")
    parser.add_argument("--job", help="wait for this Job (its pods are selected by job-name)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds (default 1800)")
    parser.add_argument(
        "--rollout", action="append", default=[], metavar="DEPLOYMENT", help="after the command: wait for its rollout"
    )
    parser.add_argument("--jobs", metavar="SELECTOR", help="after the command: wait for the newest Job it selects")
    parser.add_argument("command", nargs="*", help="the command to run while watching (after --)")
    args = parser.parse_args(argv)
    if not args.command and not args.job:
        parser.error("give a command to run (after --) or --job")
    selector = args.selector or (f"job-name={args.job}" if args.job else None)
    if selector is None:
        parser.error("--selector is needed with a command")
    try:
        return watch(
            args.namespace, selector, args.command or None, args.job, args.timeout, tuple(args.rollout), args.jobs
        )
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
