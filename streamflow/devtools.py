"""Real tools that `make observe` and the tests run, installed on first use.

- helm: built from the Go module proxy at a pinned version (~2-5 min once, then cached under
  ~/.cache/streamflow/tools), with the version link flags Helm's own Makefile sets;
- Debian packages (Prometheus, promtool, the Pushgateway, PostgreSQL): installed with apt-get
  when their binary is missing (needs root; otherwise the error names the command to run).
Nothing here is imported by the API or the jobs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

HELM_VERSION = "v3.19.0"
# The Kubernetes minor Helm reports by default (its .Capabilities.KubeVersion); callers also
# pass --kube-version explicitly.
HELM_KUBE_MINOR = "33"
KUBERNETES_VERSION = "1.33.0"
CACHE = Path(os.environ.get("STREAMFLOW_TOOLS_CACHE", Path.home() / ".cache" / "streamflow" / "tools"))


class ToolUnavailable(RuntimeError):
    pass


def run_tool(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a tool, raising ToolUnavailable with the end of its stderr when it fails."""
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise ToolUnavailable(f"{' '.join(cmd[:4])} … failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


def go() -> str:
    found = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if found is None:
        raise ToolUnavailable("the Go toolchain is needed to build helm (install Go 1.24+)")
    return found


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
        run_tool([go(), "install", "-ldflags", "-s -w " + " ".join(flags), f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"],
                 env={**os.environ, "GOBIN": str(target), "CGO_ENABLED": "0"}, timeout=1500)
    return binary


def apt_install(*packages: str) -> None:
    """Install Debian packages non-interactively (refreshing the package lists if needed)."""
    if os.geteuid() != 0:
        raise ToolUnavailable(f"missing Debian packages: run `sudo apt-get install {' '.join(packages)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    if subprocess.run(install, capture_output=True, env=env, check=False).returncode != 0:
        run_tool(["apt-get", "update", "-qq"], env=env, timeout=600)
        run_tool(install, env=env, timeout=900)


@cache
def debian_binary(name: str, package: str) -> Path:
    """Path of a binary from a Debian package (`prometheus`, `promtool`, ...), installed if missing."""
    if shutil.which(name) is None:
        apt_install(package)
    found = shutil.which(name)
    if found is None:
        raise ToolUnavailable(f"package {package} installed but `{name}` is not on PATH")
    return Path(found)


def prometheus() -> Path:
    return debian_binary("prometheus", "prometheus")


def promtool() -> Path:
    return debian_binary("promtool", "prometheus")


def pushgateway() -> Path:
    return debian_binary("prometheus-pushgateway", "prometheus-pushgateway")
