"""Real tools that `make observe`, the benchmarks and the tests run, installed on first use.

- helm: built from the Go module proxy at a pinned version (~2-5 min once, then cached under
  ~/.cache/streamflow/tools), with the version link flags Helm's own Makefile sets;
- helm-docs: the same way, at a pinned version (the chart's README is generated with it);
- ct (helm/chart-testing): the same way, with the lint config and Chart.yaml schema its module
  ships under etc/ (yamllint and yamale, which ct runs, come from the lint venv below);
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
CHART_TESTING_VERSION = VERSIONS["CHART_TESTING_VERSION"]
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
# `replace old vX => new vY` lines of a go.mod (single-line form or inside a replace block)
_VERSION_REPLACE = re.compile(r"^(?:replace\s+|\t)(\S+ v\S+|\S+)\s+=>\s+(\S+ v\S+)\s*$", re.MULTILINE)
_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", re.MULTILINE)


@cache
def kube_apiserver() -> Path:
    """Path of the pinned kube-apiserver binary, built through a wrapper module the first time."""
    major, minor, _ = KUBE_APISERVER_VERSION.lstrip("v").split(".")
    if KUBERNETES_VERSION.split(".")[:2] != [major, minor]:
        raise ToolUnavailable(f"kube-apiserver {KUBE_APISERVER_VERSION} does not match Kubernetes {KUBERNETES_VERSION}")
    target = CACHE / f"kube-apiserver-{KUBE_APISERVER_VERSION}"
    binary = target / "kube-apiserver"
    if binary.exists():
        return binary
    package = "k8s.io/kubernetes/cmd/kube-apiserver"
    wrapper = target / "wrapper"
    env = _kubernetes_wrapper(wrapper, [package])
    partial = target / "kube-apiserver.partial"  # renamed when complete: an interrupted build is not cached
    run_tool(
        [
            go(),
            "build",
            "-trimpath",
            "-ldflags",
            "-s -w " + " ".join(_kubernetes_version_flags()),
            "-o",
            str(partial),
            package,
        ],
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


# --- The local node (tools/cluster): more binaries from the Go module proxy -----------------------

# The k8s.io/kubernetes commands a node runs beside kube-apiserver (kubectl too: /usr/bin/kubectl
# may be another minor, and kubectl supports only one minor of skew).
KUBE_NODE_COMMANDS = ("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl")
COREDNS_VERSION = VERSIONS["COREDNS_VERSION"]
CRICTL_VERSION = VERSIONS["CRICTL_VERSION"]
LOCAL_PATH_PROVISIONER_VERSION = VERSIONS["LOCAL_PATH_PROVISIONER_VERSION"]
KUBE_STATE_METRICS_VERSION = VERSIONS["KUBE_STATE_METRICS_VERSION"]
PROMETHEUS_VERSION = VERSIONS["PROMETHEUS_VERSION"]
# CoreDNS plugins of the minimal build, in the order of CoreDNS's plugin.cfg (the order they run
# in): directive -> package under github.com/coredns/coredns/plugin/
COREDNS_PLUGINS = {
    "reload": "reload",
    "bind": "bind",
    "ready": "ready",
    "health": "health",
    "prometheus": "metrics",
    "errors": "errors",
    "log": "log",
    "loadbalance": "loadbalance",
    "cache": "cache",
    "hosts": "hosts",
    "kubernetes": "kubernetes",
    "loop": "loop",
    "forward": "forward",
}


def _kubernetes_wrapper(directory: Path, packages: list[str]) -> dict[str, str]:
    """Write the wrapper module that builds `packages` of k8s.io/kubernetes; returns the build env.

    k8s.io/kubernetes replaces its staging modules with local paths, so the wrapper replaces each
    with its published v0.<minor>.<patch> tag (kube_apiserver() and kubernetes_binaries() use it).
    """
    _, minor, patch = KUBE_APISERVER_VERSION.lstrip("v").split(".")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false"}
    upstream = f"k8s.io/kubernetes@{KUBE_APISERVER_VERSION}"
    go_mod = Path(
        json.loads(run_tool([go(), "mod", "download", "-json", upstream], env=env, timeout=900).stdout)["GoMod"]
    )
    staging = _STAGING_REPLACE.findall(go_mod.read_text())
    if not staging:
        raise ToolUnavailable(f"no staging replace lines in {go_mod}: the wrapper module recipe no longer fits")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "go.mod").write_text(
        "module streamflow.invalid/kubernetes-build\n\ngo 1.24\n\n"
        f"require k8s.io/kubernetes {KUBE_APISERVER_VERSION}\n\nreplace (\n"
        + "".join(f"\t{module} => {module} v0.{minor}.{patch}\n" for module in staging)
        + ")\n"
    )
    # Pin the version in `go get` too, or it moves k8s.io/kubernetes to the newest release.
    run_tool([go(), "get", *(f"{package}@{KUBE_APISERVER_VERSION}" for package in packages)], cwd=directory, env=env)
    return env


def _kubernetes_version_flags() -> list[str]:
    """-X flags that set the version the binaries report, the way Kubernetes' own build does."""
    major, minor, _ = KUBE_APISERVER_VERSION.lstrip("v").split(".")
    return [
        f"-X k8s.io/component-base/version.{name}={value}"
        for name, value in (
            ("gitVersion", KUBE_APISERVER_VERSION),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
        )
    ]


