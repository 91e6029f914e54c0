"""Real tools that `make observe`, the benchmarks and the tests run, installed on first use.

- helm: built from the Go module proxy at a pinned version (~2-5 min once, then cached under
  ~/.cache/streamflow/tools), with the version link flags Helm's own Makefile sets;
- helm-docs: the same way, at a pinned version (the chart's README is generated with it);
- kube-apiserver: built from the Go module proxy at a pinned Kubernetes version through a
  generated wrapper module (~7 min of CPU once, then cached under ~/.cache/streamflow/tools);
- Debian packages (Prometheus, promtool, the Pushgateway, PostgreSQL, etcd): installed with
  apt-get when their binary is missing (needs root; otherwise the error names the command to run);
- prometheus-operator's CRDs: the YAMLs of its Go module, at a pinned version;
- checkov, hadolint and kubernetes-validate: a venv synced from tools/locks/lint-requirements.lock
  (hashed), kept apart from the app's venv because checkov pins many libraries.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
VERSIONS_FILE = REPO_ROOT / "k8s" / "versions.env"


def _read_versions(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of k8s/versions.env, the one place the Makefile and this module pin from."""
    pairs = (
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


VERSIONS = _read_versions(VERSIONS_FILE)
HELM_VERSION = VERSIONS["HELM_VERSION"]
HELM_DOCS_VERSION = VERSIONS["HELM_DOCS_VERSION"]
# The Kubernetes version charts are rendered and validated for (helm --kube-version, schemas)
KUBERNETES_VERSION = VERSIONS["KUBERNETES_MINOR"] + ".0"
# The Kubernetes minor Helm reports by default (its .Capabilities.KubeVersion); callers also
# pass --kube-version explicitly.
HELM_KUBE_MINOR = VERSIONS["KUBERNETES_MINOR"].split(".")[1]
# The API server the tests run; its minor must be KUBERNETES_VERSION's (checked in kube_apiserver).
KUBE_APISERVER_VERSION = VERSIONS["KUBE_BINARIES_VERSION"]
PROMETHEUS_OPERATOR_VERSION = VERSIONS["PROMETHEUS_OPERATOR_VERSION"]
LINT_LOCK = Path(__file__).resolve().parent / "locks" / "lint-requirements.lock"
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
            flags += [
                f"-X helm.sh/helm/v3/{package}.k8sVersionMajor=1",
                f"-X helm.sh/helm/v3/{package}.k8sVersionMinor={HELM_KUBE_MINOR}",
            ]
        target.mkdir(parents=True, exist_ok=True)
        run_tool(
            [go(), "install", "-ldflags", "-s -w " + " ".join(flags), f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"],
            env={**os.environ, "GOBIN": str(target), "CGO_ENABLED": "0"},
            timeout=1500,
        )
    return binary


@cache
def helm_docs() -> Path:
    """Path of the pinned helm-docs binary (writes the chart's README from values.yaml), built
    with `go install` the first time (~1 min)."""
    target = CACHE / f"helm-docs-{HELM_DOCS_VERSION}"
    binary = target / "helm-docs"
    if not binary.exists():
        target.mkdir(parents=True, exist_ok=True)
        # main.version is what its releases set (without the "v"); the README's footer names it
        run_tool(
            [
                go(),
                "install",
                "-ldflags",
                f"-s -w -X main.version={HELM_DOCS_VERSION.lstrip('v')}",
                f"github.com/norwoodj/helm-docs/cmd/helm-docs@{HELM_DOCS_VERSION}",
            ],
            env={**os.environ, "GOBIN": str(target), "CGO_ENABLED": "0"},
            timeout=1500,
        )
    return binary


# k8s.io/kubernetes replaces its staging modules (k8s.io/api, k8s.io/client-go, ...) with local
# paths, so `go install` refuses it; a wrapper module replaces each with its published tag instead.
_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", re.MULTILINE)


@cache
def kube_apiserver() -> Path:
    """Path of the pinned kube-apiserver binary, built through a wrapper module the first time."""
    major, minor, patch = KUBE_APISERVER_VERSION.lstrip("v").split(".")
    if KUBERNETES_VERSION.split(".")[:2] != [major, minor]:
        raise ToolUnavailable(f"kube-apiserver {KUBE_APISERVER_VERSION} does not match Kubernetes {KUBERNETES_VERSION}")
    target = CACHE / f"kube-apiserver-{KUBE_APISERVER_VERSION}"
    binary = target / "kube-apiserver"
    if binary.exists():
        return binary
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false"}
    upstream = f"k8s.io/kubernetes@{KUBE_APISERVER_VERSION}"
    go_mod = Path(
        json.loads(run_tool([go(), "mod", "download", "-json", upstream], env=env, timeout=900).stdout)["GoMod"]
    )
    staging = _STAGING_REPLACE.findall(go_mod.read_text())
    if not staging:
        raise ToolUnavailable(f"no staging replace lines in {go_mod}: the wrapper module recipe no longer fits")
    published = f"v0.{minor}.{patch}"  # staging modules are tagged v0.<minor>.<patch>
    wrapper = target / "wrapper"
    wrapper.mkdir(parents=True, exist_ok=True)
    (wrapper / "go.mod").write_text(
        "module streamflow.invalid/kube-apiserver-build\n\ngo 1.24\n\n"
        f"require k8s.io/kubernetes {KUBE_APISERVER_VERSION}\n\nreplace (\n"
        + "".join(f"\t{module} => {module} {published}\n" for module in staging)
        + ")\n"
    )
    package = "k8s.io/kubernetes/cmd/kube-apiserver"
    # Pin the version in `go get` too, or it moves k8s.io/kubernetes to the newest release.
    run_tool([go(), "get", f"{package}@{KUBE_APISERVER_VERSION}"], cwd=wrapper, env=env, timeout=1800)
    # The version the binary reports (/version), set the way Kubernetes' own build does.
    flags = [
        f"-X k8s.io/component-base/version.{name}={value}"
        for name, value in (
            ("gitVersion", KUBE_APISERVER_VERSION),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
        )
    ]
    partial = target / "kube-apiserver.partial"  # renamed when complete: an interrupted build is not cached
    run_tool(
        [go(), "build", "-trimpath", "-ldflags", "-s -w " + " ".join(flags), "-o", str(partial), package],
        cwd=wrapper,
        env=env,
        timeout=3600,
    )
    partial.rename(binary)
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


def etcd() -> Path:
    return debian_binary("etcd", "etcd-server")


@cache
def prometheus_operator_crds() -> dict[str, dict[str, Any]]:
    """CRD objects of prometheus-operator by kind (ServiceMonitor, PrometheusRule, ...)."""
    import yaml

    module = f"github.com/prometheus-operator/prometheus-operator@{PROMETHEUS_OPERATOR_VERSION}"
    info = json.loads(run_tool([go(), "mod", "download", "-json", module], timeout=600).stdout)

    class CrdLoader(yaml.SafeLoader):
        """YAML 1.1 reads a bare `=` (an enum value of relabelings' action) as a "value" tag."""

    CrdLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))
    crds = {}
    for path in sorted(Path(info["Dir"], "example", "prometheus-operator-crd").glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=CrdLoader)
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
