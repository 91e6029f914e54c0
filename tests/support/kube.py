"""kubectl, port-forwards and the in-cluster Prometheus for tests against a live cluster (tests/e2e)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx


class KubectlError(RuntimeError):
    pass


@dataclass(frozen=True)
class Kube:
    """kubectl with a given binary and kubeconfig (the local node's, in `make e2e`)."""

    kubectl_path: str
    kubeconfig: str

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120.0, check: bool = True) -> str:
        result = subprocess.run(
            [self.kubectl_path, "--kubeconfig", self.kubeconfig, *args],
            input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json"))

    def apply(self, manifest: dict) -> None:
        self.run("apply", "-f", "-", stdin=json.dumps(manifest))

    def job_from_cronjob(self, namespace: str, cronjob: str, name: str, args: list[str] | None = None) -> None:
        """Job `name` from the CronJob's template, as `make drift-now` makes one, its first container
        given `args` when set (explicit months, a planted bad argument)."""
        job = json.loads(self.run("-n", namespace, "create", "job", name, f"--from=cronjob/{cronjob}",
                                  "--dry-run=client", "-o", "json"))  # fmt: skip
        if args is not None:
            job["spec"]["template"]["spec"]["containers"][0]["args"] = args
        self.apply(job)

    @contextmanager
    def port_forward(self, namespace: str, target: str, port: int) -> Iterator[str]:
        """`kubectl port-forward` to a free local port; yields http://127.0.0.1:<port>."""
        forward = subprocess.Popen(
            [self.kubectl_path, "--kubeconfig", self.kubeconfig, "-n", namespace, "port-forward", target, f":{port}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert forward.stdout is not None
            line = forward.stdout.readline()
            match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
            if match is None:
                error = forward.stderr.read() if forward.poll() is not None and forward.stderr else ""
                raise KubectlError(f"port-forward {target}: {line}{error}")
            yield f"http://127.0.0.1:{match.group(1)}"
        finally:
            forward.terminate()
            forward.wait(timeout=10)


def eventually(what: str, check: Callable[[], Any], timeout: float, interval: float = 3.0) -> Any:
    """check() until it returns something truthy; fail naming `what` and the last value or error."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (KubectlError, httpx.HTTPError, KeyError, IndexError) as error:
            last = error
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")


class Prometheus:
    """The in-cluster Prometheus through a port-forward to service/prometheus-operated."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=15.0)

    def query(self, expr: str) -> list[dict]:
        response = self.client.get("/api/v1/query", params={"query": expr})
        response.raise_for_status()
        return response.json()["data"]["result"]

    def value(self, expr: str) -> float | None:
        """The single value of `expr`, or None when it returns no series."""
        result = self.query(expr)
        if not result:
            return None
        if len(result) > 1:
            raise AssertionError(f"{expr}: {len(result)} series, expected one: {result}")
        return float(result[0]["value"][1])

    def targets(self) -> list[dict]:
        response = self.client.get("/api/v1/targets", params={"state": "active"})
        response.raise_for_status()
        return response.json()["data"]["activeTargets"]

    def alerts(self) -> list[dict]:
        response = self.client.get("/api/v1/alerts")
        response.raise_for_status()
        return response.json()["data"]["alerts"]

    def rule_groups(self) -> list[dict]:
        response = self.client.get("/api/v1/rules")
        response.raise_for_status()
        return response.json()["data"]["groups"]
