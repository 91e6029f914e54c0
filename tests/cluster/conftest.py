"""The local node's tests run only when asked: `make cluster-test` (STREAMFLOW_CLUSTER_TESTS=1).

They need root, a running node (`make cluster CLUSTER=local`) and minutes; `make test` leaves
this directory out of collection entirely.
"""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("STREAMFLOW_CLUSTER_TESTS") == "1" else ["test_*.py"]