@cache
def kubernetes_binaries(commands: tuple[str, ...] = KUBE_NODE_COMMANDS) -> dict[str, Path]:
    """Paths of k8s.io/kubernetes commands at KUBE_BINARIES_VERSION, built together the first time.

    One wrapper module and one `go build` for every missing command (they share most packages);
    kube-apiserver comes from kube_apiserver() and its own cache. Each binary is written to a
    partial directory and moved into the cache only after the whole build succeeded, so an
    interrupted build is never cached.
    """
    target = CACHE / f"kubernetes-{KUBE_APISERVER_VERSION}"
    paths = {command: target / command for command in commands if command != "kube-apiserver"}
    missing = [command for command, path in paths.items() if not path.exists()]
    if missing:
        packages = [f"k8s.io/kubernetes/cmd/{command}" for command in missing]
        env = _kubernetes_wrapper(target / "wrapper", packages)
        partial = target / "partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        flags = "-s -w " + " ".join(_kubernetes_version_flags())
        build = [go(), "build", "-trimpath", "-ldflags", flags, "-o", f"{partial}/", *packages]
        run_tool(build, cwd=target / "wrapper", env=env, timeout=5400)
        for command in missing:
            (partial / command).rename(paths[command])
        partial.rmdir()
    if "kube-apiserver" in commands:
        paths["kube-apiserver"] = kube_apiserver()
    return paths


