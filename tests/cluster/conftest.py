"""The local node's tests run only when asked: `make cluster-test` (STREAMFLOW_CLUSTER_TESTS=1).

They need root, a running node (`make cluster CLUSTER=local`) and minutes; `make test` leaves
this directory out of collection entirely.
"""

from __future__ import annotations

import os

import pytest

from tools.cluster import node
from tools.cluster.layout import Layout

collect_ignore_glob = [] if os.environ.get("STREAMFLOW_CLUSTER_TESTS") == "1" else ["test_*.py"]


@pytest.fixture(scope="session")
def layout() -> Layout:
    found = Layout.default()
    if not all(node.running(found).values()):
        pytest.fail(f"the local node is not running (state {found.node}): `make cluster CLUSTER=local` first")
    return found
