"""The end-to-end proofs run only inside `make e2e` (STREAMFLOW_E2E=1), after it has brought up the
local node and run `make monitoring images deploy CLUSTER=local`; `make test` never collects them.

The files run in name order, each building on the state the one before left: test_1 (the release
as installed, with the chart's default values) ... test_7 (upgrade, then uninstall).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kube import Kube, Prometheus
from tools.cluster import node
from tools.cluster.layout import Layout

collect_ignore_glob = [] if os.environ.get("STREAMFLOW_E2E") == "1" else ["test_*.py"]

NAMESPACE = "streamflow"
RELEASE = "streamflow"
FULLNAME = "streamflow"  # the chart's prefix when the release name contains the chart name
MONITORING_NAMESPACE = "monitoring"
REPO_ROOT = Path(__file__).resolve().parents[2]


def make(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    """A make target of the README's sequence, on the local node (`make <target> CLUSTER=local`)."""
    return subprocess.run(
        ["make", "--no-print-directory", *args, "CLUSTER=local"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False, env=os.environ,
    )  # fmt: skip


@pytest.fixture(scope="session")
def kube():
    layout = Layout.default()
    if not all(node.running(layout).values()):
        pytest.fail("the local node is not running: `make e2e` starts it (or `make cluster CLUSTER=local`)")
    return Kube(str(node.kubectl_path()), str(layout.admin_kubeconfig))


@pytest.fixture(scope="session")
def prometheus(kube) -> Iterator:
    with kube.port_forward(MONITORING_NAMESPACE, "service/prometheus-operated", 9090) as url:
        yield Prometheus(url)


@pytest.fixture(scope="session")
def api_url(kube) -> Iterator[str]:
    with kube.port_forward(NAMESPACE, f"service/{FULLNAME}-api", 8000) as url:
        yield url