def _go_build_module(
    name: str,
    module: str,
    version: str,
    package: str = "",
    main_go: str = "",
    ldflags: tuple[str, ...] = (),
    overlay: tuple[tuple[str, str], ...] = (),
    tags: tuple[str, ...] = (),
) -> Path:
    """Build `package` of `module`@`version` through a wrapper module, cached under CACHE.

    With `main_go`, the wrapper's own main package is that source (a custom CoreDNS); otherwise
    the wrapper only requires the module and builds its `package` (`go install` refuses modules
    with replace directives; a wrapper works for both). The cache directory is named by the
    version and a digest of the source and flags, so changing either builds again; the binary is
    renamed into place only once the build succeeded (an interrupted build is never cached).

    `overlay`: (path inside the module, new content) pairs: the build uses a copy of the module
    with those files replaced (`go build -overlay` may not replace files of the module cache).
    The module's own `replace old vX => new vY` lines are applied to the wrapper too (a
    dependency's replace directives are otherwise ignored). `tags`: build tags.
    """
    digest = hashlib.sha256(json.dumps([package, main_go, ldflags, *overlay, *tags]).encode()).hexdigest()[:8]
    target = CACHE / f"{name}-{version}-{digest}"
    binary = target / name
    if binary.exists():
        return binary
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false"}
    wrapper = target / "wrapper"
    wrapper.mkdir(parents=True, exist_ok=True)
    (wrapper / "go.mod").write_text(
        f"module streamflow.invalid/{name}-build\n\ngo 1.24\n\nrequire {module} {version}\n"
    )
    if main_go:
        (wrapper / "main.go").write_text(main_go)
    else:
        # Without a file importing it, `go mod tidy` drops the requirement and `go build` looks the
        # module up again by @latest, which the proxy refuses (403) for some modules (kube-state-metrics,
        # the Pushgateway); the tools.go pattern keeps it (the file is never built: build tag `tools`).
        (wrapper / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{package or module}"\n')
    run_tool([go(), "get", f"{module}@{version}"], cwd=wrapper, env=env, timeout=1800)
    info = json.loads(run_tool([go(), "mod", "download", "-json", f"{module}@{version}"], env=env).stdout)
    for old, new in _VERSION_REPLACE.findall(Path(info["GoMod"]).read_text()):
        run_tool([go(), "mod", "edit", f"-replace={old.replace(' ', '@')}={new.replace(' ', '@')}"], cwd=wrapper)
    if overlay:
        source = target / "source"
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(info["Dir"], source, copy_function=shutil.copyfile)  # copyfile: not the cache's 0444
        for path, content in overlay:
            (source / path).write_text(content)
        run_tool([go(), "mod", "edit", f"-replace={module}=../source"], cwd=wrapper)
    run_tool([go(), "mod", "tidy"], cwd=wrapper, env=env, timeout=1800)
    partial = target / f"{name}.partial"
    flags = " ".join(("-s", "-w", *ldflags))
    build = [go(), "build", "-trimpath", *([f"-tags={','.join(tags)}"] if tags else []), "-ldflags", flags]
    build += ["-o", str(partial), package or "."]
    run_tool(build, cwd=wrapper, env=env)
    partial.rename(binary)
    return binary


@cache
def coredns() -> Path:
    """A CoreDNS binary with the plugins a cluster's DNS needs (COREDNS_PLUGINS), static."""
    imports = "".join(f'\t_ "github.com/coredns/coredns/plugin/{package}"\n' for package in COREDNS_PLUGINS.values())
    directives = "".join(f'\t"{plugin}",\n' for plugin in COREDNS_PLUGINS)
    main_go = (
        "// A minimal CoreDNS: the plugins of a cluster's Corefile only (generated by tools/toolchain.py).\n"
        "package main\n\nimport (\n"
        '\t"github.com/coredns/coredns/core/dnsserver"\n'
        '\t"github.com/coredns/coredns/coremain"\n'
        f"{imports})\n\nvar directives = []string{{\n{directives}}}\n\n"
        "func init() { dnsserver.Directives = directives }\n\nfunc main() { coremain.Run() }\n"
    )
    return _go_build_module("coredns", "github.com/coredns/coredns", COREDNS_VERSION, main_go=main_go)


@cache
def crictl() -> Path:
    """crictl (cri-tools), the CRI client that removes pod sandboxes through the runtime (CNI DEL)."""
    return _go_build_module(
        "crictl",
        "sigs.k8s.io/cri-tools",
        CRICTL_VERSION,
        "sigs.k8s.io/cri-tools/cmd/crictl",
        ldflags=(f"-X sigs.k8s.io/cri-tools/pkg/version.Version={CRICTL_VERSION}",),
    )


@cache
def local_path_provisioner() -> Path:
    """rancher's local-path-provisioner (kind's default storage): dynamic hostPath PVs."""
    module = "github.com/rancher/local-path-provisioner"
    return _go_build_module(
        "local-path-provisioner",
        module,
        LOCAL_PATH_PROVISIONER_VERSION,
        module,
        ldflags=(f"-X main.VERSION={LOCAL_PATH_PROVISIONER_VERSION}",),
    )


@cache
def chart_testing() -> Path:
    """Path of the pinned `ct` binary (helm/chart-testing), built the first time (~30 s).

    Built inside its module's directory: `go install` and a wrapper module both fail, since the
    proxy refuses the module's version list (which `go install` reads for deprecations and a
    wrapper's package lookup needs). Beside the binary, etc/ holds the module's own lintconf.yaml
    and chart_schema.yaml: ct looks for them only in ./, ./.ct, ~/.ct and /etc/ct, so callers pass
    them with --lint-conf and --chart-yaml-schema (tools/chart_testing.py).
    """
    target = CACHE / f"chart-testing-{CHART_TESTING_VERSION}"
    binary = target / "ct"
    if binary.exists():
        return binary
    module = "github.com/helm/chart-testing/v3"
    source = Path(
        json.loads(run_tool([go(), "mod", "download", "-json", f"{module}@{CHART_TESTING_VERSION}"]).stdout)["Dir"]
    )
    # copyfile, not copy2: the module cache is read-only and the copy need not be
    shutil.copytree(source / "etc", target / "etc", copy_function=shutil.copyfile, dirs_exist_ok=True)
    partial = target / "ct.partial"  # renamed when complete: an interrupted build is not cached
    # cmd.Version is what its releases set (`ct version` prints it)
    flags = f"-s -w -X {module}/ct/cmd.Version={CHART_TESTING_VERSION}"
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false"}
    run_tool(
        [go(), "build", "-trimpath", "-ldflags", flags, "-o", str(partial), "./ct"], cwd=source, env=env, timeout=1500
    )
    partial.rename(binary)
    return binary


# --- make monitoring CLUSTER=local: what kube-prometheus-stack would pull, built here -------------

PROMETHEUS_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"


def _prometheus_version_flags(version: str) -> tuple[str, ...]:
    """-X flags of prometheus/common's version package (promu's; `--version` and build_info show them)."""
    package = "github.com/prometheus/common/version"
    return (f"-X {package}.Version={version}", f"-X {package}.Branch=HEAD", f"-X {package}.BuildUser=streamflow")


def _prometheus_operator_command(name: str) -> Path:
    """The command `name` of the prometheus-operator module (cmd/<name>) at PROMETHEUS_OPERATOR_VERSION
    (its Makefile sets Version without the "v"; the operator derives the default config-reloader
    tag from it)."""
    return _go_build_module(
        name,
        PROMETHEUS_OPERATOR_MODULE,
        PROMETHEUS_OPERATOR_VERSION,
        f"{PROMETHEUS_OPERATOR_MODULE}/cmd/{'operator' if name == 'prometheus-operator' else name}",
        ldflags=_prometheus_version_flags(PROMETHEUS_OPERATOR_VERSION.lstrip("v")),
    )


@cache
def prometheus_operator() -> Path:
    return _prometheus_operator_command("prometheus-operator")


@cache
def prometheus_config_reloader() -> Path:
    """The operator's config-reloader (init container and sidecar of every Prometheus pod), same module."""
    return _prometheus_operator_command("prometheus-config-reloader")


# The service discoveries the Prometheus build registers (upstream's plugins/plugins.go registers
# 24, most with a cloud SDK): Kubernetes (what the operator generates for monitors) and DNS;
# file and HTTP SD are always in (plugins/minimum.go).
PROMETHEUS_DISCOVERIES = ("dns", "kubernetes")


@cache
def prometheus_release() -> Path:
    """Prometheus at PROMETHEUS_VERSION from its Go module (v3.M.P is tagged v0.3MM.P there), with
    only PROMETHEUS_DISCOVERIES: a copy of the module with its plugins/plugins.go replaced cuts the cold
    build by the cloud SDKs. No web UI (its assets are built with npm, not in the module): the
    HTTP API only. Debian's Prometheus 2.42 cannot serve the operator: it is built without
    Kubernetes service discovery."""
    major, minor, patch = PROMETHEUS_VERSION.lstrip("v").split(".")
    if major != "3":
        raise ToolUnavailable(f"PROMETHEUS_VERSION {PROMETHEUS_VERSION}: only v3 releases map to module tags here")
    module = "github.com/prometheus/prometheus"
    imports = "".join(f'\t_ "{module}/discovery/{name}"\n' for name in PROMETHEUS_DISCOVERIES)
    plugins_go = (
        "// Generated by tools/toolchain.py: the service discoveries of the local Prometheus.\n\n"
        f"package plugins\n\nimport (\n{imports})\n"
    )
    return _go_build_module(
        "prometheus",
        module,
        f"v0.{300 + int(minor)}.{patch}",
        f"{module}/cmd/prometheus",
        ldflags=_prometheus_version_flags(PROMETHEUS_VERSION.lstrip("v")),
        overlay=(("plugins/plugins.go", plugins_go),),
    )


@cache
def kube_state_metrics() -> Path:
    """kube-state-metrics (kube_cronjob_*, kube_job_*, ... series) at KUBE_STATE_METRICS_VERSION."""
    module = "k8s.io/kube-state-metrics/v2"
    return _go_build_module(
        "kube-state-metrics",
        module,
        KUBE_STATE_METRICS_VERSION,
        module,
        ldflags=_prometheus_version_flags(KUBE_STATE_METRICS_VERSION),
        # The time zone database in the binary: a CronJob's timeZone (the chart's Etc/UTC) is parsed
        # with it, and an image FROM scratch has no /usr/share/zoneinfo (upstream's distroless has)
        tags=("timetzdata",),
    )


@cache
def pushgateway_release(version: str) -> Path:
    """The Pushgateway the chart names (its pushgateway.image.tag), from source: `go install` of it is
    refused by the proxy (403) while `go mod download` + `go build` in a wrapper module works.
    (pushgateway() above is Debian's older 1.5.1, which the tests run on the host.)"""
    module = "github.com/prometheus/pushgateway"
    return _go_build_module(
        "pushgateway", module, version, module, ldflags=_prometheus_version_flags(version.lstrip("v"))
    )
