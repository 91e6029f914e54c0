"""`make e2e`: the README's own sequence on the local node, then tests/e2e prove what it built.

    make cluster monitoring images deploy CLUSTER=local   (the chart's default values; the drift proofs
                                                           then upgrade to a per-minute schedule)
    STREAMFLOW_E2E=1 pytest tests/e2e                     (pods, API, CronJob, Prometheus, doctor, upgrade)
    make ct-install CLUSTER=local                         (ct install of every charts/streamflow/ci/*.yaml)
    make down CLUSTER=local                               (unless the node ran before, or E2E_KEEP=1)

Each step's wall time goes to the terminal and to reports/e2e.json. A step that fails stops the
run (exit 1) after the node is taken down; its output is above, and the node's logs stay in
~/.cache/streamflow/cluster/last-logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tools import toolchain
from tools.cluster import node
from tools.cluster.layout import Layout

REPO_ROOT = Path(__file__).resolve().parents[1]
REPORT = REPO_ROOT / "reports" / "e2e.json"
NAMESPACE = RELEASE = "streamflow"  # the Makefile's defaults, which the proofs use


def steps(python: str) -> list[tuple[str, list[str], dict[str, str]]]:
    make = ["make", "--no-print-directory"]
    return [
        ("cluster", [*make, "cluster", "CLUSTER=local"], {}),
        ("monitoring", [*make, "monitoring", "CLUSTER=local"], {}),
        ("images", [*make, "images", "CLUSTER=local"], {}),
        # the proofs are of a first install: a release left by an earlier run goes, data and all
        ("fresh", [python, "-m", "tools.e2e", "--remove-release"], {}),
        ("deploy", [*make, "deploy", "CLUSTER=local"], {}),
        ("tests", [python, "-m", "pytest", "tests/e2e", "-v", *sys.argv[1:]], {"STREAMFLOW_E2E": "1"}),
        # every ci/*-values.yaml scenario installed, `helm test`ed and uninstalled by chart-testing
        ("ct-install", [*make, "ct-install", "CLUSTER=local"], {}),
    ]


def remove_release(layout: Layout) -> int:
    """Uninstall the e2e release and delete its namespace (PVCs and the kept status ConfigMap too)."""
    kubeconfig = ["--kubeconfig", str(layout.admin_kubeconfig)]
    helm = [str(toolchain.helm()), *kubeconfig]
    kubectl = [str(node.kubectl_path()), *kubeconfig]
    listed = subprocess.run([*helm, "status", RELEASE, "-n", NAMESPACE], capture_output=True, check=False)
    if listed.returncode == 0:
        subprocess.run([*helm, "uninstall", RELEASE, "-n", NAMESPACE, "--wait"], check=True)
    subprocess.run([*kubectl, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait"], check=True)
    return 0


def main() -> int:
    if sys.argv[1:] == ["--remove-release"]:
        return remove_release(Layout.default())
    layout = Layout.default()
    was_running = all(node.running(layout).values())
    keep = was_running or os.environ.get("E2E_KEEP") == "1"
    timings: dict[str, float] = {}
    failed = ""
    started = time.monotonic()
    try:
        for name, command, env in steps(sys.executable):
            print(f"\n=== e2e: {name}: {' '.join(command)}", flush=True)
            step_started = time.monotonic()
            result = subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, **env}, check=False)
            timings[name] = round(time.monotonic() - step_started, 1)
            print(f"=== e2e: {name}: exit {result.returncode} after {timings[name]:.0f}s", flush=True)
            if result.returncode != 0:
                failed = name
                break
    finally:
        if not keep:
            print("\n=== e2e: make down CLUSTER=local", flush=True)
            down_started = time.monotonic()
            subprocess.run(["make", "--no-print-directory", "down", "CLUSTER=local"], cwd=REPO_ROOT, check=False)
            timings["down"] = round(time.monotonic() - down_started, 1)
        else:
            print("\n=== e2e: the node keeps running (it ran before, or E2E_KEEP=1): `make down CLUSTER=local`")
    timings["total"] = round(time.monotonic() - started, 1)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps({"failed_step": failed, "seconds": timings}, indent=2) + "\n")
    print(f"=== e2e: {'FAILED at ' + failed if failed else 'passed'}; seconds per step: {timings}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
