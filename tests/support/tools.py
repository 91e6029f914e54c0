"""Real tools the chart tests run, installed on first use and cached under ~/.cache/streamflow.

- helm: built from the Go module proxy at a pinned version (~2-5 min once, then cached), with
  the version link flags Helm's own Makefile sets;
- prometheus-operator CRDs: the YAMLs of its Go module, at a pinned version;
- checkov, hadolint and kubernetes-validate: a venv synced from tests/tools/lint-requirements.lock
  (hashed), kept apart from the app's venv because checkov pins many libraries.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

from tests.support.processes import REPO_ROOT

HELM_VERSION = "v3.19.0"
# The Kubernetes minor Helm reports by default (its .Capabilities.KubeVersion); the tests also
# pass --kube-version explicitly.
HELM_KUBE_MINOR = "33"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
KUBERNETES_VERSION = "1.33.0"
CACHE = Path(os.environ.get("STREAMFLOW_TOOLS_CACHE", Path.home() / ".cache" / "streamflow" / "tools"))
LINT_LOCK = REPO_ROOT / "tests" / "tools" / "lint-requirements.lock"


class ToolUnavailable(RuntimeError):
    pass


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise ToolUnavailable(f"{' '.join(cmd[:4])} … failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise ToolUnavailable("the Go toolchain is needed to build helm (install Go 1.24+)")
    return go


@cache
def helm() -> Path:
    """Path of the pinned helm binary, built with `go install` the first time."""
    target = CACHE / f"helm-{HELM_VERSION}"
    binary = target / "helm"
    if not binary.exists():
        flags = [f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}"]
        for package in ("pkg/chartutil", "pkg/lint/rules"):
            flags += [f"-X helm.sh/helm/v3/{package}.k8sVersionMajor=1",
                      f"-X helm.sh/helm/v3/{package}.k8sVersionMinor={HELM_KUBE_MINOR}"]
        target.mkdir(parents=True, exist_ok=True)
        _run([_go(), "install", "-ldflags", "-s -w " + " ".join(flags), f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"],
             env={**os.environ, "GOBIN": str(target), "CGO_ENABLED": "0"}, timeout=1500)
    return binary


@cache
def prometheus_operator_crds() -> dict[str, dict]:
    """CRD objects of prometheus-operator by kind (ServiceMonitor, PrometheusRule, ...)."""
    import yaml

    module = f"github.com/prometheus-operator/prometheus-operator@{PROMETHEUS_OPERATOR_VERSION}"
    info = json.loads(_run([_go(), "mod", "download", "-json", module], timeout=600).stdout)
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
        _run([uv, "venv", "--quiet", "--allow-existing", "--python", "3.11", str(venv)], timeout=300)
        _run([uv, "pip", "sync", "--quiet", "--python", str(venv / "bin" / "python"), str(LINT_LOCK)], timeout=900)
        (venv / ".synced").touch()
    return venv / "bin"
