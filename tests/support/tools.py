"""Real tools the chart tests run, installed on first use and cached under ~/.cache/streamflow.

- helm, Prometheus, promtool, the Pushgateway: streamflow/devtools.py (shared with `make observe`);
- prometheus-operator CRDs: the YAMLs of its Go module, at a pinned version;
- checkov, hadolint and kubernetes-validate: a venv synced from tests/tools/lint-requirements.lock
  (hashed), kept apart from the app's venv because checkov pins many libraries.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from functools import cache
from pathlib import Path

from streamflow.devtools import CACHE, KUBERNETES_VERSION, ToolUnavailable, go, helm, run_tool  # noqa: F401
from tests.support.processes import REPO_ROOT

PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
LINT_LOCK = REPO_ROOT / "tests" / "tools" / "lint-requirements.lock"

@cache
def prometheus_operator_crds() -> dict[str, dict]:
    """CRD objects of prometheus-operator by kind (ServiceMonitor, PrometheusRule, ...)."""
    import yaml

    module = f"github.com/prometheus-operator/prometheus-operator@{PROMETHEUS_OPERATOR_VERSION}"
    info = json.loads(run_tool([go(), "mod", "download", "-json", module], timeout=600).stdout)
    class CrdLoader(yaml.SafeLoader):
        """YAML 1.1 reads a bare `=` (an enum value of relabelings' action) as a "value" tag."""

    CrdLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))
    crds = {}
    for path in sorted(Path(info["Dir"], "example", "prometheus-operator-crd").glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=CrdLoader)  # noqa: S506 - a SafeLoader subclass
        crds[crd["spec"]["names"]["kind"]] = crd
    if not crds:
        raise ToolUnavailable(f"no CRD YAMLs in {info['Dir']}")
    return crds


@cache
def lint_venv() -> Path:
    """bin/ of a venv with checkov, hadolint and kubernetes-validate at the locked versions."""
    digest = hashlib.sha256(LINT_LOCK.read_bytes()).hexdigest()[:12]
    venv = CACHE / f"lint-venv-{digest}"
    if not (venv / ".synced").exists():
        uv = os.environ.get("UV_BIN") or shutil.which("uv")
        if uv is None:
            raise ToolUnavailable("uv not found: run the tests through `make test`, which installs it")
        run_tool([uv, "venv", "--quiet", "--allow-existing", "--python", "3.11", str(venv)], timeout=300)
        run_tool([uv, "pip", "sync", "--quiet", "--python", str(venv / "bin" / "python"), str(LINT_LOCK)], timeout=900)
        (venv / ".synced").touch()
    return venv / "bin"
